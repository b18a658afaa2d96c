//! CORS for browser clients, from Bifrost's `client.allowed_origins`: `*`, an exact origin
//! (`https://app.example.com`), or a wildcard subdomain (`https://*.example.com`). Without the
//! setting the gateway sends no CORS headers, and browsers keep cross-origin pages out.
//!
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
//! answered `204` with the methods and the requested headers; from any other origin, `403`.
//! An actual request from an allowed origin is marked in its request head's extensions, and
//! every response writer adds the headers through [`decorate`]: replies, errors, streams, the
//! management API and the dashboard alike.

use asbru_config::model::ClientConfig;
use http::{HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The origins allowed to call the gateway from a browser.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    any: bool,
    exact: Vec<String>,
    /// `(scheme://, .domain)` of `scheme://*.domain` entries.
    wildcard: Vec<(String, String)>,
}

/// The origin a response answers, put in the request's extensions when it is allowed.
#[derive(Debug, Clone)]
struct AllowedOrigin(HeaderValue);

/// Response headers browsers may read besides the simple ones.
const EXPOSED: &str = "x-request-id, x-bifrost-provider, x-bifrost-resolved-model, x-bifrost-fallback-index, \
x-bifrost-routing-info-provider, x-bifrost-routing-info-model, x-bifrost-routing-info-rule-id";

/// What [`Cors::preflight`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Not a preflight, or no CORS configured: route the request as usual.
    NotOne,
    /// Answered.
    Answered,
}

impl Cors {
    /// The policy of `client.allowed_origins`; `None` when it is unset or empty.
    pub fn from_client(client: &ClientConfig) -> Option<Cors> {
        let origins = client.allowed_origins.as_ref()?;
        let mut cors = Cors::default();
        for origin in origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        {
            if origin == "*" {
                cors.any = true;
            } else if let Some((scheme, rest)) = origin.split_once("://*.") {
                cors.wildcard.push((format!("{scheme}://"), format!(".{rest}")));
            } else if !origin.is_empty() {
                cors.exact.push(origin);
            }
        }
        (cors.any || !cors.exact.is_empty() || !cors.wildcard.is_empty()).then_some(cors)
    }

    /// Whether `origin` (as a browser sends it: `scheme://host[:port]`) may call the gateway.
    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        self.exact.contains(&origin)
            || self.wildcard.iter().any(|(scheme, domain)| {
                origin
                    .strip_prefix(scheme.as_str())
                    .is_some_and(|host| host.ends_with(domain.as_str()) && host.len() > domain.len())
            })
    }

    /// Marks an allowed origin's request for [`decorate`], and answers its preflight.
    pub async fn preflight(&self, session: &mut Session, request_id: &str) -> pingora::Result<Preflight> {
        let headers = &session.req_header().headers;
        let Some(origin) = headers.get(http::header::ORIGIN).cloned() else {
            return Ok(Preflight::NotOne);
        };
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        let is_preflight = session.req_header().method == Method::OPTIONS
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        if allowed {
            session.req_header_mut().extensions_mut().insert(AllowedOrigin(origin));
        }
        if !is_preflight {
            return Ok(Preflight::NotOne);
        }
        if !allowed {
            let body = br#"{"error":{"message":"this origin is not in client.allowed_origins"},"status_code":403}"#;
            // Written here rather than through `respond` (which calls `decorate`): a refused
            // origin gets no CORS headers anyway.
            let mut head = ResponseHeader::build(403, Some(3))?;
            head.insert_header("content-type", "application/json")?;
            head.insert_header("content-length", body.len().to_string())?;
            head.insert_header("x-request-id", request_id)?;
            session.write_response_header(Box::new(head), false).await?;
            session
                .write_response_body(Some(bytes::Bytes::from_static(body)), true)
                .await?;
            return Ok(Preflight::Answered);
        }
        let requested = session
            .req_header()
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|v| v.len() <= 2048)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type, x-bf-vk"));
        let mut head = ResponseHeader::build(204, Some(8))?;
        head.insert_header("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS")?;
        head.insert_header("access-control-allow-headers", requested)?;
        head.insert_header("access-control-max-age", "600")?;
        head.insert_header("x-request-id", request_id)?;
        decorate(&mut head, session);
        session.write_response_header(Box::new(head), true).await?;
        Ok(Preflight::Answered)
    }
}

/// Adds the CORS headers to a response when its request came from an allowed origin.
pub fn decorate(head: &mut ResponseHeader, session: &Session) {
    let Some(AllowedOrigin(origin)) = session.req_header().extensions.get::<AllowedOrigin>() else {
        return;
    };
    let _ = head.insert_header("access-control-allow-origin", origin.clone());
    let _ = head.insert_header("access-control-allow-credentials", "true");
    let _ = head.insert_header("access-control-expose-headers", EXPOSED);
    let _ = head.append_header("vary", "Origin");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let client = ClientConfig {
            allowed_origins: Some(vec![
                "https://app.example.com/".into(),
                "https://*.corp.example".into(),
                "http://localhost:3000".into(),
            ]),
            ..Default::default()
        };
        let cors = Cors::from_client(&client).expect("configured");
        assert!(cors.allows("https://app.example.com"));
        assert!(cors.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(cors.allows("https://a.corp.example"));
        assert!(cors.allows("https://a.b.corp.example"));
        assert!(!cors.allows("https://corp.example"), "the wildcard needs a subdomain");
        assert!(!cors.allows("https://evilcorp.example"));
        assert!(!cors.allows("http://a.corp.example"), "the scheme must match");
        assert!(!cors.allows("https://app.example.com.evil.net"));
        assert!(cors.allows("http://localhost:3000"));
        assert!(!cors.allows("http://localhost:3001"));
        let any = ClientConfig {
            allowed_origins: Some(vec!["*".into()]),
            ..Default::default()
        };
        assert!(Cors::from_client(&any).expect("any").allows("https://anything.example"));
        assert!(Cors::from_client(&ClientConfig::default()).is_none());
        let empty = ClientConfig {
            allowed_origins: Some(vec![]),
            ..Default::default()
        };
        assert!(Cors::from_client(&empty).is_none());
    }
}
