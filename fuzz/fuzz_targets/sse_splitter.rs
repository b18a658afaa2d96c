//! The SSE splitter, fed the same bytes whole and cut at arbitrary points: both give the same
//! events (the first byte picks the cut stride).
#![no_main]

use asbru_providers::sse::{MAX_EVENT_BYTES, SseSplitter};
use libfuzzer_sys::fuzz_target;

fn events(chunks: &mut dyn Iterator<Item = &[u8]>) -> Vec<(String, String)> {
    let mut splitter = SseSplitter::new();
    let mut out = Vec::new();
    for chunk in chunks {
        splitter.feed(chunk);
        while let Some(event) = splitter.next_event() {
            assert!(event.data.len() <= MAX_EVENT_BYTES);
            out.push((event.event.to_string(), event.data.to_string()));
        }
    }
    splitter.finish();
    while let Some(event) = splitter.next_event() {
        out.push((event.event.to_string(), event.data.to_string()));
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&stride, bytes)) = input.split_first() else {
        return;
    };
    let whole = events(&mut std::iter::once(bytes));
    let cut = events(&mut bytes.chunks(usize::from(stride).max(1)));
    assert_eq!(whole, cut, "events depend on where the bytes were cut");
});
