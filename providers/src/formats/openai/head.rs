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
    /// `max_completion_tokens`, else `max_tokens` (OpenAI and Anthropic spell it so), else
    /// `max_output_tokens` (the Responses API's name).
    pub max_tokens: Option<u64>,
    /// `stream_options.include_usage: true`: the client asked for the final usage chunk.
    pub include_usage: bool,
    /// `n`: how many choices (or images) the request asks for; 1 when it sets none.
    pub choices: u64,
    /// Bifrost's `provider` field beside a bare `model` (`{"provider": "openai", "model":
    /// "gpt-4o-mini"}`, as in Bifrost's quickstart). Never sent upstream.
    pub provider: Option<String>,
    model_span: Option<Range<usize>>,
    fallbacks_member: Option<Range<usize>>,
    stream_options: Option<Range<usize>>,
    object_start: usize,
}

/// An output limit the gateway adds to a request that sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCap {
    /// The member's name: `max_completion_tokens` for OpenAI itself (its reasoning models take
    /// no other), `max_tokens` for OpenAI-compatible servers.
    pub field: &'static str,
    /// The limit.
    pub tokens: u64,
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
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    provider: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
}

/// `body` (a JSON object) without its member `key`. Decodes and re-encodes the object: used only
/// for Bifrost's `provider` field, which upstreams would refuse as an unknown argument.
fn without_member(body: Vec<u8>, key: &str) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
        Ok(mut object) => {
            object.remove(key);
            serde_json::to_vec(&object).unwrap_or(body)
        }
        Err(_) => body,
    }
}

/// Refuses names with control characters (a newline or NUL in `model` would reach an upstream
/// header or path, and no provider has such a model).
/// One entry of Bifrost's `fallbacks`: `"provider/model"`, or `{"provider": .., "model": ..}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Fallback {
    Name(String),
    Target { provider: String, model: String },
}

impl Fallback {
    fn into_name(self) -> String {
        match self {
            Fallback::Name(name) => name,
            Fallback::Target { provider, model } => format!("{provider}/{model}"),
        }
    }
}

fn check_name(field: &str, name: &str) -> Result<(), BodyError> {
    if name.chars().any(char::is_control) {
        return Err(BodyError::InvalidField(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(())
}

/// A token count: absent or null, else a non-negative integer.
fn token_count(field: &str, raw: Option<&RawValue>) -> Result<Option<u64>, BodyError> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(text) => serde_json::from_str::<u64>(text)
            .map(Some)
            .map_err(|_| BodyError::InvalidField(format!("`{field}` must be a non-negative integer"))),
    }
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
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
        // JSON text is UTF-8 (RFC 8259). serde_json does not check the strings it skips, so
        // without this a body with invalid bytes in a member the head does not read would be
        // forwarded upstream as is.
        let text = simdutf8::basic::from_utf8(body)
            .map_err(|_| BodyError::Malformed("the body is not valid UTF-8".to_string()))?;
        let probe: Probe<'_> = serde_json::from_str(text).map_err(|e| {
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
                check_name("model", &model)?;
                (Some(model), edit::offset_in(body, raw.get().as_bytes()))
            }
        };
        let (fallbacks, fallbacks_member) = match probe.fallbacks {
            None => (Vec::new(), None),
            Some(raw) => {
                let list: Option<Vec<Fallback>> = serde_json::from_str(raw.get()).map_err(|_| {
                    BodyError::InvalidField(
                        "`fallbacks` must be an array of \"provider/model\" strings or {\"provider\", \"model\"} objects"
                            .to_string(),
                    )
                })?;
                let list: Option<Vec<String>> = list.map(|l| l.into_iter().map(Fallback::into_name).collect());
                for fallback in list.iter().flatten() {
                    check_name("fallbacks", fallback)?;
                }
                let span = edit::offset_in(body, raw.get().as_bytes())
                    .and_then(|value| edit::member_span(body, value, "fallbacks"));
                (list.unwrap_or_default(), span)
            }
        };
        if let Some(messages) = probe.messages
            && !messages.get().starts_with('[')
        {
            return Err(BodyError::InvalidField("`messages` must be an array".to_string()));
        }
        let provider = match probe.provider.map(RawValue::get) {
            None | Some("null") => None,
            Some(text) => {
                let provider: String = serde_json::from_str(text)
                    .map_err(|_| BodyError::InvalidField("`provider` must be a string".to_string()))?;
                check_name("provider", &provider)?;
                Some(provider)
            }
        };
        let max_completion_tokens = token_count("max_completion_tokens", probe.max_completion_tokens)?;
        let max_tokens = token_count("max_tokens", probe.max_tokens)?;
        // The Responses API's name for it.
        let max_output_tokens = token_count("max_output_tokens", probe.max_output_tokens)?;
        let include_usage = probe
            .stream_options
            .and_then(|r| serde_json::from_str::<StreamOptions>(r.get()).ok())
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let stream_options = probe
            .stream_options
            .filter(|r| r.get().starts_with('{'))
            .and_then(|r| edit::offset_in(body, r.get().as_bytes()));
        let object_start = body.iter().position(|b| *b == b'{').unwrap_or(0);
        let choices = token_count("n", probe.n)?.unwrap_or(1).max(1);
        Ok(RequestHead {
            choices,
            model,
            stream: probe.stream.unwrap_or(false),
            fallbacks,
            max_tokens: max_completion_tokens.or(max_tokens).or(max_output_tokens),
            include_usage,
            provider,
            model_span,
            fallbacks_member,
            stream_options,
            object_start,
        })
    }

    /// The body to send upstream: `model` set to `upstream_model`, `fallbacks` removed, every
    /// other byte unchanged.
    pub fn upstream_body(&self, body: &[u8], upstream_model: &str) -> Vec<u8> {
        self.upstream_body_with(body, upstream_model, false)
    }

    /// [`RequestHead::upstream_body`], also asking an OpenAI-wire stream for its final usage
    /// chunk (`stream_options.include_usage: true`) when `want_usage` is set and the client did
    /// not ask for it. Other `stream_options` members are kept.
    pub fn upstream_body_with(&self, body: &[u8], upstream_model: &str, want_usage: bool) -> Vec<u8> {
        self.upstream_body_capped(body, upstream_model, want_usage, None)
    }

    /// [`RequestHead::upstream_body_with`], and when the request sets no output limit and
    /// `cap` is given, the cap added as the request's limit (so a budget's reservation of that
    /// many output tokens is an upper bound on what the provider can bill).
    pub fn upstream_body_capped(
        &self,
        body: &[u8],
        upstream_model: &str,
        want_usage: bool,
        cap: Option<OutputCap>,
    ) -> Vec<u8> {
        let mut edits: Vec<Edit> = Vec::with_capacity(4);
        if want_usage && self.stream && !self.include_usage {
            edits.push(self.usage_edit(body));
        }
        if let Some(cap) = cap.filter(|_| self.max_tokens.is_none()) {
            edits.push(self.member_edit(body, &format!("\"{}\":{}", cap.field, cap.tokens)));
        }
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
        let edited = if edits.is_empty() {
            body.to_vec()
        } else {
            edit::apply(body, &mut edits)
        };
        if self.provider.is_some() {
            return without_member(edited, "provider");
        }
        edited
    }

    /// The model the gateway routes: `model`, prefixed with the body's `provider` field when it
    /// has one and the model does not already start with it.
    pub fn routed_model(&self) -> Option<String> {
        let model = self.model.clone()?;
        match &self.provider {
            Some(provider) if !provider.is_empty() && !model.starts_with(&format!("{provider}/")) => {
                Some(format!("{provider}/{model}"))
            }
            _ => Some(model),
        }
    }

    /// Whether the object opening at `at - 1` has no member left once `fallbacks` is removed
    /// (then a member inserted at `at` takes no comma after it).
    fn empty_after_edits(&self, body: &[u8], at: usize) -> bool {
        let next = |from: usize| {
            body.get(from..)
                .and_then(|rest| rest.iter().position(|b| !b.is_ascii_whitespace()))
                .map(|i| from + i)
        };
        let mut first = next(at);
        if let (Some(i), Some(removed)) = (first, &self.fallbacks_member)
            && removed.start == i
        {
            first = next(removed.end);
        }
        first.and_then(|i| body.get(i)) == Some(&b'}')
    }

    /// A new member right after the body's opening brace.
    fn member_edit(&self, body: &[u8], member: &str) -> Edit {
        let at = self.object_start + 1;
        let empty = self.empty_after_edits(body, at);
        let mut replacement = member.as_bytes().to_vec();
        if !empty {
            replacement.push(b',');
        }
        Edit {
            range: at..at,
            replacement,
        }
    }

    /// The edit that turns `include_usage` on: merged into an existing `stream_options` object,
    /// or a new member right after the body's opening brace.
    fn usage_edit(&self, body: &[u8]) -> Edit {
        if let Some(span) = &self.stream_options
            && let Some(mut options) = body
                .get(span.clone())
                .and_then(|raw| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw).ok())
        {
            options.insert("include_usage".to_string(), serde_json::Value::Bool(true));
            return Edit {
                range: span.clone(),
                replacement: serde_json::to_vec(&options).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec()),
            };
        }
        let at = self.object_start + 1;
        let empty = self.empty_after_edits(body, at);
        let member: &[u8] = if empty {
            br#""stream_options":{"include_usage":true}"#
        } else {
            br#""stream_options":{"include_usage":true},"#
        };
        Edit {
            range: at..at,
            replacement: member.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_added_to_an_object_left_empty_by_the_fallbacks_removal_takes_no_comma() {
        // Found by the request_head fuzz target.
        let body = b"{\n\t\"fallbacks\":[\"a/b\"]  \n}";
        let head = RequestHead::parse(body).expect("head");
        let cap = Some(OutputCap {
            field: "max_tokens",
            tokens: 9,
        });
        let out = head.upstream_body_capped(body, "m", true, cap);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(value["max_tokens"], 9, "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn invalid_utf8_anywhere_in_the_body_is_malformed() {
        // Found by the request_head fuzz target: bad bytes in a member the head does not read.
        let body = b"{\"model\":\"openai/gpt-4o\",\"messages\":[],\"user\":\"\x8b\x8c\"}";
        assert!(matches!(RequestHead::parse(body), Err(BodyError::Malformed(m)) if m.contains("UTF-8")));
        let fine = "{\"model\":\"openai/gpt-4o\",\"messages\":[],\"user\":\"ünïcode ✓\"}";
        assert!(RequestHead::parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn an_output_cap_is_added_only_when_the_request_sets_no_limit() {
        let cap = Some(OutputCap {
            field: "max_completion_tokens",
            tokens: 4096,
        });
        let body = br#"{"model":"openai/a","messages":[]}"#;
        let head = RequestHead::parse(body).expect("valid");
        let out: serde_json::Value =
            serde_json::from_slice(&head.upstream_body_capped(body, "a", false, cap)).expect("json");
        assert_eq!(out["max_completion_tokens"], 4096);
        assert_eq!(out["model"], "a");
        let limited = br#"{"model":"openai/a","max_tokens":20,"messages":[]}"#;
        let head = RequestHead::parse(limited).expect("valid");
        let out: serde_json::Value =
            serde_json::from_slice(&head.upstream_body_capped(limited, "a", false, cap)).expect("json");
        assert!(out.get("max_completion_tokens").is_none(), "the client's limit stands");
    }

    #[test]
    fn wrong_field_types_and_control_characters_are_refused() {
        let refused = |body: &str| match RequestHead::parse(body.as_bytes()) {
            Err(BodyError::InvalidField(reason)) => reason,
            other => panic!("{body}: {other:?}"),
        };
        assert!(refused(r#"{"model":"openai/gpt-4o-mini\n"}"#).contains("control characters"));
        assert!(refused(r#"{"model":"openai/x\u0000"}"#).contains("control characters"));
        assert!(refused(r#"{"model":"openai/x\u007f"}"#).contains("control characters"));
        assert!(refused(r#"{"model":"a/b","fallbacks":["c/d\r"]}"#).contains("control characters"));
        assert!(refused(r#"{"model":"a/b","messages":"hi"}"#).contains("`messages` must be an array"));
        assert!(refused(r#"{"model":"a/b","max_tokens":"10"}"#).contains("max_tokens"));
        assert!(refused(r#"{"model":"a/b","max_tokens":-1}"#).contains("non-negative"));
        assert!(refused(r#"{"model":"a/b","max_completion_tokens":1.5}"#).contains("max_completion_tokens"));
        assert!(refused(r#"{"model":"a/b","stream":"yes"}"#).contains("bool"));
        let ok = RequestHead::parse(br#"{"model":"a/b","messages":[],"max_tokens":null}"#).expect("valid");
        assert_eq!(ok.max_tokens, None);
    }

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
    fn asks_for_stream_usage_keeping_other_options() {
        let body = br#"{"model":"openai/a","stream":true,"max_tokens":20,"messages":[]}"#;
        let head = RequestHead::parse(body).expect("parse");
        assert_eq!(head.max_tokens, Some(20));
        assert!(!head.include_usage);
        let out = head.upstream_body_with(body, "a", true);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"stream_options":{"include_usage":true},"model":"a","stream":true,"max_tokens":20,"messages":[]}"#
        );
        let body = br#"{"model":"a","stream":true,"stream_options":{"include_obfuscation":false},"max_completion_tokens":7,"max_tokens":99}"#;
        let head = RequestHead::parse(body).expect("parse");
        assert_eq!(head.max_tokens, Some(7));
        let out: serde_json::Value = serde_json::from_slice(&head.upstream_body_with(body, "a", true)).expect("json");
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["stream_options"]["include_obfuscation"], false);
        let asked = br#"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#;
        let head = RequestHead::parse(asked).expect("parse");
        assert!(head.include_usage);
        assert_eq!(head.upstream_body_with(asked, "a", true), asked.to_vec());
        let not_stream = br#"{"model":"a"}"#;
        let head = RequestHead::parse(not_stream).expect("parse");
        assert_eq!(head.upstream_body_with(not_stream, "a", true), not_stream.to_vec());
    }

    #[test]
    fn fallbacks_may_be_objects_as_in_bifrost() {
        let body =
            br#"{"model":"openai/a","fallbacks":[{"provider":"groq","model":"llama"},"anthropic/c"],"messages":[]}"#;
        let head = RequestHead::parse(body).expect("head");
        assert_eq!(
            head.fallbacks,
            vec!["groq/llama".to_string(), "anthropic/c".to_string()]
        );
        let out = head.upstream_body(body, "a");
        assert!(!String::from_utf8_lossy(&out).contains("fallbacks"));
        assert!(RequestHead::parse(br#"{"model":"a/b","fallbacks":[{"provider":"x"}]}"#).is_err());
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
