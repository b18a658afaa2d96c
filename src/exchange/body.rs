//! Reading the client's whole request body before an upstream is chosen, bounded by the size
//! cap, answering `Expect: 100-continue` first.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// Reads the whole request body; `None` when it exceeds `limit` (checked against
/// `Content-Length` first, so an oversized upload is refused before it is read).
pub async fn read(session: &mut Session, limit: usize) -> pingora::Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(None);
    }
    let expects_continue = session
        .req_header()
        .headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // Clients such as curl wait for this before sending large bodies.
        let head = pingora::http::ResponseHeader::build(100, None)?;
        session.write_response_header(Box::new(head), false).await?;
    }
    let mut body = BytesMut::with_capacity(declared.map(|l| l as usize).unwrap_or(0).min(limit));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
