//! Server-sent events: an incremental splitter over read-sized byte pieces (parsing is done by the
//! `sse-parse` crate, which carries partial lines across feeds), and the writers for the two
//! framings asbru emits.

use sse_parse::SseParser;

pub use sse_parse::Event;

/// Largest single event accepted; a larger one is dropped rather than buffered without bound.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Turns byte pieces, split anywhere, into complete events.
pub struct SseSplitter {
    parser: SseParser,
}

impl Default for SseSplitter {
    fn default() -> Self {
        SseSplitter::new()
    }
}

impl SseSplitter {
    /// A splitter with the default event size cap.
    pub fn new() -> SseSplitter {
        SseSplitter {
            parser: SseParser::new().max_buffer(MAX_EVENT_BYTES),
        }
    }

    /// Adds bytes; complete events become available through [`SseSplitter::next_event`].
    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.feed(bytes);
    }

    /// The next complete event.
    pub fn next_event(&mut self) -> Option<Event> {
        self.parser.next_event()
    }

    /// Marks the end of input; an unterminated last event is discarded.
    pub fn finish(&mut self) {
        self.parser.finish();
    }
}

/// Appends `data: <data>\n\n` (OpenAI-style chunks).
pub fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// Appends `event: <name>\ndata: <data>\n\n` (Anthropic-style events).
pub fn write_event(out: &mut Vec<u8>, event: &str, data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_split() {
        let stream = b"event: a\ndata: {\"x\":1}\n\n: comment\r\ndata: two\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut s = SseSplitter::new();
            s.feed(&stream[..cut]);
            s.feed(&stream[cut..]);
            let events: Vec<(String, String)> = std::iter::from_fn(|| s.next_event())
                .map(|e| (e.event, e.data))
                .collect();
            assert_eq!(
                events,
                vec![
                    ("a".to_string(), "{\"x\":1}".to_string()),
                    ("message".to_string(), "two".to_string()),
                    ("message".to_string(), "[DONE]".to_string())
                ],
                "cut at {cut}"
            );
        }
    }
}
