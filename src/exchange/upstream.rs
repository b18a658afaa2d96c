//! One request to one upstream through Pingora's pooled connector: the peer, the request head
//! with the provider's auth, the send, and the response head. Errors come back as values whose
//! messages carry no address or secret.

use std::net::SocketAddr;
use std::time::Duration;

use asbru_filters::snapshot::{BedrockKey, NetworkSettings, ProviderKey, ProviderRuntime, Upstream};
use asbru_providers::errors::WireError;
use asbru_providers::provider::{self, Wire};
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Session;
use pingora::upstreams::peer::{HttpPeer, Peer};
use rand::Rng;
use tokio::time::{Instant, timeout_at};

use super::peer::UpstreamPeer;
use super::request_head::{InvalidHead, RequestHead};
use crate::state::Gateway;

/// Longest time spent establishing one upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries on a pooled connection the upstream had already closed.
const STALE_CONNECTION_RETRIES: usize = 2;

/// What to send upstream.
pub struct UpstreamRequest<'a> {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub path: &'a str,
    /// Body; `None` for GET.
    pub body: Option<Bytes>,
    /// The client's `Accept`, passed on.
    pub accept: Option<&'a [u8]>,
    /// `x-bf-eh-*` headers.
    pub forwarded: &'a [(String, Vec<u8>)],
    /// Headers filters added for this try (`traceparent`).
    pub attempt_headers: &'a [(http::HeaderName, http::HeaderValue)],
    /// The client's `anthropic-version`, for Anthropic upstreams.
    pub anthropic_version: Option<&'a [u8]>,
    /// The client's `anthropic-beta`, for Anthropic upstreams.
    pub anthropic_beta: Option<&'a [u8]>,
    /// A Vertex AI access token, sent instead of the key's value.
    pub bearer: Option<&'a str>,
    /// The body's content type when it is not JSON (a multipart upload).
    pub content_type: Option<&'a [u8]>,
}

/// Why one try at an upstream failed.
pub struct AttemptError {
    /// The error to report if this is the last try.
    pub error: WireError,
    /// Whether another try may succeed.
    pub retryable: bool,
}

fn build_request_head(
    provider: &ProviderRuntime,
    upstream: &Upstream,
    key: Option<&ProviderKey>,
    request: &UpstreamRequest<'_>,
) -> Result<RequestHead, InvalidHead> {
    use http::header;
    let mut head = RequestHead::new(request.method, request.path)?;
    head.set(header::HOST, upstream.authority.as_str())?;
    head.set(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("asbru/", env!("CARGO_PKG_VERSION"))),
    )?;
    if let Some(body) = &request.body {
        match request.content_type {
            Some(content_type) => head.set(header::CONTENT_TYPE, content_type)?,
            None => head.set(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))?,
        }
        head.set(header::CONTENT_LENGTH, HeaderValue::from(body.len()))?;
    }
    // AWS answers JSON, or its event stream, whatever the client accepts.
    match request.accept.filter(|_| provider.wire != Wire::Bedrock) {
        Some(accept) => head.set(header::ACCEPT, accept)?,
        None => head.set(header::ACCEPT, HeaderValue::from_static("application/json"))?,
    }
    for (name, value) in request.forwarded {
        head.set(name.as_str(), value.as_slice())?;
    }
    for (name, value) in request.attempt_headers {
        head.set(name.clone(), value.clone())?;
    }
    let client = provider::ClientHeaders {
        anthropic_version: request.anthropic_version,
        anthropic_beta: request.anthropic_beta,
    };
    for (name, value) in provider::wire_headers(provider.wire, &client) {
        head.set(name, value)?;
    }
    // Configured values may be secrets (`env.` references): kept out of debug output.
    for (name, value) in &provider.network.extra_headers {
        head.set(name.as_str(), sensitive(value.clone())?)?;
    }
    let aws = key
        .and_then(|k| k.bedrock.as_deref())
        .filter(|_| provider.wire == Wire::Bedrock);
    match (key, aws) {
        (
            _,
            Some(BedrockKey {
                credentials: Some(credentials),
                region,
                ..
            }),
        ) => {
            for (name, value) in sign_aws(upstream, request, credentials, region)? {
                head.set(name, sensitive(value)?)?;
            }
        }
        (Some(key), _) => match (&key.auth, provider.wire) {
            (Some(auth), _) => head.set(auth.name, auth.value.clone())?,
            (None, Wire::Vertex) => {
                let (name, value) = provider::vertex::auth_header(request.bearer, &key.secret);
                head.set(name, sensitive(value)?)?;
            }
            (None, wire) => {
                let (name, value) = provider::auth_header(wire, &key.secret);
                head.set(name, sensitive(value)?)?;
            }
        },
        (None, _) => {}
    }
    Ok(head)
}

/// A credential's header value, marked sensitive (kept out of debug output and HPACK tables).
fn sensitive(value: String) -> Result<HeaderValue, InvalidHead> {
    let mut value = HeaderValue::try_from(value).map_err(|_| InvalidHead::Field)?;
    value.set_sensitive(true);
    Ok(value)
}

/// SigV4 headers for a Bedrock request, signing what is sent: the method, the URL (host and
/// path as written on the wire), the content type and the exact body bytes.
fn sign_aws(
    upstream: &Upstream,
    request: &UpstreamRequest<'_>,
    credentials: &provider::bedrock::AwsCredentials,
    region: &str,
) -> Result<Vec<(&'static str, String)>, InvalidHead> {
    let scheme = if upstream.tls { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", upstream.authority, request.path);
    let body = request.body.as_deref().unwrap_or_default();
    // The host is signed as written in the Host header (a port included), not as the signer
    // would derive it from the URL (which drops a default port).
    let with_body = [
        ("host", upstream.authority.as_str()),
        ("content-type", "application/json"),
    ];
    let signed: &[(&str, &str)] = if request.body.is_some() {
        &with_body
    } else {
        &with_body[..1]
    };
    provider::bedrock::sign(
        credentials,
        &provider::bedrock::SignInput {
            method: request.method,
            url: &url,
            headers: signed,
            body,
            region,
            service: provider::bedrock::SERVICE,
            time: std::time::SystemTime::now(),
            content_sha256_header: false,
        },
    )
    .map_err(|_| InvalidHead::Field)
}

#[async_trait::async_trait]
impl crate::vertex_auth::FormPoster for Gateway {
    async fn post_form(
        &self,
        upstream: &Upstream,
        net: &NetworkSettings,
        path: &str,
        form: String,
        limit: usize,
        deadline: Instant,
    ) -> Result<(u16, Bytes), &'static str> {
        post_form(self, upstream, net, path, form, limit, deadline).await
    }
}

/// One `application/x-www-form-urlencoded` POST outside any provider (an OAuth2 token
/// exchange): the status and the body, at most `limit` bytes. The error says what went wrong
/// in words that carry no address or secret. The connection trusts what `net` trusts.
pub async fn post_form(
    state: &Gateway,
    upstream: &Upstream,
    net: &NetworkSettings,
    path: &str,
    form: String,
    limit: usize,
    deadline: Instant,
) -> Result<(u16, Bytes), &'static str> {
    let addr = *upstream
        .addrs
        .load()
        .first()
        .ok_or("has a host name that did not resolve")?;
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
    peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
    apply_trust(&mut peer, net);
    let head = (|| -> pingora::Result<RequestHeader> {
        let mut head = RequestHeader::build("POST", path.as_bytes(), Some(5))?;
        head.insert_header("host", upstream.authority.as_str())?;
        head.insert_header("user-agent", concat!("asbru/", env!("CARGO_PKG_VERSION")))?;
        head.insert_header("content-type", "application/x-www-form-urlencoded")?;
        head.insert_header("content-length", form.len().to_string())?;
        head.insert_header("accept", "application/json")?;
        Ok(head)
    })()
    .map_err(|_| "has a path that cannot be sent")?;
    let (mut session, _) = timeout_at(deadline, state.connector.get_http_session(&peer))
        .await
        .map_err(|_| "did not answer in time")?
        .map_err(|_| "could not be reached")?;
    timeout_at(
        deadline,
        send_and_read_head(&mut session, head, Some(Bytes::from(form))),
    )
    .await
    .map_err(|_| "did not answer in time")?
    .map_err(|_| "broke the connection")?;
    let status = session.response_header().map_or(502, |h| h.status.as_u16());
    let body = read_whole_body(state, session, &peer, limit, deadline)
        .await
        .ok_or("sent a reply that could not be read")?;
    Ok((status, body))
}

/// The provider's TLS trust on a peer: `insecure_skip_verify`, and `ca_cert_pem` with the pool
/// group that keeps connections verified under one trust store from serving another.
fn apply_trust(peer: &mut HttpPeer, net: &NetworkSettings) {
    if net.insecure_skip_verify {
        peer.options.verify_cert = false;
        peer.options.verify_hostname = false;
    }
    peer.options.ca = net.trusted_ca.clone();
    peer.group_key = net.trust_group;
}

fn make_peer(upstream: &Upstream, net: &NetworkSettings, addr: SocketAddr) -> UpstreamPeer {
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
    peer.options.connection_timeout = Some(CONNECT_TIMEOUT.min(net.request_timeout));
    peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT.min(net.request_timeout));
    apply_trust(&mut peer, net);
    if net.enforce_http2 {
        peer.options.set_http_version(2, 2);
    }
    UpstreamPeer(peer)
}

/// Sends one request to `upstream` and reads the response head. The returned session is ready
/// for body reads.
pub async fn send(
    state: &Gateway,
    provider: &ProviderRuntime,
    upstream: &Upstream,
    key: Option<&ProviderKey>,
    request: &UpstreamRequest<'_>,
    deadline: Instant,
) -> Result<(HttpSession, UpstreamPeer), AttemptError> {
    let name = &provider.name;
    let addrs = upstream.addrs.load();
    let addr = match addrs.len() {
        0 => {
            return Err(AttemptError {
                error: WireError::gateway(
                    502,
                    "api_error",
                    format!("provider {name} is unreachable: its host name did not resolve"),
                ),
                retryable: true,
            });
        }
        1 => addrs[0],
        n => addrs[rand::rng().random_range(0..n)],
    };
    let peer = make_peer(upstream, &provider.network, addr);
    let head = build_request_head(provider, upstream, key, request).map_err(|invalid| AttemptError {
        error: WireError::gateway(
            500,
            "api_error",
            match invalid {
                InvalidHead::Target => format!(
                    "provider {name}: the request path is not a valid HTTP path (a request_path_overrides entry must start with '/')"
                ),
                InvalidHead::Field => {
                    format!("provider {name}: the request headers (key or extra_headers) contain invalid characters")
                }
            },
        ),
        retryable: false,
    })?;
    let timeout_error = || AttemptError {
        error: WireError::gateway(
            504,
            "api_error",
            format!(
                "provider {name} did not answer within {}s",
                provider.network.request_timeout.as_secs()
            ),
        )
        .with_code("upstream_timeout"),
        retryable: true,
    };
    // The head and body go out in one write (see `write_request`); the head is written once,
    // and reused when a stale pooled connection forces another try.
    let head_bytes = head.to_http1();
    let mut stale_retries = 0;
    loop {
        let (session, reused) = match timeout_at(deadline, state.connector.get_http_session(&peer)).await {
            Err(_) => return Err(timeout_error()),
            Ok(Err(e)) => {
                let timed_out = matches!(
                    e.etype(),
                    pingora::ErrorType::ConnectTimedout | pingora::ErrorType::TLSHandshakeTimedout
                );
                if timed_out {
                    return Err(timeout_error());
                }
                return Err(AttemptError {
                    error: WireError::gateway(502, "api_error", format!("could not connect to provider {name}"))
                        .with_code("upstream_unreachable"),
                    retryable: true,
                });
            }
            Ok(Ok(pair)) => pair,
        };
        let sent = timeout_at(deadline, async {
            match session {
                HttpSession::H1(h1) => {
                    let mut h1 = write_request(h1, &head_bytes, request.body.as_ref(), &peer).await?;
                    h1.read_response().await?;
                    Ok(HttpSession::H1(h1))
                }
                mut other => {
                    send_and_read_head(&mut other, head.to_pingora()?, request.body.clone()).await?;
                    Ok(other)
                }
            }
        })
        .await;
        match sent {
            Err(_) => return Err(timeout_error()),
            Ok(Ok(session)) => return Ok((session, peer)),
            Ok(Err(_)) if reused && stale_retries < STALE_CONNECTION_RETRIES => {
                // A pooled connection the upstream had closed; nothing was processed. Try a new one.
                stale_retries += 1;
            }
            Ok(Err::<HttpSession, pingora::BError>(_)) => {
                return Err(AttemptError {
                    error: WireError::gateway(
                        502,
                        "api_error",
                        format!("the connection to provider {name} failed before it answered"),
                    )
                    .with_code("upstream_connection_failed"),
                    retryable: true,
                });
            }
        }
    }
}

/// Writes a whole HTTP/1.1 request in one write, as nginx's `writev` does. Pingora's HTTP/1
/// client flushes the head before the body (two sends, each paying the receiver's wake-up on
/// loopback), so the pooled connection is taken out of its session, written directly, and
/// wrapped in a fresh session to read the response; the connection goes back to the pool as
/// usual when the body ends. Head and body are handed over as two slices, which a plain
/// connection (it has no write buffer) sends with one `writev`, the body not copied.
async fn write_request(
    h1: Http1Session,
    head: &Bytes,
    body: Option<&Bytes>,
    peer: &UpstreamPeer,
) -> pingora::Result<Http1Session> {
    use bytes::Buf;
    use tokio::io::AsyncWriteExt;
    let mut stream = h1.into_inner();
    let mut wire = head.clone().chain(body.cloned().unwrap_or_default());
    stream
        .write_all_buf(&mut wire)
        .await
        .map_err(|e| pingora::Error::because(pingora::ErrorType::WriteError, "writing the request", e))?;
    stream
        .flush()
        .await
        .map_err(|e| pingora::Error::because(pingora::ErrorType::WriteError, "flushing the request", e))?;
    Ok(Http1Session::new_with_options(stream, peer))
}

async fn send_and_read_head(
    session: &mut HttpSession,
    head: RequestHeader,
    body: Option<Bytes>,
) -> pingora::Result<()> {
    session.write_request_header(Box::new(head)).await?;
    if let Some(body) = body {
        session.write_request_body(body, true).await?;
    }
    session.finish_request_body().await?;
    session.read_response_header().await?;
    Ok(())
}

/// Reads a whole response body, bounded by `limit` bytes and `deadline`; returns the connection to
/// the pool when the body ended cleanly. `None` if it was too large, late or broken.
pub async fn read_whole_body<P: Peer + Send + Sync + 'static>(
    state: &Gateway,
    mut session: HttpSession,
    peer: &P,
    limit: usize,
    deadline: Instant,
) -> Option<Bytes> {
    let body = read_body(&mut session, limit, deadline).await?;
    state.connector.release_http_session(session, peer, None).await;
    Some(body)
}

/// Reads a whole response body, bounded by `limit` bytes and `deadline`, leaving the session to
/// the caller (its response head still readable); hand it back with
/// `Connector::release_http_session` once done. `None` if the body was too large, late or
/// broken (the session must then be dropped, not pooled).
pub async fn read_body(session: &mut HttpSession, limit: usize, deadline: Instant) -> Option<Bytes> {
    let mut body = BytesMut::new();
    loop {
        match timeout_at(deadline, session.read_response_body()).await {
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > limit {
                    return None;
                }
                if body.is_empty() && session.response_done() {
                    // The common case: the whole body arrived in one read; no copy.
                    return Some(chunk);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            _ => return None,
        }
    }
    Some(body.freeze())
}
