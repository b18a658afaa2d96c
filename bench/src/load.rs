//! `asbru bench load`: an open-loop load generator. Requests are sent on a fixed schedule whatever
//! the responses do, and every latency is measured from the request's *intended* send time, so a
//! slow server cannot hide its queueing (no coordinated omission).
//!
//! With `connections`, the load is closed-loop instead: that many connections each send their
//! next request as soon as the previous response has ended, for the duration. That finds the
//! target's saturation throughput; latencies are then measured from each actual send.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::report::{LoadReport, Percentiles};

/// Longest run accepted, so that every run is bounded.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Highest rate accepted.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most closed-loop connections accepted.
pub const MAX_CONNECTIONS: usize = 10_000;

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `http://host:port/path`.
    pub url: String,
    /// Requests per second.
    pub rate: f64,
    /// How long to keep sending.
    pub duration: Duration,
    /// Requests allowed in flight at once; beyond it, sends wait (and their latency grows).
    pub max_in_flight: usize,
    /// Request body (POST); `None` sends GET.
    pub body: Option<Bytes>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Read responses as SSE and time the chunks.
    pub stream: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Allow a non-loopback target.
    pub allow_remote: bool,
    /// Share of requests (0 to 1) sent on a connection of their own, opened for them and
    /// closed after; the others reuse keep-alive connections.
    pub fresh_connections: f64,
    /// Closed loop: this many keep-alive connections, each sending its next request when the
    /// previous one has ended, for `duration` (`rate` and `max_in_flight` are then unused).
    pub connections: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            url: String::new(),
            rate: 100.0,
            duration: Duration::from_secs(10),
            max_in_flight: 256,
            body: None,
            headers: Vec::new(),
            stream: false,
            timeout: Duration::from_secs(30),
            allow_remote: false,
            fresh_connections: 0.0,
            connections: None,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL is not `http(s)://host:port/path`.
    #[error("invalid --url {0:?}: expected http://host:port/path or https://host:port/path")]
    Url(String),
    /// The host is not loopback and `--allow-remote` was not given.
    #[error("refusing to load non-loopback target {0}; pass --allow-remote to do it on purpose")]
    Remote(String),
    /// Rate, duration or in-flight limit out of bounds.
    #[error("{0}")]
    Bounds(String),
    /// A header is malformed.
    #[error("invalid header {0:?}: expected K:V")]
    Header(String),
}

struct Target {
    addr: SocketAddr,
    authority: String,
    path: String,
    /// `https`: TLS, the certificate not verified (the bench targets its own servers).
    tls: bool,
    /// The name sent by SNI.
    host: String,
}

fn parse_target(url: &str, allow_remote: bool) -> Result<Target, LoadError> {
    let uri: http::Uri = url.parse().map_err(|_| LoadError::Url(url.to_string()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(LoadError::Url(url.to_string())),
    };
    let host = uri.host().ok_or_else(|| LoadError::Url(url.to_string()))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host_bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match host_bare.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host_bare, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| LoadError::Url(url.to_string()))?,
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(LoadError::Remote(addr.to_string()));
    }
    let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        addr,
        authority,
        path,
        tls,
        host: host_bare.to_string(),
    })
}

/// Validates options and parses `K:V` headers.
pub fn parse_header(raw: &str) -> Result<(String, String), LoadError> {
    let (k, v) = raw.split_once(':').ok_or_else(|| LoadError::Header(raw.to_string()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(LoadError::Header(raw.to_string()));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// One request's measurements.
#[derive(Debug)]
enum Sample {
    Done {
        status: u16,
        latency: Duration,
        ttfb: Duration,
        first_content: Option<Duration>,
        gaps: Vec<Duration>,
    },
    Failed(&'static str),
}

fn histogram() -> Result<Histogram<u64>, LoadError> {
    // 1 µs .. 1 h at 3 significant digits.
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| LoadError::Bounds(format!("histogram: {e}")))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the load and returns the report. Bounded by `duration + timeout`.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if let Some(connections) = options.connections {
        if !(1..=MAX_CONNECTIONS).contains(&connections) {
            return Err(LoadError::Bounds(format!(
                "--connections must be between 1 and {MAX_CONNECTIONS}"
            )));
        }
        if options.fresh_connections > 0.0 {
            return Err(LoadError::Bounds(
                "--fresh-connections cannot be combined with --connections".into(),
            ));
        }
    } else if !(options.rate > 0.0 && options.rate <= MAX_RATE) {
        return Err(LoadError::Bounds(format!("--rate must be in (0, {MAX_RATE}]")));
    }
    if options.duration.is_zero() || options.duration > MAX_DURATION {
        return Err(LoadError::Bounds(format!(
            "--duration must be in (0, {}s]",
            MAX_DURATION.as_secs()
        )));
    }
    if options.max_in_flight == 0 {
        return Err(LoadError::Bounds("--max-in-flight must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&options.fresh_connections) {
        return Err(LoadError::Bounds("--fresh-connections must be between 0 and 1".into()));
    }
    let target = Arc::new(parse_target(&options.url, options.allow_remote)?);
    // Closed loop: the count is known only at the end.
    let mut scheduled = match options.connections {
        Some(_) => u64::MAX,
        None => (options.rate * options.duration.as_secs_f64()).round().max(1.0) as u64,
    };
    let connector = Arc::new(Connector::new(None));
    // Never given a session back, so every request through it opens a connection.
    let unpooled = Arc::new(Connector::new(None));
    // HTTPS on connections of their own: full handshakes, no session resumption.
    let handshakes = match target.tls && options.fresh_connections > 0.0 {
        true => Some(Arc::new(Handshakes {
            connector: crate::tls_client::connector().map_err(|e| LoadError::Bounds(format!("TLS client: {e}")))?,
            server_name: rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| LoadError::Url(options.url.clone()))?,
        })),
        false => None,
    };
    let slots = Arc::new(Semaphore::new(options.max_in_flight));
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let request = Arc::new(RequestTemplate::new(&target, options)?);
    // Closed-loop workers' pools, made before the clock starts (each loads the root store).
    let worker_connectors: Vec<Connector> = (0..options.connections.unwrap_or(0))
        .map(|_| Connector::new(None))
        .collect();
    let start = Instant::now() + Duration::from_millis(5);
    let hard_stop = start + options.duration + options.timeout + Duration::from_secs(1);

    let scheduler = match options.connections {
        Some(_) => closed_loop(
            worker_connectors,
            ClosedLoop {
                target: target.clone(),
                request: request.clone(),
                start,
                end: start + options.duration,
                timeout: options.timeout,
                stream: options.stream,
            },
            tx,
        ),
        None => open_loop(OpenLoop {
            options: options.clone(),
            scheduled,
            start,
            slots,
            connector,
            unpooled,
            handshakes,
            target: target.clone(),
            request: request.clone(),
            tx,
        }),
    };

    let mut latency = histogram()?;
    let mut ttfb = histogram()?;
    let mut first_content = histogram()?;
    let mut gaps = histogram()?;
    let mut status_counts: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut received = 0u64;
    let mut last_completion = start;
    while received < scheduled {
        let sample = match tokio::time::timeout_at(hard_stop, rx.recv()).await {
            Ok(Some(sample)) => sample,
            _ => break,
        };
        received += 1;
        match sample {
            Sample::Done {
                status,
                latency: l,
                ttfb: t,
                first_content: fc,
                gaps: g,
            } => {
                last_completion = Instant::now();
                *status_counts.entry(status).or_default() += 1;
                let _ = latency.record(micros(l));
                let _ = ttfb.record(micros(t));
                if let Some(fc) = fc {
                    let _ = first_content.record(micros(fc));
                }
                for gap in g {
                    let _ = gaps.record(micros(gap));
                }
            }
            Sample::Failed(kind) => *errors.entry(kind.to_string()).or_default() += 1,
        }
    }
    scheduler.abort();
    if options.connections.is_some() {
        scheduled = received;
    }
    if received < scheduled {
        *errors.entry("unfinished".to_string()).or_default() += scheduled - received;
    }
    let completed: u64 = status_counts.values().sum();
    let elapsed = last_completion.saturating_duration_since(start).as_secs_f64().max(1e-9);
    Ok(LoadReport {
        url: options.url.clone(),
        rate: if options.connections.is_some() {
            0.0
        } else {
            options.rate
        },
        connections: options.connections,
        duration_s: options.duration.as_secs_f64(),
        stream: options.stream,
        scheduled,
        completed,
        achieved_rate: (completed as f64 / elapsed * 10.0).round() / 10.0,
        status_counts,
        errors,
        latency_us: Percentiles::of(&latency),
        ttfb_us: Percentiles::of(&ttfb),
        first_content_us: options.stream.then(|| Percentiles::of(&first_content)),
        chunk_gap_us: options.stream.then(|| Percentiles::of(&gaps)),
    })
}

/// The open loop's inputs.
struct OpenLoop {
    options: LoadOptions,
    scheduled: u64,
    start: Instant,
    slots: Arc<Semaphore>,
    connector: Arc<Connector>,
    unpooled: Arc<Connector>,
    handshakes: Option<Arc<Handshakes>>,
    target: Arc<Target>,
    request: Arc<RequestTemplate>,
    tx: mpsc::UnboundedSender<Sample>,
}

/// Sends `scheduled` requests on a fixed schedule, each timed from its intended send time.
fn open_loop(run: OpenLoop) -> tokio::task::JoinHandle<()> {
    let OpenLoop {
        options: opts,
        scheduled,
        start,
        slots,
        connector,
        unpooled,
        handshakes,
        target,
        request,
        tx,
    } = run;
    tokio::spawn(async move {
        let interval = 1.0 / opts.rate;
        for i in 0..scheduled {
            let intended = start + Duration::from_secs_f64(i as f64 * interval);
            wait_until(intended).await;
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let fresh =
                (i as f64 * opts.fresh_connections).floor() != ((i + 1) as f64 * opts.fresh_connections).floor();
            let connector = if fresh { unpooled.clone() } else { connector.clone() };
            let (target, request, tx) = (target.clone(), request.clone(), tx.clone());
            let (timeout, stream) = (opts.timeout, opts.stream);
            let handshakes = handshakes.clone();
            tokio::spawn(async move {
                let sending = async {
                    match (&handshakes, fresh) {
                        (Some(tls), true) => one_handshake(tls, &target, &request, intended).await,
                        _ => one(&connector, &target, &request, intended, stream, !fresh).await,
                    }
                };
                let sample = match tokio::time::timeout(timeout, sending).await {
                    Ok(sample) => sample,
                    Err(_) => Sample::Failed("timeout"),
                };
                let _ = tx.send(sample);
                drop(permit);
            });
        }
    })
}

/// The closed loop's inputs.
struct ClosedLoop {
    target: Arc<Target>,
    request: Arc<RequestTemplate>,
    start: Instant,
    end: Instant,
    timeout: Duration,
    stream: bool,
}

/// One worker per connector, each sending its next request when its previous one has ended, until
/// `end`. The channel closes when the last worker stops.
fn closed_loop(
    connectors: Vec<Connector>,
    run: ClosedLoop,
    tx: mpsc::UnboundedSender<Sample>,
) -> tokio::task::JoinHandle<()> {
    let run = Arc::new(run);
    tokio::spawn(async move {
        let mut workers = tokio::task::JoinSet::new();
        for connector in connectors {
            let (run, tx) = (run.clone(), tx.clone());
            workers.spawn(async move {
                // Each worker has a pool of its own, so that it reuses its one connection. (Taking
                // a session out of the pool and writing a new one on its stream, which skips the
                // pool, measured 3.5x slower here: 14,000 against 49,000 requests/s.)
                tokio::time::sleep_until(run.start).await;
                while Instant::now() < run.end {
                    let sent = Instant::now();
                    let sending = one(&connector, &run.target, &run.request, sent, run.stream, true);
                    let sample = match tokio::time::timeout(run.timeout, sending).await {
                        Ok(sample) => sample,
                        Err(_) => Sample::Failed("timeout"),
                    };
                    let failed = matches!(sample, Sample::Failed(_));
                    if tx.send(sample).is_err() {
                        return;
                    }
                    if failed {
                        // A refused connection must not become a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            });
        }
        drop(tx);
        while workers.join_next().await.is_some() {}
    })
}

/// Tokio's timer wheel has millisecond granularity, and oversleeping would be charged to the
/// target as latency. Sleep until shortly before the send time, then yield until it arrives.
async fn wait_until(intended: Instant) {
    const SPIN_WINDOW: Duration = Duration::from_micros(1500);
    if let Some(coarse) = intended.checked_sub(SPIN_WINDOW)
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse).await;
    }
    while Instant::now() < intended {
        tokio::task::yield_now().await;
    }
}

struct RequestTemplate {
    head: RequestHeader,
    body: Option<Bytes>,
    /// The whole request as bytes, with `Connection: close` (for connections of their own).
    raw: Vec<u8>,
}

impl RequestTemplate {
    fn new(target: &Target, options: &LoadOptions) -> Result<RequestTemplate, LoadError> {
        let method = if options.body.is_some() { "POST" } else { "GET" };
        let bad_url = || LoadError::Url(options.url.clone());
        let mut head = RequestHeader::build(method, target.path.as_bytes(), None).map_err(|_| bad_url())?;
        head.insert_header("host", target.authority.as_str())
            .map_err(|_| bad_url())?;
        if let Some(body) = &options.body {
            head.insert_header("content-type", "application/json")
                .map_err(|_| bad_url())?;
            head.insert_header("content-length", body.len().to_string())
                .map_err(|_| bad_url())?;
        }
        for (k, v) in &options.headers {
            head.insert_header(k.clone(), v.as_str())
                .map_err(|_| LoadError::Header(format!("{k}:{v}")))?;
        }
        let mut raw = format!("{method} {} HTTP/1.1\r\n", target.path).into_bytes();
        for (name, value) in head.headers.iter() {
            raw.extend_from_slice(name.as_str().as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"connection: close\r\n\r\n");
        if let Some(body) = &options.body {
            raw.extend_from_slice(body);
        }
        Ok(RequestTemplate {
            head,
            body: options.body.clone(),
            raw,
        })
    }
}

/// Whether an SSE chunk carries generated content: a non-empty OpenAI `content` delta, an
/// Anthropic `text_delta`, a Gemini text part, or a Responses `response.output_text.delta`.
fn has_content(chunk: &[u8]) -> bool {
    fn non_empty_string_after(chunk: &[u8], needle: &[u8]) -> bool {
        chunk
            .windows(needle.len() + 1)
            .any(|w| w.starts_with(needle) && w[needle.len()] != b'"')
    }
    non_empty_string_after(chunk, b"\"content\":\"")
        || (chunk.windows(10).any(|w| w == b"text_delta") && non_empty_string_after(chunk, b"\"text\":\""))
        || (chunk.windows(8).any(|w| w == b"\"parts\":") && non_empty_string_after(chunk, b"\"text\":\""))
        || (chunk.windows(17).any(|w| w == b"output_text.delta") && non_empty_string_after(chunk, b"\"delta\":\""))
        // A Bedrock event-stream frame's JSON payload: `"delta":{"text":"…"}`.
        || (chunk.windows(17).any(|w| w == b"contentBlockDelta") && non_empty_string_after(chunk, b"\"text\":\""))
}

/// The client of HTTPS requests on connections of their own.
struct Handshakes {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

async fn one_handshake(tls: &Handshakes, target: &Target, request: &RequestTemplate, intended: Instant) -> Sample {
    match crate::tls_client::exchange(&tls.connector, target.addr, &tls.server_name, &request.raw, intended).await {
        Ok(done) => Sample::Done {
            status: done.status,
            latency: intended.elapsed(),
            ttfb: done.ttfb,
            first_content: None,
            gaps: Vec::new(),
        },
        Err(step) => Sample::Failed(step),
    }
}

fn peer_of(target: &Target) -> HttpPeer {
    let mut peer = HttpPeer::new(target.addr, target.tls, target.host.clone());
    if target.tls {
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
    }
    peer
}

async fn one(
    connector: &Connector,
    target: &Target,
    request: &RequestTemplate,
    intended: Instant,
    stream: bool,
    keep_alive: bool,
) -> Sample {
    let peer = peer_of(target);
    let Ok((session, _)) = connector.get_http_session(&peer).await else {
        return Sample::Failed("connect");
    };
    let (sample, session) = exchange_on(session, request, intended, stream).await;
    if keep_alive && let Some(session) = session {
        connector
            .release_http_session(session, &peer, Some(Duration::from_secs(60)))
            .await;
    }
    sample
}

/// Sends the request on `session` and reads the whole response; gives the session back when it
/// can carry another request.
async fn exchange_on(
    mut session: HttpSession,
    request: &RequestTemplate,
    intended: Instant,
    stream: bool,
) -> (Sample, Option<HttpSession>) {
    if session
        .write_request_header(Box::new(request.head.clone()))
        .await
        .is_err()
    {
        return (Sample::Failed("write"), None);
    }
    if let Some(body) = &request.body
        && session.write_request_body(body.clone(), true).await.is_err()
    {
        return (Sample::Failed("write"), None);
    }
    if session.finish_request_body().await.is_err() || session.read_response_header().await.is_err() {
        return (Sample::Failed("read"), None);
    }
    let ttfb = intended.elapsed();
    let status = session.response_header().map(|h| h.status.as_u16()).unwrap_or(0);
    let mut first_content = None;
    let mut gaps = Vec::new();
    let mut last_chunk: Option<Instant> = None;
    loop {
        match session.read_response_body().await {
            Ok(Some(chunk)) => {
                if stream {
                    let now = Instant::now();
                    if let Some(prev) = last_chunk {
                        gaps.push(now - prev);
                    }
                    last_chunk = Some(now);
                    if first_content.is_none() && has_content(&chunk) {
                        first_content = Some(now.saturating_duration_since(intended));
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return (Sample::Failed("read"), None),
        }
    }
    let latency = intended.elapsed();
    let sample = Sample::Done {
        status,
        latency,
        ttfb,
        first_content,
        gaps,
    };
    (sample, Some(session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_headers() {
        assert!(parse_target("http://127.0.0.1:8080/v1/chat/completions", false).is_ok());
        assert!(parse_target("http://localhost:8080/x", false).is_ok());
        assert!(matches!(
            parse_target("http://10.1.2.3:80/", false),
            Err(LoadError::Remote(_))
        ));
        assert!(parse_target("http://10.1.2.3:80/", true).is_ok());
        let tls = parse_target("https://localhost:8443/v1/chat/completions", false).expect("https");
        assert!(tls.tls && tls.host == "localhost" && tls.addr.port() == 8443);
        assert_eq!(
            parse_target("https://127.0.0.1/", false).map(|t| t.addr.port()).ok(),
            Some(443)
        );
        assert!(matches!(
            parse_target("ftp://127.0.0.1/", false),
            Err(LoadError::Url(_))
        ));
        assert_eq!(
            parse_header("x-bf-vk: abc").expect("ok"),
            ("x-bf-vk".into(), "abc".into())
        );
        assert!(parse_header("nocolon").is_err());
    }

    #[test]
    fn content_detection() {
        assert!(has_content(
            br#"event: response.output_text.delta
data: {"type":"response.output_text.delta","delta":"Hi"}"#
        ));
        assert!(!has_content(
            br#"data: {"type":"response.output_item.added","item":{"type":"message","content":[]}}"#
        ));
        assert!(has_content(br#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#));
        assert!(has_content(
            br#"data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}"#
        ));
        assert!(!has_content(
            br#"data: {"candidates":[{"content":{"parts":[{"text":""}]}}]}"#
        ));
        assert!(!has_content(
            br#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!has_content(b"data: [DONE]"));
        assert!(has_content(
            br#"data: {"delta":{"text":"Hi","type":"text_delta"},"index":0}"#
        ));
        assert!(!has_content(br#"data: {"content_block":{"text":"","type":"text"}}"#));
    }
}
