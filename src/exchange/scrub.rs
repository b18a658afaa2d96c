//! Scrubbing an upstream's error reply before it is relayed: an upstream that echoes the
//! provider key (in its body, or in a header such as `x-echo-auth: Bearer sk-...`) must not
//! hand it to the client. Every key value of the provider is replaced, wherever it appears.

use bytes::Bytes;
use memchr::memmem;
use pingora::http::ResponseHeader;

/// What replaces a secret.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Secrets shorter than this are not searched for (they would match ordinary text).
const MIN_SECRET: usize = 8;

/// `haystack` with every occurrence of each secret replaced; `None` when nothing matched.
pub fn scrub_bytes<'a>(haystack: &[u8], secrets: impl Iterator<Item = &'a str> + Clone) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    for secret in secrets.filter(|s| s.len() >= MIN_SECRET) {
        let source = current.as_deref().unwrap_or(haystack);
        let finder = memmem::Finder::new(secret.as_bytes());
        if finder.find(source).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(source.len());
        let mut last = 0;
        for at in finder.find_iter(source) {
            out.extend_from_slice(&source[last..at]);
            out.extend_from_slice(REDACTED);
            last = at + secret.len();
        }
        out.extend_from_slice(&source[last..]);
        current = Some(out);
    }
    current
}

/// Scrubs an error reply's headers and body of `secrets`.
pub fn scrub_reply<'a>(
    head: &mut ResponseHeader,
    body: Bytes,
    secrets: impl Iterator<Item = &'a str> + Clone,
) -> Bytes {
    let tainted: Vec<(http::HeaderName, Vec<u8>)> = head
        .headers
        .iter()
        .filter_map(|(name, value)| scrub_bytes(value.as_bytes(), secrets.clone()).map(|clean| (name.clone(), clean)))
        .collect();
    for (name, clean) in tainted {
        // Every value of a tainted header name is replaced by the scrubbed first one.
        let _ = head.remove_header(&name);
        let _ = head.insert_header(name, clean);
    }
    match scrub_bytes(&body, secrets) {
        Some(clean) => Bytes::from(clean),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_everywhere() {
        let secrets = ["sk-live-123456789", "other-secret-key"];
        let body = br#"{"error":"bad key sk-live-123456789 (Bearer sk-live-123456789)"}"#;
        let clean = scrub_bytes(body, secrets.iter().copied()).expect("matched");
        assert_eq!(
            String::from_utf8(clean).expect("utf8"),
            r#"{"error":"bad key [REDACTED] (Bearer [REDACTED])"}"#
        );
        assert_eq!(scrub_bytes(b"nothing here", secrets.iter().copied()), None);
        assert_eq!(
            scrub_bytes(b"short k", ["k"].iter().copied()),
            None,
            "too short to search"
        );
        let mut head = ResponseHeader::build(401, None).expect("head");
        head.insert_header("x-echo-auth", "Bearer sk-live-123456789")
            .expect("h");
        head.insert_header("x-other", "fine").expect("h");
        let body = scrub_reply(&mut head, Bytes::from_static(b"{}"), secrets.iter().copied());
        assert_eq!(&body[..], b"{}");
        assert_eq!(
            head.headers.get("x-echo-auth").map(|v| v.as_bytes()),
            Some(&b"Bearer [REDACTED]"[..])
        );
        assert_eq!(head.headers.get("x-other").map(|v| v.as_bytes()), Some(&b"fine"[..]));
    }
}
