//! `response_headers`: adds fixed headers to the responses of inference requests, from the
//! plugin's config: `plugins: [{name: response_headers, placement: pre_builtin, config: {headers:
//! {x-served-by: edge-1}}}]`. Placed `pre_builtin`, refusals by the built-ins (auth, routing,
//! governance) carry the headers too; placed later, only the requests that reach it do. Framing
//! and gateway headers (`content-length`, `x-request-id`, `x-bifrost-*`, ...) cannot be set.
//!
//! A small optional filter, and the example of what adding one takes: this file and one line in
//! the gateway's filter table.

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::ctx::RequestCtx;
use crate::filter::{Filter, Flow};
use crate::live::Live;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// Adds the configured headers.
pub struct ResponseHeadersFilter {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseHeadersFilter {
    /// Reads `{headers: {name: value}}`; an unusable name or value is an error.
    pub fn from_config(config: &serde_json::Value) -> Result<ResponseHeadersFilter, String> {
        let settings: Settings = match config {
            serde_json::Value::Null => Settings::default(),
            other => serde_json::from_value(other.clone()).map_err(|e| e.to_string())?,
        };
        let headers = settings
            .headers
            .into_iter()
            .map(|(name, value)| {
                let name = HeaderName::try_from(name.as_str()).map_err(|_| format!("{name:?} is not a header name"))?;
                if reserved(&name) {
                    return Err(format!("{name:?} is set by the gateway and cannot be configured"));
                }
                let value =
                    HeaderValue::try_from(value.as_str()).map_err(|_| format!("{value:?} is not a header value"))?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(ResponseHeadersFilter { headers })
    }
}

/// Headers the gateway owns: framing, hop-by-hop, and its own.
fn reserved(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "content-length"
            | "content-type"
            | "content-encoding"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "trailer"
            | "x-request-id"
    ) || name.starts_with("x-bifrost-")
}

impl Filter for ResponseHeadersFilter {
    fn name(&self) -> &'static str {
        "response_headers"
    }

    fn on_request(&self, _live: &Live, ctx: &mut RequestCtx) -> Flow {
        ctx.response_headers.extend(self.headers.iter().cloned());
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_headers_cannot_be_configured() {
        for name in [
            "content-length",
            "X-Request-Id",
            "x-bifrost-provider",
            "transfer-encoding",
        ] {
            let err = ResponseHeadersFilter::from_config(&json!({"headers": {name: "1"}}))
                .err()
                .expect("refused");
            assert!(err.contains("set by the gateway"), "{err}");
        }
        let ok = ResponseHeadersFilter::from_config(&json!({"headers": {"x-served-by": "a"}})).expect("ok");
        assert_eq!(ok.headers.len(), 1);
        assert!(ResponseHeadersFilter::from_config(&json!({"headerz": {}})).is_err());
    }
}
