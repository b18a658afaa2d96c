//! The inference handler for OpenAI- and Anthropic-shaped routes: read the body under the cap,
//! read its head, run the filter chain, then hand the plan of attempts to the forwarder.

use std::sync::Arc;

use asbru_filters::auth::Credentials;
use asbru_filters::governance::Estimate;
use asbru_filters::{GatewayRequest, Rejection};
use asbru_providers::errors::{ErrorContext, WireError};
use asbru_providers::formats::openai::{BodyError, RequestHead};
use asbru_store::catalog::RequestType;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use crate::forward::{self, Exchange, Governed};
use crate::respond;
use crate::routes::Ingress;
use crate::state::Gateway;

/// Where the model comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// The body's `model`, with this provider assumed when it has no prefix.
    Model {
        /// Provider implied by the route.
        default_provider: Option<&'static str>,
    },
    /// An Azure SDK path's deployment (`azure/<deployment>`, or `<provider>/<model>` if prefixed).
    AzureDeployment(String),
}

/// Handles one inference request end to end.
pub async fn handle(
    state: &Arc<Gateway>,
    session: &mut Session,
    request_id: &str,
    request_type: RequestType,
    ingress: Ingress,
    target: Target,
) -> pingora::Result<()> {
    let live = state.live.load_full();
    let snapshot = &live.snapshot;
    let mut err_ctx = ErrorContext {
        request_id: Some(request_id),
        request_type: Some(request_type.as_str()),
        ..Default::default()
    };
    let body = match read_body(session, snapshot.max_request_body_bytes).await? {
        Some(body) => body,
        None => {
            // The rest of the body is unread, so this connection cannot carry another request.
            session.set_keepalive(None);
            let limit_mb = snapshot.max_request_body_bytes / (1024 * 1024);
            let err = WireError {
                status: 413,
                ..WireError::bad_request(format!(
                    "request body is larger than the {limit_mb} MB limit (server.max_request_body_size_mb)"
                ))
            };
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
    };
    let head = match RequestHead::parse(&body) {
        Ok(head) => head,
        Err(BodyError::Malformed(reason)) => {
            let err = WireError::bad_request(format!("invalid JSON in request body: {reason}"));
            return respond::error(session, ingress, &err, &err_ctx).await;
        }
        Err(BodyError::InvalidField(reason)) => {
            return respond::error(session, ingress, &WireError::bad_request(reason), &err_ctx).await;
        }
    };
    if head.stream {
        err_ctx.request_type = Some(request_type.stream_name());
    }
    let (model_requested, default_provider) = match target {
        Target::Model { default_provider } => match head.model.clone() {
            Some(model) => (model, default_provider),
            None => {
                let err = WireError::bad_request("model is required (format: provider/model)");
                return respond::error(session, ingress, &err, &err_ctx).await;
            }
        },
        Target::AzureDeployment(deployment) => (deployment, Some("azure")),
    };
    err_ctx.model_requested = Some(&model_requested);
    let request = GatewayRequest {
        request_type,
        stream: head.stream,
        model_requested: model_requested.clone(),
        default_provider,
        fallbacks: head.fallbacks.clone(),
        credentials: credentials(session),
        estimate: Estimate {
            input_tokens: body.len() as u64,
            max_output_tokens: head.max_tokens,
        },
        now: crate::state::unix_now(),
    };
    let mut decision = match state.chain.run(&live, &request) {
        Ok(decision) => decision,
        Err(rejection) => {
            if let Some(decision) = rejection.decision {
                state.metrics.governance_rejections.with_label_values(&[decision]).inc();
                tracing::info!(request_id, decision, "request refused: {}", rejection.message);
            }
            return respond::error(session, ingress, &rejection_to_wire(rejection), &err_ctx).await;
        }
    };
    let mut governed = Governed {
        live: &live,
        vk: decision.vk.take(),
        ticket: decision.ticket.take(),
        estimate: request.estimate,
        now: request.now,
        billable: request_type.is_billable(),
    };
    let req_headers = &session.req_header().headers;
    let header = |name: &str| req_headers.get(name).map(|v| v.as_bytes().to_vec());
    let exchange = Exchange {
        request_id,
        request_type,
        ingress,
        stream: head.stream,
        head: &head,
        body: &body,
        model_requested: &model_requested,
        forwarded_headers: crate::headers::extra_headers(session.req_header()),
        accept: header("accept"),
        anthropic_version: header("anthropic-version"),
        anthropic_beta: header("anthropic-beta"),
    };
    forward::run(state, session, &exchange, &decision.plan, &mut governed).await
}

/// The headers that may carry a virtual key.
fn credentials(session: &Session) -> Credentials {
    let headers = &session.req_header().headers;
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let bearer = text("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
    });
    Credentials {
        virtual_key: text("x-bf-vk"),
        bearer,
        x_api_key: text("x-api-key"),
        x_goog_api_key: text("x-goog-api-key"),
        api_key: text("api-key"),
    }
}

fn rejection_to_wire(rejection: Rejection) -> WireError {
    WireError {
        status: rejection.status,
        is_bifrost_error: rejection.status >= 500,
        error_type: rejection.kind,
        code: None,
        message: rejection.message,
        decision: rejection.decision,
    }
}

/// Reads the whole request body; `None` when it exceeds `limit` (checked against
/// `Content-Length` first, so an oversized upload is refused before it is read).
async fn read_body(session: &mut Session, limit: usize) -> pingora::Result<Option<Bytes>> {
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
