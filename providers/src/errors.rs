//! Error bodies in each ingress wire format. Errors are values until here; this is the one place
//! they become bytes. Messages are written by the gateway, never copied from a socket error, so
//! they carry no peer address or secret.

use serde::Serialize;

/// A gateway error, ready to be rendered in an ingress format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// `false` for a bad request from the client, `true` for a failure on the gateway's side.
    pub is_bifrost_error: bool,
    /// `error.type`, e.g. `invalid_request_error`.
    pub error_type: &'static str,
    /// `error.code`, when there is one.
    pub code: Option<&'static str>,
    /// Human message.
    pub message: String,
    /// The top-level `type` (governance decisions), when set.
    pub decision: Option<&'static str>,
}

impl WireError {
    /// A 400 for a request the client must fix.
    pub fn bad_request(message: impl Into<String>) -> WireError {
        WireError {
            status: 400,
            is_bifrost_error: false,
            error_type: "invalid_request_error",
            code: None,
            message: message.into(),
            decision: None,
        }
    }

    /// A failure on the gateway's side with the given status.
    pub fn gateway(status: u16, error_type: &'static str, message: impl Into<String>) -> WireError {
        WireError {
            status,
            is_bifrost_error: true,
            error_type,
            code: None,
            message: message.into(),
            decision: None,
        }
    }

    /// Sets `error.code`.
    pub fn with_code(mut self, code: &'static str) -> WireError {
        self.code = Some(code);
        self
    }
}

/// Request context echoed in `extra_fields`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorContext<'a> {
    /// Request id, echoed as `event_id`.
    pub request_id: Option<&'a str>,
    /// Provider, when resolved.
    pub provider: Option<&'a str>,
    /// Model as requested.
    pub model_requested: Option<&'a str>,
    /// Bifrost request type name.
    pub request_type: Option<&'a str>,
}

#[derive(Serialize)]
struct BifrostErrorBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    decision: Option<&'a str>,
    is_bifrost_error: bool,
    status_code: u16,
    error: ErrorField<'a>,
    extra_fields: ExtraFields<'a>,
}

#[derive(Serialize)]
struct ErrorField<'a> {
    #[serde(rename = "type")]
    error_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    message: &'a str,
    param: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ExtraFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_requested: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_type: Option<&'a str>,
}

/// Renders `error` as Bifrost's error body (the OpenAI-compatible routes).
pub fn bifrost_body(error: &WireError, ctx: &ErrorContext<'_>) -> Vec<u8> {
    let body = BifrostErrorBody {
        event_id: ctx.request_id,
        decision: error.decision,
        is_bifrost_error: error.is_bifrost_error,
        status_code: error.status,
        error: ErrorField {
            error_type: error.error_type,
            code: error.code,
            message: &error.message,
            param: None,
            event_id: ctx.request_id,
        },
        extra_fields: ExtraFields {
            provider: ctx.provider,
            model_requested: ctx.model_requested,
            request_type: ctx.request_type,
        },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{\"message\":\"internal error\"}}".to_vec())
}

/// A mid-stream error chunk for chat streams: `data: {"error":{...}}\n\n` (as Bifrost streams errors).
pub fn sse_error_event(error: &WireError, ctx: &ErrorContext<'_>) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&bifrost_body(error, ctx));
    out.extend_from_slice(b"\n\n");
    out
}

/// Anthropic's error `type` for a status, used when the gateway itself answers on `/anthropic`.
pub fn anthropic_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Renders `error` in Anthropic's shape: `{"type":"error","error":{"type":...,"message":...}}`.
pub fn anthropic_body(error: &WireError) -> Vec<u8> {
    const ANTHROPIC_TYPES: [&str; 9] = [
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "overloaded_error",
        "billing_error",
        "timeout_error",
        "invalid_request_error",
    ];
    // Keep a specific Anthropic type; map anything else (OpenAI's types, generic ones) by status.
    let kind = if ANTHROPIC_TYPES.contains(&error.error_type)
        && !(error.error_type == "invalid_request_error" && error.status != 400)
    {
        error.error_type
    } else {
        anthropic_type_for_status(error.status)
    };
    let body = serde_json::json!({"type": "error", "error": {"type": kind, "message": error.message}});
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"type\":\"error\"}".to_vec())
}

/// Google's status name for an HTTP status (its error bodies carry both).
pub fn google_status_for(status: u16) -> &'static str {
    match status {
        400 | 411 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 | 429 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        499 => "CANCELLED",
        502 | 503 => "UNAVAILABLE",
        400..=499 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// Renders `error` in Google's shape, for Gemini clients: `{"error":{"code","message","status"}}`.
pub fn google_body(error: &WireError) -> Vec<u8> {
    let body = serde_json::json!({"error": {
        "code": error.status,
        "message": error.message,
        "status": google_status_for(error.status),
    }});
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
}

/// A mid-stream error event for Gemini streams: `data: {"error":{...}}`.
pub fn google_sse_error_event(error: &WireError) -> Vec<u8> {
    let mut out = Vec::new();
    crate::sse::write_data(&mut out, &google_body(error));
    out
}

/// A mid-stream error event for Responses API streams: `event: error` with
/// `{"type": "error", "code", "message", "param"}`, as OpenAI sends it, plus the nested `error`
/// object that makes OpenAI's SDKs raise it rather than yield it as an event.
pub fn responses_sse_error_event(error: &WireError) -> Vec<u8> {
    let code = error.code.unwrap_or(error.error_type);
    let body = serde_json::json!({
        "type": "error",
        "code": code,
        "message": error.message,
        "param": null,
        "error": {"type": error.error_type, "code": code, "message": error.message},
    });
    let mut out = Vec::new();
    crate::sse::write_event(&mut out, "error", &serde_json::to_vec(&body).unwrap_or_default());
    out
}

/// A mid-stream error event for Anthropic streams.
pub fn anthropic_sse_error_event(error: &WireError) -> Vec<u8> {
    let mut out = Vec::new();
    crate::sse::write_event(&mut out, "error", &anthropic_body(error));
    out
}

const KNOWN_TYPES: [&str; 14] = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    "request_too_large",
    "billing_error",
    "timeout_error",
    "server_error",
    "insufficient_quota",
    "tokens",
    "requests",
];

fn known_type(kind: &str, status: u16) -> &'static str {
    KNOWN_TYPES
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or(match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        })
}

/// The error type for a Google API error `status` (Gemini's error shape).
fn google_status_type(status: &str) -> &'static str {
    match status {
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        "UNAVAILABLE" => "overloaded_error",
        "DEADLINE_EXCEEDED" => "timeout_error",
        "INTERNAL" => "api_error",
        _ => "",
    }
}

/// The AWS error code (`__type`) a status stands for, as Bedrock names its errors.
pub fn aws_error_type(status: u16) -> &'static str {
    match status {
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 | 504 => "ModelTimeoutException",
        429 => "ThrottlingException",
        400..=499 => "ValidationException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

/// An error in AWS's JSON shape, as Bedrock answers it: `{"__type", "message"}` (the AWS SDKs
/// read the code from `__type`).
pub fn aws_body(error: &WireError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "__type": aws_error_type(error.status),
        "message": error.message,
    }))
    .unwrap_or_default()
}

/// An error as the exception frame ending a Bedrock event stream.
pub fn aws_stream_exception(error: &WireError) -> Vec<u8> {
    let kind = match error.status {
        429 => "throttlingException",
        408 | 504 => "modelTimeoutException",
        400..=499 => "validationException",
        503 => "serviceUnavailableException",
        _ => "internalServerException",
    };
    let mut out = Vec::new();
    crate::eventstream::write_exception(kind, &error.message, &mut out);
    out
}

/// An upstream's error reply in a foreign wire, as a [`WireError`] keeping its status, type and
/// message, for rendering in the ingress format. Accepts Anthropic's, OpenAI's and Google's
/// (`{"error": {"code", "message", "status"}}`) error shapes.
pub fn from_upstream(status: u16, body: &[u8]) -> WireError {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let detail = &parsed["error"];
    // AWS (Bedrock) and Cohere put the message at the top level.
    let message = detail["message"]
        .as_str()
        .or_else(|| parsed["message"].as_str().or_else(|| parsed["Message"].as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("the provider answered with status {status}"));
    let kind = detail["type"]
        .as_str()
        .unwrap_or_else(|| detail["status"].as_str().map_or("", google_status_type));
    WireError {
        status,
        is_bifrost_error: false,
        error_type: known_type(kind, status),
        code: None,
        message,
        decision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bifrost_shape() {
        let err = WireError::bad_request("model is required");
        let ctx = ErrorContext {
            request_id: Some("req-1"),
            request_type: Some("chat_completion"),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&bifrost_body(&err, &ctx)).expect("json");
        assert_eq!(v["is_bifrost_error"], false);
        assert_eq!(v["status_code"], 400);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "model is required");
        assert_eq!(v["event_id"], "req-1");
        assert_eq!(v["extra_fields"]["request_type"], "chat_completion");
        assert!(v.get("type").is_none());
    }

    #[test]
    fn sse_error_is_one_event() {
        let err = WireError::gateway(502, "api_error", "upstream closed the stream");
        let bytes = sse_error_event(&err, &ErrorContext::default());
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with("data: {"));
        assert!(text.ends_with("}\n\n"));
    }
}
