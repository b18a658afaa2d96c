//! Connection-level limits that Pingora's HTTP/1 server does not enforce by itself:
//!
//! - a cap on open downstream connections (`server.max_connections`): one past the cap is
//!   answered 503 in Bifrost's error shape and closed;
//! - a deadline for receiving each request head (`server.header_read_timeout_seconds`, like
//!   nginx's `client_header_timeout`): counted from the accept for a connection's first request,
//!   and from the first byte of each later one, so a client dripping a head byte by byte is cut
//!   off. Idle time between keep-alive requests is not counted; the keep-alive timeout covers it;
//! - a body on Pingora's own reply to a head it cannot parse (Pingora writes a bodiless 400):
//!   it is replaced by a 400 in Bifrost's error shape, with `Connection: close`.
//!
//! Before any of that, a listener's [`Entry`] reads the PROXY protocol header and runs the TLS
//! handshake, both within the handshake deadline. HTTP/2 connections (by ALPN, or h2c's
//! preface) have no head deadline: their streams are multiplexed, and HTTP/2's idle timeout
//! and stream cap apply instead.
//!
//! Each accepted stream is wrapped in [`GuardedStream`], which watches reads and writes. The
//! proxy tells it where a request is through [`head_accepted`] and [`request_done`], so the
//! per-request cost is two relaxed atomic stores and, only while a head is incomplete, a timer.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use asbru_providers::errors::{ErrorContext, WireError, bifrost_body};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The limits one listener's connections are held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once (0: no cap).
    pub max_connections: usize,
    /// Longest time to receive one request head (zero: no deadline).
    pub header_timeout: Duration,
    /// Once the listener stops (a graceful stop or an upgrade), how long idle keep-alive
    /// connections stay open: each request they still bring is answered with `Connection:
    /// close`. The server's grace period.
    pub idle_drain: Duration,
}

/// How a listener's connections begin, before HTTP.
#[derive(Default)]
pub struct Entry {
    /// A PROXY protocol header comes first.
    pub proxy_protocol: bool,
    /// The TLS handshake to run.
    pub tls: Option<Arc<pingora::listeners::tls::Acceptor>>,
    /// Longest time for the PROXY header and the TLS handshake together.
    pub handshake_timeout: Duration,
    /// Cleartext HTTP/2 is served: a connection opening with its preface has no head deadline.
    pub h2c: bool,
    /// When not empty, a PROXY header is accepted only from these peers.
    pub trusted: Arc<crate::edge::client_addr::TrustedProxies>,
}

impl Entry {
    /// Reads the PROXY header and runs the TLS handshake; `None` when the connection is to be
    /// dropped (no header, a failed or too slow handshake).
    async fn open(&self, stream: Stream) -> Option<Stream> {
        if !self.proxy_protocol && self.tls.is_none() {
            return Some(stream);
        }
        let opening = async {
            let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
                tracing::warn!("a connection that is not a TCP stream cannot carry PROXY or TLS; closed");
                return None;
            };
            if self.proxy_protocol {
                let peer = l4
                    .get_socket_digest()
                    .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
                if !self.trusted.is_empty() && !peer.is_some_and(|ip| self.trusted.trusts(ip)) {
                    tracing::debug!("PROXY header refused from {peer:?}: not in server.trusted_proxies");
                    return None;
                }
                if let Err(e) = crate::edge::proxy_protocol::read_header(&mut l4).await {
                    tracing::debug!("connection closed: {e}");
                    return None;
                }
            }
            match &self.tls {
                Some(acceptor) => match acceptor.tls_handshake(*l4).await {
                    Ok(tls) => Some(Box::new(tls) as Stream),
                    Err(e) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        None
                    }
                },
                None => Some(l4 as Stream),
            }
        };
        match tokio::time::timeout(self.handshake_timeout, opening).await {
            Ok(opened) => opened,
            Err(_) => {
                tracing::debug!(
                    "connection closed: handshake not finished within {:?}",
                    self.handshake_timeout
                );
                None
            }
        }
    }
}

/// A [`ServerApp`] wrapper that applies [`Limits`] to every connection before `inner` sees it.
pub struct Guarded<A> {
    inner: Arc<A>,
    limits: Limits,
    entry: Entry,
    open: Arc<AtomicUsize>,
}

impl<A> Guarded<A> {
    /// Wraps `inner`; `open` counts connections over every listener sharing it.
    pub fn new(inner: A, limits: Limits, entry: Entry, open: Arc<AtomicUsize>) -> Self {
        Guarded {
            inner: Arc::new(inner),
            limits,
            entry,
            open,
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let slot = OpenSlot::take(&self.open);
        if self.limits.max_connections > 0 && slot.count > self.limits.max_connections {
            // A TLS client could not read a plaintext reply: it is just closed.
            if self.entry.tls.is_none() {
                Box::pin(refuse_over_cap(&mut stream)).await;
            }
            return None;
        }
        // The TLS handshake and the PROXY header read are boxed: their state lives only until
        // the connection is open, instead of inside this future for the connection's life.
        let stream = Box::pin(self.entry.open(stream)).await?;
        let guarded: Stream = if self.limits.header_timeout.is_zero() && self.limits.max_connections == 0 {
            // Nothing to watch: the stream is handed over as accepted (Pingora's 400 stays bodiless).
            drop(slot);
            stream
        } else {
            Box::new(GuardedStream::new(
                stream,
                self.limits.header_timeout,
                self.entry.h2c,
                slot,
            ))
        };
        // HTTP/1 keep-alive loops inside `inner`; a stream handed back is fed to it again.
        let mut next = self.inner.process_new(guarded, shutdown).await;
        while let Some(stream) = next {
            next = self.inner.process_new(stream, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        // The listener has stopped accepting (a graceful stop or an upgrade). Idle keep-alive
        // connections stay open through the grace period, each request they bring answered
        // with `Connection: close`, rather than being closed now: a client writing to a
        // connection at the instant it is closed sees a reset instead of a reply. Those still
        // idle at the end of the grace period close with the process.
        if self.open.load(Ordering::Relaxed) > 0 && !self.limits.idle_drain.is_zero() {
            tokio::time::sleep(self.limits.idle_drain).await;
        }
        self.inner.cleanup().await;
    }
}

/// Answers a connection past the cap: 503 and close, without reading the request.
async fn refuse_over_cap(stream: &mut Stream) {
    let error = WireError::gateway(503, "server_overloaded", "too many open connections; retry later");
    let reply = error_reply(&error);
    // The client may already be gone; there is nothing more to do either way.
    let _ = stream.write_all(&reply).await;
    let _ = stream.flush().await;
    // Lingering close: read and drop what the client already sent (bounded), so closing with
    // unread input does not reset the connection before the client has read the 503.
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while drained < 64 * 1024 {
            match tokio::io::AsyncReadExt::read(stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Shutdown::shutdown(stream.as_mut()).await;
}

/// A complete HTTP/1.1 reply carrying `error` in Bifrost's shape, closing the connection.
fn error_reply(error: &WireError) -> Vec<u8> {
    let body = bifrost_body(error, &ErrorContext::default());
    let reason = http::StatusCode::from_u16(error.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut reply = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        error.status,
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(&body);
    reply
}

/// Counts one open connection for as long as it lives.
struct OpenSlot {
    open: Arc<AtomicUsize>,
    count: usize,
}

impl OpenSlot {
    fn take(open: &Arc<AtomicUsize>) -> OpenSlot {
        let count = open.fetch_add(1, Ordering::Relaxed) + 1;
        OpenSlot {
            open: open.clone(),
            count,
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waiting for the first byte of the next request head (keep-alive idle time).
const IDLE: u8 = 0;
/// Receiving a request head; its deadline runs.
const HEAD: u8 = 1;
/// The gateway accepted the head; the request is being served.
const SERVING: u8 = 2;
/// An HTTP/2 connection: no head deadline.
const MULTIPLEXED: u8 = 3;

/// The client preface that opens every HTTP/2 connection (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A downstream stream under [`Limits`]: see the module documentation.
pub struct GuardedStream {
    inner: Stream,
    phase: AtomicU8,
    header_timeout: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    /// A replacement reply being written, and the length of the write it replaces.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// While HTTP/2's preface may be arriving: how many of its bytes matched so far. The head
    /// deadline holds until all 24 have; a byte that differs makes it an HTTP/1 connection.
    preface: Option<u8>,
    _slot: OpenSlot,
}

impl GuardedStream {
    fn new(inner: Stream, header_timeout: Duration, h2c: bool, slot: OpenSlot) -> GuardedStream {
        let deadline = (!header_timeout.is_zero()).then(|| Instant::now() + header_timeout);
        let h2 = matches!(inner.selected_alpn_proto(), Some(pingora::protocols::ALPN::H2));
        GuardedStream {
            inner,
            phase: AtomicU8::new(HEAD),
            header_timeout,
            deadline,
            timer: None,
            replacing: None,
            // HTTP/2 by ALPN, or where h2c is served; elsewhere the preface is an HTTP/1 head
            // like any other, held to the deadline.
            preface: (h2 || h2c).then_some(0),
            _slot: slot,
        }
    }

    /// Polls the head deadline; ready once it has passed.
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// Called when the gateway has read a request head on `stream`: its deadline stops.
pub fn head_accepted(stream: Option<&Stream>) {
    if let Some(guarded) = stream.and_then(|s| s.as_any().downcast_ref::<GuardedStream>())
        && guarded.phase.load(Ordering::Relaxed) != MULTIPLEXED
    {
        guarded.phase.store(SERVING, Ordering::Relaxed);
    }
}

/// Called when a request on `stream` is finished: the next bytes start a new head.
pub fn request_done(stream: Option<&Stream>) {
    if let Some(guarded) = stream.and_then(|s| s.as_any().downcast_ref::<GuardedStream>())
        && guarded.phase.load(Ordering::Relaxed) != MULTIPLEXED
    {
        guarded.phase.store(IDLE, Ordering::Relaxed);
    }
}

/// The preface bytes matched after `read`, with `matched` matched before it; `None` once a
/// byte differs.
fn match_preface(matched: u8, read: &[u8]) -> Option<u8> {
    let start = usize::from(matched);
    let expected = &H2_PREFACE[start.min(H2_PREFACE.len())..];
    let n = read.len().min(expected.len());
    (read[..n] == expected[..n]).then(|| (start + n) as u8)
}

/// Whether `buf` is Pingora's own bodiless 400, the reply to a head it could not parse.
fn is_bodiless_400(buf: &[u8]) -> bool {
    let Some(rest) = buf
        .strip_prefix(b"HTTP/1.1 400 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 400 "))
    else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    lower.windows(17).any(|w| w == b"content-length: 0") && lower.ends_with(b"\r\n\r\n")
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(matched) = this.preface {
                    this.preface = match_preface(matched, &buf.filled()[before..]);
                    if this.preface == Some(H2_PREFACE.len() as u8) {
                        this.preface = None;
                        this.phase.store(MULTIPLEXED, Ordering::Relaxed);
                    }
                }
                if buf.filled().len() > before
                    && !this.header_timeout.is_zero()
                    && this.phase.load(Ordering::Relaxed) == IDLE
                {
                    this.phase.store(HEAD, Ordering::Relaxed);
                    this.deadline = Some(Instant::now() + this.header_timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.phase.load(Ordering::Relaxed) == HEAD && this.deadline_passed(cx) {
                    tracing::debug!("request head not received within {:?}; closing", this.header_timeout);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() && this.phase.load(Ordering::Relaxed) != SERVING && is_bodiless_400(buf) {
            let error =
                WireError::bad_request("malformed HTTP request: the request line or headers could not be parsed");
            this.replacing = Some((error_reply(&error), 0, buf.len()));
        }
        if let Some((reply, written, replaced)) = this.replacing.as_mut() {
            while *written < reply.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &reply[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let replaced = *replaced;
            this.replacing = None;
            return Poll::Ready(Ok(replaced.min(buf.len())));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_some() || (self.phase.load(Ordering::Relaxed) != SERVING && bufs.len() == 1) {
            let first = bufs.first().map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        // Pingora peeks for h2c's preface before reading a head: held to the same deadline.
        match self.deadline {
            Some(deadline) if self.phase.load(Ordering::Relaxed) == HEAD => {
                match tokio::time::timeout_at(deadline, self.inner.try_peek(buf)).await {
                    Ok(peeked) => peeked,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    )),
                }
            }
            _ => self.inner.try_peek(buf).await,
        }
    }
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h2_preface_is_matched_across_reads_and_nothing_else_is() {
        assert_eq!(match_preface(0, b"PRI * HT"), Some(8));
        assert_eq!(match_preface(8, b"TP/2.0\r\n\r\nSM\r\n\r\n"), Some(24));
        assert_eq!(match_preface(0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"), Some(24));
        assert_eq!(match_preface(0, b"POST / HTTP/1.1\r\n"), None);
        assert_eq!(match_preface(3, b"X"), None);
        assert_eq!(match_preface(0, b""), Some(0));
    }

    #[test]
    fn pingora_bodiless_400_is_recognised_and_ours_are_not() {
        assert!(is_bodiless_400(
            b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nContent-Length: 0\r\nCache-Control: private, no-store\r\n\r\n"
        ));
        assert!(!is_bodiless_400(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n"
        ));
        assert!(!is_bodiless_400(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    }

    #[test]
    fn error_reply_is_a_closing_json_reply() {
        let reply = error_reply(&WireError::gateway(503, "server_overloaded", "busy"));
        let text = String::from_utf8(reply).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["status_code"], 503);
        assert_eq!(json["error"]["type"], "server_overloaded");
    }
}
