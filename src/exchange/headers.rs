//! Header policy: what crosses the gateway in each direction.

use http::HeaderName;
use pingora::http::RequestHeader;

/// Hop-by-hop and framing headers never copied from an upstream response; the gateway frames
/// its own response.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

/// Extra headers the client asked to forward with `x-bf-eh-<name>`, minus the always-denied set
/// (Bifrost's `x-bf-eh-*` header forwarding): credentials, framing and routing headers never pass this way.
pub fn extra_headers(req: &RequestHeader) -> Vec<(String, Vec<u8>)> {
    const PREFIX: &str = "x-bf-eh-";
    const DENIED: [&str; 19] = [
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        // Hop-by-hop and framing: the gateway frames the upstream request itself, and an
        // `expect: 100-continue` would make the upstream answer an interim head first.
        "expect",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "x-api-key",
        "x-goog-api-key",
        "x-bf-api-key",
        "x-bf-api-key-id",
        "x-bf-vk",
        "authorization",
        "api-key",
    ];
    req.headers
        .iter()
        .filter_map(|(name, value)| {
            let forwarded = name.as_str().strip_prefix(PREFIX)?;
            (!forwarded.is_empty() && !DENIED.contains(&forwarded))
                .then(|| (forwarded.to_string(), value.as_bytes().to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_respect_the_denylist() {
        let mut req = RequestHeader::build("POST", b"/", None).expect("header");
        req.insert_header("x-bf-eh-openai-organization", "org-1").expect("h");
        req.insert_header("x-bf-eh-authorization", "Bearer stolen").expect("h");
        req.insert_header("x-bf-eh-x-bf-vk", "vk").expect("h");
        req.insert_header("x-bf-eh-expect", "100-continue").expect("h");
        req.insert_header("x-bf-eh-upgrade", "websocket").expect("h");
        req.insert_header("authorization", "Bearer client").expect("h");
        let forwarded = extra_headers(&req);
        assert_eq!(forwarded, vec![("openai-organization".to_string(), b"org-1".to_vec())]);
    }
}
