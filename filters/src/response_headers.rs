//! `response_headers`: adds fixed headers to every response of an inference request, from the
//! plugin's config: `plugins: [{name: response_headers, config: {headers: {x-served-by: edge-1}}}]`.
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
                let value =
                    HeaderValue::try_from(value.as_str()).map_err(|_| format!("{value:?} is not a header value"))?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(ResponseHeadersFilter { headers })
    }
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
