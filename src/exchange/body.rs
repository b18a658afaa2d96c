//! Reading the client's whole request body before an upstream is chosen, bounded by the size
//! cap, answering `Expect: 100-continue` first; and, after a 413, draining what the client
//! still sends (a lingering close, as nginx does), so a client that sent its whole body gets
//! to read the 413 instead of a broken pipe.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// What reading the body gave.
pub enum BodyRead {
    /// The whole body.
    Complete(Bytes),
    /// It is larger than the limit.
    TooLarge,
    /// Its framing is invalid (bad chunk sizes) or the client broke off.
    Unreadable,
}

/// The most a lingering close reads and throws away.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// The longest a lingering close waits.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what is left of the request body, bounded in size and time.
pub async fn drain(session: &mut Session) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            seen += chunk.len();
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Reads the whole request body, bounded by `limit` (checked against `Content-Length` first, so
/// an oversized upload is refused before it is read).
pub async fn read_body(session: &mut Session, limit: usize) -> pingora::Result<BodyRead> {
    match read(session, limit).await {
        Ok(Some(body)) => Ok(BodyRead::Complete(body)),
        Ok(None) => Ok(BodyRead::TooLarge),
        Err(e) if matches!(e.etype(), pingora::ErrorType::WriteError) => Err(e),
        Err(_) => Ok(BodyRead::Unreadable),
    }
}

async fn read(session: &mut Session, limit: usize) -> pingora::Result<Option<Bytes>> {
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
