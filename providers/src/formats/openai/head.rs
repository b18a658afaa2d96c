//! The OpenAI request fields the gateway reads (`model`, `stream`, Bifrost's `fallbacks`), taken
//! from the body in one pass without decoding anything else, and the in-place rewrite that sends
//! the body upstream with only those fields changed.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::edit::{self, Edit};

/// What the gateway needs from an OpenAI-shaped request body.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    /// The `model` string, as sent (`provider/model` or bare).
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// Bifrost's `fallbacks: ["provider/model", ...]`.
    pub fallbacks: Vec<String>,
    model_span: Option<Range<usize>>,
    fallbacks_member: Option<Range<usize>>,
}

/// Why a body cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not an object.
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    /// A known field has the wrong type.
    #[error("{0}")]
    InvalidField(String),
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    fallbacks: Option<&'a RawValue>,
}

impl RequestHead {
    /// Reads the head of `body`. Validates that the whole body is one JSON object.
    pub fn parse(body: &[u8]) -> Result<RequestHead, BodyError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(BodyError::Malformed(
                if first.is_none() {
                    "the body is empty"
                } else {
                    "expected a JSON object"
                }
                .to_string(),
            ));
        }
        let probe: Probe<'_> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                BodyError::InvalidField(e.to_string())
            } else {
                BodyError::Malformed(e.to_string())
            }
        })?;
        let (model, model_span) = match probe.model {
            None => (None, None),
            Some(raw) if raw.get() == "null" => (None, None),
            Some(raw) => {
                let model: String = serde_json::from_str(raw.get())
                    .map_err(|_| BodyError::InvalidField("`model` must be a string".to_string()))?;
                (Some(model), edit::offset_in(body, raw.get().as_bytes()))
            }
        };
        let (fallbacks, fallbacks_member) = match probe.fallbacks {
            None => (Vec::new(), None),
            Some(raw) => {
                let list: Option<Vec<String>> = serde_json::from_str(raw.get()).map_err(|_| {
                    BodyError::InvalidField("`fallbacks` must be an array of \"provider/model\" strings".to_string())
                })?;
                let span = edit::offset_in(body, raw.get().as_bytes())
                    .and_then(|value| edit::member_span(body, value, "fallbacks"));
                (list.unwrap_or_default(), span)
            }
        };
        Ok(RequestHead {
            model,
            stream: probe.stream.unwrap_or(false),
            fallbacks,
            model_span,
            fallbacks_member,
        })
    }

    /// The body to send upstream: `model` set to `upstream_model`, `fallbacks` removed, every
    /// other byte unchanged.
    pub fn upstream_body(&self, body: &[u8], upstream_model: &str) -> Vec<u8> {
        let mut edits: Vec<Edit> = Vec::with_capacity(2);
        if let Some(span) = &self.model_span {
            let encoded = serde_json::to_vec(upstream_model).unwrap_or_else(|_| b"\"\"".to_vec());
            if body.get(span.clone()) != Some(encoded.as_slice()) {
                edits.push(Edit {
                    range: span.clone(),
                    replacement: encoded,
                });
            }
        }
        if let Some(span) = &self.fallbacks_member {
            edits.push(Edit {
                range: span.clone(),
                replacement: Vec::new(),
            });
        }
        if edits.is_empty() {
            return body.to_vec();
        }
        edit::apply(body, &mut edits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_rewrites_only_model() {
        let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x_custom":{"keep":  [1, 2.50, "\u00e9"]},"stream":true}"#;
        let head = RequestHead::parse(body).expect("parse");
        assert_eq!(head.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert!(head.stream);
        let out = head.upstream_body(body, "gpt-4o-mini");
        let expected = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x_custom":{"keep":  [1, 2.50, "\u00e9"]},"stream":true}"#;
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(expected));
    }

    #[test]
    fn strips_fallbacks() {
        let body = br#"{"model":"openai/a","fallbacks":["groq/b", "bad"],"messages":[]}"#;
        let head = RequestHead::parse(body).expect("parse");
        assert_eq!(head.fallbacks, vec!["groq/b".to_string(), "bad".to_string()]);
        assert_eq!(
            head.upstream_body(body, "a"),
            br#"{"model":"a","messages":[]}"#.to_vec()
        );
    }

    #[test]
    fn escaped_model_is_decoded_and_reencoded() {
        let body = br#"{"model":"openai\/gpt\u002d4o"}"#;
        let head = RequestHead::parse(body).expect("parse");
        assert_eq!(head.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(head.upstream_body(body, "gpt-4o"), br#"{"model":"gpt-4o"}"#.to_vec());
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(matches!(RequestHead::parse(b""), Err(BodyError::Malformed(_))));
        assert!(matches!(RequestHead::parse(b"[1]"), Err(BodyError::Malformed(_))));
        assert!(matches!(
            RequestHead::parse(b"{\"model\":"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            RequestHead::parse(b"{\"model\":1}"),
            Err(BodyError::InvalidField(_))
        ));
        assert!(matches!(
            RequestHead::parse(b"{\"stream\":\"yes\"}"),
            Err(BodyError::InvalidField(_))
        ));
        assert!(matches!(
            RequestHead::parse(b"{\"a\":1} trailing"),
            Err(BodyError::Malformed(_))
        ));
        let head = RequestHead::parse(b"{\"messages\":[]}").expect("parse");
        assert_eq!(head.model, None);
    }
}
