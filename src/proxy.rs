//! The Pingora glue: `ProxyHttp` phases mapped onto the route table, the exchange and the error
//! writer. `request_filter` answers every route; `logging`, which Pingora calls after every
//! request, runs the filters' completion hooks. No business logic lives here.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use asbru_providers::errors::{ErrorContext, WireError};

use crate::exchange::{self, InFlight};
use asbru_config::catalog::{RequestType, Wire};

use crate::routes::{Match, Route, gemini_call};
use crate::state::Gateway;
use crate::{models, respond};

/// Pingora's per-request context.
#[derive(Default)]
pub struct RequestCtx {
    /// The client's `x-request-id`, or a generated UUIDv4.
    pub request_id: String,
    /// When `request_filter` started, for the HTTP metrics.
    pub started: Option<Instant>,
    /// An inference request's state, for the completion hooks.
    pub inflight: Option<InFlight>,
}

/// The gateway's `ProxyHttp` implementation.
pub struct GatewayProxy {
    state: Arc<Gateway>,
}

impl GatewayProxy {
    /// A proxy over shared state.
    pub fn new(state: Arc<Gateway>) -> GatewayProxy {
        GatewayProxy { state }
    }
}

const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a closing connection reads and drops the rest of its request body first: not when
/// the client is gone or broke the connection, nor after a 408, whose client was too slow to be
/// worth waiting for.
fn lingers(session: &Session, error: Option<&Error>) -> bool {
    let downstream_failed = error.is_some_and(|e| e.esource() == &ErrorSource::Downstream);
    let too_slow = session.response_written().is_some_and(|h| h.status.as_u16() == 408);
    !downstream_failed && !too_slow
}

/// A 414 for a URI longer than `server.max_uri_bytes`, or a 431 for a head larger than
/// `server.max_header_bytes` (names and values).
fn oversized_head(session: &Session, server: &asbru_config::model::ServerConfig) -> Option<WireError> {
    let head = session.req_header();
    let uri = head.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri > server.max_uri_bytes {
        return Some(WireError {
            status: 414,
            ..WireError::bad_request(format!(
                "the request URI is longer than {} bytes (server.max_uri_bytes)",
                server.max_uri_bytes
            ))
        });
    }
    let header_bytes: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (header_bytes > server.max_header_bytes).then(|| WireError {
        status: 431,
        ..WireError::bad_request(format!(
            "the request headers are larger than {} bytes (server.max_header_bytes)",
            server.max_header_bytes
        ))
    })
}

impl GatewayProxy {
    /// Bifrost's `http_*` metrics for one request, labelled with its route template.
    fn record_http(&self, session: &Session, status: u16, seconds: f64) {
        let bifrost = &self.state.metrics.bifrost;
        let head = session.req_header();
        let raw = head.uri.path();
        let path = crate::admin::route_template(raw).unwrap_or_else(|| self.state.routes.template(raw));
        let method = asbru_filters::telemetry::bifrost::http_method(&head.method);
        let custom: Vec<&str> = bifrost
            .custom_labels()
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let value = ["x-bf-dim-", "x-bf-prom-"]
                    .iter()
                    .find_map(|p| head.headers.get(format!("{p}{label}").as_str()))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                bifrost.custom_value(i, value)
            })
            .collect();
        bifrost.http(
            path,
            method,
            status,
            &custom,
            seconds,
            session.body_bytes_read(),
            session.body_bytes_sent(),
        );
    }
}

/// Errors on `/anthropic/...` paths use Anthropic's shape and on `/genai/...` Google's, so those
/// SDKs can read them.
fn ingress_of(session: &Session) -> Wire {
    let path = session.req_header().uri.path();
    if path.starts_with("/anthropic/") {
        Wire::Anthropic
    } else if path.starts_with("/genai/") {
        Wire::Gemini
    } else {
        Wire::OpenAi
    }
}

fn request_id(session: &Session) -> String {
    session
        .req_header()
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID_LEN)
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

/// A UUIDv7 (RFC 9562): the time in milliseconds, then bits from the thread-local RNG (no
/// getrandom syscall per request). Time-ordered ids land at the end of the request log's id
/// index instead of at random pages of it.
fn new_request_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random())
        .into_uuid()
        .to_string()
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// Every route is answered here; the upstream exchange runs inside (see `crate::exchange`).
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let started = Instant::now();
        ctx.started = Some(started);
        crate::connection::head_accepted(session.as_downstream().stream());
        crate::timer_tick::ensure();
        // HTTP/1.1 pipelining: requests sent back to back on one connection are answered in
        // order (RFC 9112 section 9.3.2) instead of the second being dropped. The setting is
        // carried to the connection's next requests.
        if !session.pipelining_enabled() {
            session.set_pipelining_enabled(true);
        }
        let server = &self.state.file.server;
        session.set_keepalive(match server.keepalive_timeout_seconds {
            0 => None,
            seconds => Some(seconds),
        });
        if let Some(err) = oversized_head(session, server) {
            session.set_keepalive(None);
            let err_ctx = ErrorContext {
                request_id: Some(&ctx.request_id),
                ..Default::default()
            };
            respond::error(session, ingress_of(session), &err, &err_ctx).await?;
            return Ok(true);
        }
        ctx.request_id = request_id(session);
        if let Some(cors) = &self.state.cors
            && cors.preflight(session, &ctx.request_id).await? == crate::cors::Preflight::Answered
        {
            return Ok(true);
        }
        let method = session.req_header().method.clone();
        let mut found = self.state.routes.find(&method, session.req_header().uri.path());
        if let Some(table) = &self.state.listener_roles {
            // Listeners with roles: `/api` and the dashboard answer only on admin listeners,
            // inference routes only on inference listeners; `/health` and `/metrics` on all.
            let local = session.server_addr().and_then(|a| a.as_inet()).copied();
            let (inference, admin) = crate::edge::roles::roles_at(table, local);
            let allowed = match found {
                // The dashboard calls `/api` on its own origin, so it lives beside it.
                Match::Found(Route::Admin | Route::Ui, _) => admin,
                Match::Found(Route::Health | Route::Metrics, _) => true,
                _ => inference,
            };
            if !allowed {
                found = Match::NotFound;
            }
        }
        let err_ctx = ErrorContext {
            request_id: Some(&ctx.request_id),
            ..Default::default()
        };
        match found {
            Match::NotFound => {
                let path = session.req_header().uri.path().to_string();
                let err = WireError::bad_request(format!("Route not found: {path}"));
                let err = WireError { status: 404, ..err };
                respond::error(session, ingress_of(session), &err, &err_ctx).await?;
            }
            Match::WrongMethod(allowed) => {
                let err = WireError::bad_request(format!("method {method} is not allowed here; use {allowed}"));
                let err = WireError { status: 405, ..err };
                let allow = [(http::header::ALLOW, http::HeaderValue::from_static(allowed))];
                respond::error_with(session, ingress_of(session), &err, &err_ctx, &allow).await?;
            }
            Match::Found(Route::Health, _) => {
                respond::json(session, 200, br#"{"status":"ok"}"#.to_vec(), &ctx.request_id).await?;
            }
            Match::Found(Route::Ui, _) => {
                crate::ui::serve(session, &ctx.request_id).await?;
            }
            Match::Found(Route::Admin, _) => {
                crate::admin::handle(&self.state, session, &ctx.request_id).await?;
            }
            Match::Found(Route::Metrics, _) => {
                // With admin auth on, `/metrics` needs it too unless `client.whitelisted_routes`
                // names it.
                let whitelisted = self
                    .state
                    .file
                    .client
                    .whitelisted_routes
                    .as_ref()
                    .is_some_and(|routes| routes.iter().any(|r| r == "/metrics"));
                let allowed = whitelisted || !crate::admin::admin_auth(&self.state).enabled;
                let verdict = if allowed {
                    Ok(())
                } else {
                    crate::admin::guard(&self.state, session)
                };
                match verdict {
                    Ok(()) => respond::metrics(session, self.state.metrics.render()).await?,
                    Err(e) => respond::json(session, e.status, e.body(), &ctx.request_id).await?,
                }
            }
            Match::Found(Route::ListModels { default_provider }, _) => {
                models::list(&self.state, session, &ctx.request_id, default_provider).await?;
            }
            Match::Found(
                Route::Inference {
                    request_type,
                    default_provider,
                    ingress,
                },
                _,
            ) => {
                let route = exchange::Route {
                    request_type,
                    ingress,
                    target: exchange::Target::Model { default_provider },
                };
                exchange::handle(&self.state, session, &ctx.request_id, started, route, &mut ctx.inflight).await?;
            }
            Match::Found(Route::RetrieveModel, rest) => {
                models::retrieve(
                    &self.state,
                    session,
                    &ctx.request_id,
                    rest.as_deref().unwrap_or_default(),
                )
                .await?;
            }
            Match::Found(Route::GeminiModels, _) => {
                models::gemini_list(&self.state, session, &ctx.request_id).await?;
            }
            Match::Found(Route::GeminiModel, rest) => {
                let Some((model, method, request_type, stream)) = rest.as_deref().and_then(gemini_call) else {
                    let err = WireError {
                        status: 404,
                        ..WireError::bad_request(
                            "unknown Gemini method: asbru serves models/{model}:generateContent, \
                             :streamGenerateContent, :countTokens, :embedContent and :batchEmbedContents",
                        )
                    };
                    let err_ctx = ErrorContext {
                        request_id: Some(&ctx.request_id),
                        ..Default::default()
                    };
                    respond::error(session, Wire::Gemini, &err, &err_ctx).await?;
                    return Ok(true);
                };
                let route = exchange::Route {
                    request_type,
                    ingress: Wire::Gemini,
                    target: exchange::Target::GeminiModel { model, method, stream },
                };
                exchange::handle(&self.state, session, &ctx.request_id, started, route, &mut ctx.inflight).await?;
            }
            Match::Found(Route::BedrockModel, rest) => {
                let Some((model, stream)) = rest.as_deref().and_then(crate::routes::bedrock_call) else {
                    let err = WireError {
                        status: 404,
                        ..WireError::bad_request(
                            "unknown Bedrock action: asbru serves /bedrock/model/{modelId}/converse and /converse-stream",
                        )
                    };
                    respond::error(session, Wire::Bedrock, &err, &err_ctx).await?;
                    return Ok(true);
                };
                let route = exchange::Route {
                    request_type: RequestType::ChatCompletion,
                    ingress: Wire::Bedrock,
                    target: exchange::Target::BedrockModel { model, stream },
                };
                exchange::handle(&self.state, session, &ctx.request_id, started, route, &mut ctx.inflight).await?;
            }
            Match::Found(Route::StoredObject { kind, default_provider }, rest) => {
                let Some(call) = crate::routes::stored_call(kind, &method, rest.as_deref().unwrap_or_default()) else {
                    let served = match kind {
                        RequestType::Files => {
                            "POST and GET /v1/files, GET and DELETE /v1/files/{id} and GET /v1/files/{id}/content"
                        }
                        RequestType::Batches => {
                            "POST and GET /v1/batches, GET /v1/batches/{id} and POST /v1/batches/{id}/cancel"
                        }
                        _ => {
                            "GET and DELETE /v1/responses/{id}, POST /v1/responses/{id}/cancel and GET \
                             /v1/responses/{id}/input_items"
                        }
                    };
                    let err = WireError {
                        status: 404,
                        ..WireError::bad_request(format!("unknown {} call: asbru serves {served}", kind.as_str()))
                    };
                    respond::error(session, Wire::OpenAi, &err, &err_ctx).await?;
                    return Ok(true);
                };
                let route = exchange::Route {
                    request_type: kind,
                    ingress: Wire::OpenAi,
                    target: exchange::Target::Stored { call, default_provider },
                };
                exchange::handle(&self.state, session, &ctx.request_id, started, route, &mut ctx.inflight).await?;
            }
            Match::Found(Route::AzureDeployment { request_type }, deployment) => {
                let route = exchange::Route {
                    request_type,
                    ingress: Wire::OpenAi,
                    target: exchange::Target::AzureDeployment(deployment.unwrap_or_default()),
                };
                exchange::handle(&self.state, session, &ctx.request_id, started, route, &mut ctx.inflight).await?;
            }
        }
        Ok(true)
    }

    /// What Pingora's error log says of a request: the method and the path, never the query (a
    /// Gemini client may put its key there, `?key=...`).
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        let head = session.req_header();
        format!("{} {}", head.method, head.uri.path())
    }

    /// Never reached: `request_filter` answers every request.
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "asbru answers every route in request_filter",
        ))
    }

    /// Pingora calls this after every request, answered in `request_filter` or not: the
    /// completion hooks get the final outcome.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // Pingora drains an unread request body after this hook; drained now, those bytes are
        // not taken for the start of the next request's head.
        let http1 = session.as_downstream().as_http1().map(|h1| h1.will_keepalive());
        if http1 == Some(true) && !session.is_body_done() {
            let drained = tokio::time::timeout(std::time::Duration::from_secs(5), session.drain_request_body()).await;
            if !matches!(drained, Ok(Ok(()))) {
                session.set_keepalive(None);
            }
        } else if http1 == Some(false) && !session.is_body_done() && lingers(session, e) {
            // Lingering close: a connection closed with request bytes still unread is reset,
            // and a client that has not read the reply yet loses it. What the client sent is
            // read and dropped first, bounded in bytes and time.
            exchange::body::drain(session).await;
        }
        crate::connection::request_done(session.as_downstream().stream());
        let status = session.response_written().map_or(0, |h| h.status.as_u16());
        if let Some(started) = ctx.started {
            self.record_http(session, status, started.elapsed().as_secs_f64());
        }
        let Some(InFlight { live, ctx }) = ctx.inflight.as_mut() else {
            return;
        };
        ctx.outcome.status = status;
        ctx.outcome.total = Some(ctx.started.elapsed());
        self.state.chain.on_complete(live, ctx);
    }

    /// A failure escaped a handler. If nothing was written yet, answer with a Bifrost 500 body that
    /// carries no internal detail; otherwise the connection is dropped so the client sees a
    /// truncated response rather than a complete-looking one.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let downstream_gone = matches!(e.etype(), ErrorType::WriteError | ErrorType::ConnectionClosed)
            && e.esource() == &ErrorSource::Downstream;
        // The connection is not reused: the logging hook treats it as closing (a bounded drain,
        // none when the client is gone) instead of draining a body for another request.
        session.set_keepalive(None);
        if downstream_gone || session.response_written().is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let (status, message) = match e.etype() {
            ErrorType::HTTPStatus(code) => (*code, "request could not be processed"),
            ErrorType::ReadError | ErrorType::ReadTimedout => (400, "could not read the request"),
            _ => (500, "internal gateway error"),
        };
        let err = WireError::gateway(status, "api_error", message);
        let err_ctx = ErrorContext {
            request_id: Some(&ctx.request_id),
            ..Default::default()
        };
        let _ = respond::error(session, ingress_of(session), &err, &err_ctx).await;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }
}
