//! The OpenAI-route request head reader: any bytes are either a head or a `BodyError`, and a
//! head's rewritten upstream body is still one JSON object.
#![no_main]

use asbru_providers::formats::openai::{OutputCap, RequestHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(head) = RequestHead::parse(body) else {
        return;
    };
    let _ = head.routed_model();
    for (inject, cap) in [
        (false, None),
        (
            true,
            Some(OutputCap {
                field: "max_tokens",
                tokens: 256,
            }),
        ),
    ] {
        let upstream = head.upstream_body_capped(body, "gpt-4o-mini", inject, cap);
        // Syntax only: numbers out of f64's range are valid JSON the gateway passes on as sent.
        let value: &serde_json::value::RawValue =
            serde_json::from_slice(&upstream).expect("a valid head's upstream body is JSON");
        assert!(value.get().starts_with('{'), "upstream body is an object");
    }
});
