//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), as Bedrock's
//! `converse-stream` and `invoke-with-response-stream` use it: incremental decoding with both
//! CRCs checked, and encoding for replies the gateway writes itself. The framing is done by
//! `aws-smithy-eventstream`; this module keeps the buffer and reads the headers Bedrock uses
//! (`:message-type`, `:event-type`, `:exception-type`).
//!
//! See <https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html> (the frame
//! layout: prelude, prelude CRC, headers, payload, message CRC).

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

/// The media type of an event stream.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Largest frame accepted (AWS's limit is 16 MiB); a bigger prelude is treated as corrupt.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// The smallest frame: a prelude and the message CRC.
const MIN_FRAME: usize = 16;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: String,
    /// `:event-type` for events, `:exception-type` for exceptions, `:error-code` for errors.
    pub kind: String,
    /// The payload (JSON for Bedrock).
    pub payload: Bytes,
}

impl Frame {
    /// Whether the frame reports a failure (an exception or an error message).
    pub fn is_failure(&self) -> bool {
        self.message_type != "event"
    }

    /// The failure's message: the payload's `message` member, or `:error-message`'s text.
    pub fn failure_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.payload)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("Message"))?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("the provider's stream reported {}", self.kind))
    }
}

/// Why a stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event stream is corrupt: {0}")]
pub struct DecodeError(pub String);

/// An incremental decoder: bytes go in as they arrive, split anywhere; whole frames come out.
/// After a corrupt frame (a CRC mismatch, an impossible length) it yields nothing more.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buffer: BytesMut,
    frames: MessageFrameDecoder,
    failed: bool,
}

impl EventStreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Whether a corrupt frame stopped the decoder.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether bytes of an unfinished frame are held.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next whole frame, `None` when more bytes are needed, or the reason the stream is
    /// corrupt (once; then `None` for ever).
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        if self.failed {
            return None;
        }
        // A whole frame is waited for before it is decoded, so each decode is one call and the
        // buffer always starts at a frame's prelude.
        if self.buffer.len() < PRELUDE {
            return None;
        }
        // The prelude's own CRC is checked before its length is trusted.
        let prelude_crc = u32::from_be_bytes([self.buffer[8], self.buffer[9], self.buffer[10], self.buffer[11]]);
        if crc32fast::hash(&self.buffer[..8]) != prelude_crc {
            return Some(Err(self.fail("a frame prelude whose checksum does not match".into())));
        }
        let total = u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]) as usize;
        if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
            return Some(Err(self.fail(format!("a frame of {total} bytes"))));
        }
        if self.buffer.len() < total {
            return None;
        }
        let mut view = &self.buffer[..total];
        match self.frames.decode_frame(&mut view) {
            Ok(DecodedFrame::Complete(message)) => {
                self.buffer.advance(total);
                Some(Ok(frame_of(&message)))
            }
            Ok(DecodedFrame::Incomplete) => Some(Err(self.fail("a frame shorter than its length".into()))),
            Err(e) => Some(Err(self.fail(e.to_string()))),
        }
    }

    fn fail(&mut self, why: String) -> DecodeError {
        self.failed = true;
        self.buffer.clear();
        DecodeError(why)
    }
}

fn header_text<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn frame_of(message: &Message) -> Frame {
    let message_type = header_text(message, ":message-type").unwrap_or("event").to_string();
    let kind = match message_type.as_str() {
        "exception" => header_text(message, ":exception-type"),
        "error" => header_text(message, ":error-code"),
        _ => header_text(message, ":event-type"),
    }
    .unwrap_or_default()
    .to_string();
    Frame {
        message_type,
        kind,
        payload: message.payload().clone(),
    }
}

fn write(message: &Message, out: &mut Vec<u8>) {
    // Writing to a Vec fails only for headers or payloads beyond the format's limits, which
    // the gateway's own JSON events never reach.
    if let Err(e) = write_message_to(message, out) {
        write_unwritable_notice(e.to_string(), out);
    }
}

/// A frame too big to write (never expected) becomes an exception frame saying so.
fn write_unwritable_notice(why: String, out: &mut Vec<u8>) {
    let payload = serde_json::json!({ "message": why }).to_string();
    let message = Message::new(Bytes::from(payload))
        .add_header(Header::new(":message-type", HeaderValue::String("exception".into())))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String("internalServerException".into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let _ = write_message_to(&message, out);
}

/// Appends an event frame (`:message-type: event`) with a JSON payload.
pub fn write_event(event_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    let message = Message::new(Bytes::copy_from_slice(payload))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
    write(&message, out);
}

/// Appends an exception frame (`:message-type: exception`) whose payload is `{"message"}`.
pub fn write_exception(exception_type: &str, message_text: &str, out: &mut Vec<u8>) {
    let payload = serde_json::json!({ "message": message_text }).to_string();
    let message = Message::new(Bytes::from(payload))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(exception_type.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(":message-type", HeaderValue::String("exception".into())));
    write(&message, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_frames() -> Vec<u8> {
        let mut out = Vec::new();
        write_event("messageStart", br#"{"role":"assistant"}"#, &mut out);
        write_exception("throttlingException", "slow down", &mut out);
        out
    }

    #[test]
    fn frames_split_at_every_byte_decode_the_same() {
        let bytes = two_frames();
        for cut in 0..=bytes.len() {
            let mut decoder = EventStreamDecoder::new();
            let mut frames = Vec::new();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                decoder.feed(piece);
                while let Some(frame) = decoder.next_frame() {
                    frames.push(frame.expect("valid frame"));
                }
            }
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[0].kind, "messageStart");
            assert!(!frames[0].is_failure());
            assert_eq!(frames[1].kind, "throttlingException");
            assert_eq!(frames[1].failure_message(), "slow down");
            assert!(!decoder.has_partial());
        }
        // One byte at a time.
        let mut decoder = EventStreamDecoder::new();
        let mut count = 0;
        for byte in &bytes {
            decoder.feed(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame() {
                frame.expect("valid");
                count += 1;
            }
        }
        assert_eq!(count, 2);
    }

    #[test]
    fn a_bad_crc_stops_the_decoder() {
        let mut bytes = two_frames();
        // Flip a payload byte of the first frame: its message CRC no longer matches.
        bytes[20] ^= 0x55;
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(&bytes);
        assert!(matches!(decoder.next_frame(), Some(Err(_))));
        assert!(decoder.failed());
        assert!(decoder.next_frame().is_none());
        // A damaged prelude (its own CRC) is refused too.
        let mut bytes = two_frames();
        bytes[9] ^= 0x01;
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(&bytes);
        assert!(matches!(decoder.next_frame(), Some(Err(_))));
    }

    #[test]
    fn an_absurd_length_is_corrupt() {
        let mut prelude = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        prelude.extend_from_slice(&crc32fast::hash(&prelude).to_be_bytes());
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(&prelude);
        assert!(matches!(decoder.next_frame(), Some(Err(_))));
        // A damaged length fails at once (its prelude checksum), without waiting for bytes.
        let mut bytes = two_frames();
        bytes[2] ^= 0x01;
        let mut decoder = EventStreamDecoder::new();
        decoder.feed(&bytes[..12]);
        assert!(matches!(decoder.next_frame(), Some(Err(_))));
    }
}
