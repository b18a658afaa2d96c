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
    /// It stopped arriving, or arrives slower than the minimum rate.
    TooSlow,
}

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, bytes.
    pub max: usize,
    /// Longest wait for the next bytes.
    pub read_timeout: Duration,
    /// Slowest rate, bytes a second, after [`RATE_GRACE`] (0: none).
    pub min_rate: u64,
}

/// How long a body may arrive at any rate before the minimum rate applies.
pub const RATE_GRACE: Duration = Duration::from_secs(5);

/// Reading failed in a way that is not a framing error.
enum Failure {
    Slow,
    Stream(Box<pingora::Error>),
}

impl From<Box<pingora::Error>> for Failure {
    fn from(e: Box<pingora::Error>) -> Failure {
        Failure::Stream(e)
    }
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

/// Reads the whole request body under `limits` (the size checked against `Content-Length`
/// first, so an oversized upload is refused before it is read).
pub async fn read_body(session: &mut Session, limits: BodyLimits) -> pingora::Result<BodyRead> {
    match read(session, limits).await {
        Ok(Some(body)) => Ok(BodyRead::Complete(body)),
        Ok(None) => Ok(BodyRead::TooLarge),
        Err(Failure::Slow) => Ok(BodyRead::TooSlow),
        Err(Failure::Stream(e)) if matches!(e.etype(), pingora::ErrorType::WriteError) => Err(e),
        Err(Failure::Stream(_)) => Ok(BodyRead::Unreadable),
    }
}

async fn read(session: &mut Session, limits: BodyLimits) -> Result<Option<Bytes>, Failure> {
    let limit = limits.max;
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
    let started = std::time::Instant::now();
    let mut body = BytesMut::with_capacity(declared.map(|l| l as usize).unwrap_or(0).min(limit));
    loop {
        let chunk = match tokio::time::timeout(limits.read_timeout, session.read_request_body()).await {
            Ok(read) => read?,
            Err(_) => return Err(Failure::Slow),
        };
        let Some(chunk) = chunk else {
            break;
        };
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
        // A body dripping in (slowloris) holds a connection and a task: past the grace period
        // it must keep up the minimum rate on average.
        let elapsed = started.elapsed();
        if limits.min_rate > 0
            && elapsed > RATE_GRACE
            && (body.len() as f64) < limits.min_rate as f64 * elapsed.as_secs_f64()
        {
            return Err(Failure::Slow);
        }
    }
    Ok(Some(body.freeze()))
}
