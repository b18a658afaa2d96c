//! The mock's AWS Bedrock runtime: `POST /model/{modelId}/converse`, `/converse-stream` (AWS
//! event-stream frames) and `/invoke` (Titan and Cohere embeddings).
//!
//! Every call must be signed with SigV4 by a credential the mock knows ([`ACCESS_KEY_ID`] with
//! [`SECRET_ACCESS_KEY`]), and the mock recomputes the signature over what it received (method,
//! path, host, content type, body) with the same algorithm; or it must carry a Bedrock API key
//! as `Authorization: Bearer`. Failures answer as AWS does: `{"message"}` with the error code in
//! `x-amzn-ErrorType`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use asbru_providers::eventstream::{CONTENT_TYPE, write_event, write_exception};
use asbru_providers::provider::bedrock::{AwsCredentials, SignInput, sign};
use base64::Engine;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::{MockOptions, MockResult, REPLY_WORDS, TOOL_ARGUMENTS, Truncation};

/// The access key id the mock accepts.
pub const ACCESS_KEY_ID: &str = "AKIDMOCKBEDROCK";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str = "mock/bedrock+secret/key";

/// What a Bedrock path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `converse`.
    Converse,
    /// `converse-stream`.
    ConverseStream,
    /// `invoke`.
    Invoke,
    /// `invoke-with-response-stream`.
    InvokeStream,
}

/// `…/model/{modelId}/{action}` → the model id (decoded) and the action.
pub fn route(path: &str) -> Option<(String, Action)> {
    let (_, rest) = path.split_once("/model/")?;
    let (model, action) = rest.rsplit_once('/')?;
    let action = match action {
        "converse" => Action::Converse,
        "converse-stream" => Action::ConverseStream,
        "invoke" => Action::Invoke,
        "invoke-with-response-stream" => Action::InvokeStream,
        _ => return None,
    };
    let model = percent_decode(model)?;
    Some((model, action))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn aws_error(session: &mut ServerSession, status: u16, code: &str, message: &str) -> MockResult<bool> {
    let body = Bytes::from(json!({ "message": message }).to_string());
    let mut head = ResponseHeader::build(status, None)?;
    head.insert_header("content-type", "application/json")?;
    head.insert_header("content-length", body.len().to_string())?;
    head.insert_header("x-amzn-errortype", code)?;
    session.write_response_header(Box::new(head)).await?;
    session.write_response_body(body, true).await?;
    Ok(true)
}

/// `20150830T123600Z` as a time.
fn amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    if text.len() != 16 || text.as_bytes()[8] != b'T' || !text.ends_with('Z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Why a request's credentials are refused (status, AWS error code, message); `None` when they
/// are good.
fn refusal(session: &ServerSession, body: &[u8]) -> Option<(u16, &'static str, String)> {
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(authorization) = header("authorization") else {
        return Some((
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".into(),
        ));
    };
    if let Some(key) = authorization.strip_prefix("Bearer ") {
        return (key.trim().is_empty()).then(|| (403, "AccessDeniedException", "invalid API key".into()));
    }
    let unrecognized = || {
        Some((
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_string(),
        ))
    };
    let Some(credential) = authorization
        .split(',')
        .find_map(|part| part.trim().split_once("Credential=").map(|(_, c)| c))
    else {
        return unrecognized();
    };
    let mut scope = credential.split('/');
    let (Some(access_key), Some(_date), Some(region)) = (scope.next(), scope.next(), scope.next()) else {
        return unrecognized();
    };
    if access_key != ACCESS_KEY_ID {
        return unrecognized();
    }
    let Some(time) = header("x-amz-date").and_then(amz_date) else {
        return Some((400, "ValidationException", "x-amz-date is missing or malformed".into()));
    };
    let host = header("host").unwrap_or_default();
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("http://{host}{path}");
    let content_type = header("content-type");
    let signed_headers: Vec<(&str, &str)> = std::iter::once(("host", host))
        .chain(content_type.map(|v| ("content-type", v)))
        .collect();
    let credentials = AwsCredentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, header("x-amz-security-token"));
    let expected = sign(
        &credentials,
        &SignInput {
            method: req.method.as_str(),
            url: &url,
            headers: &signed_headers,
            body,
            region,
            service: "bedrock",
            time,
            content_sha256_header: false,
        },
    )
    .ok()?;
    let expected = expected
        .iter()
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.as_str());
    (expected != Some(authorization)).then(|| {
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.".into(),
        )
    })
}

/// The name of the first tool a Converse request declares.
fn first_tool(request: &Value) -> Option<&str> {
    request["toolConfig"]["tools"].as_array()?.first()?["toolSpec"]["name"].as_str()
}

fn usage(output: u64) -> Value {
    json!({"inputTokens": 11, "outputTokens": output, "totalTokens": 11 + output, "cacheReadInputTokens": 3})
}

/// What makes a Converse body invalid, as Bedrock would say.
fn converse_problem(request: &Value) -> Option<&'static str> {
    if request.get("model").is_some() {
        return Some("extraneous key [model] is not permitted");
    }
    let messages = request["messages"].as_array()?;
    if messages.first().is_none_or(|m| m["role"] != "user") {
        return Some(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        );
    }
    if messages.windows(2).any(|pair| pair[0]["role"] == pair[1]["role"]) {
        return Some("A conversation must alternate between user and assistant roles.");
    }
    let blank = messages.iter().any(|m| {
        m["content"].as_array().is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b["text"].as_str().is_some_and(|t| t.trim().is_empty()))
        })
    });
    blank.then_some("The text field in the ContentBlock object is blank.")
}

/// Answers one Bedrock call.
pub async fn respond(
    session: &mut ServerSession,
    opts: &MockOptions,
    model: &str,
    action: Action,
    body: &[u8],
) -> MockResult<bool> {
    if let Some((status, code, message)) = refusal(session, body) {
        return aws_error(session, status, code, &message).await;
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return aws_error(session, 400, "ValidationException", "Malformed input request").await;
    };
    if model.contains("anthropic.") && matches!(action, Action::Invoke | Action::InvokeStream) {
        return invoke_claude(session, opts, model, action, &request).await;
    }
    match action {
        Action::Invoke | Action::InvokeStream => invoke(session, model, &request).await,
        Action::Converse | Action::ConverseStream => {
            if let Some(problem) = converse_problem(&request) {
                return aws_error(session, 400, "ValidationException", problem).await;
            }
            if action == Action::ConverseStream {
                stream(session, opts, first_tool(&request)).await
            } else {
                let reply = converse_reply(first_tool(&request));
                super::mock_shared::write_json(session, 200, &reply).await.map(|_| true)
            }
        }
    }
}

/// The non-stream Converse reply: text, or a call to the request's first tool.
pub fn converse_reply(tool: Option<&str>) -> Value {
    let content = match tool {
        Some(name) => json!([{"toolUse": {"toolUseId": "tooluse_mock_1", "name": name,
            "input": serde_json::from_str::<Value>(TOOL_ARGUMENTS).unwrap_or_default()}}]),
        None => json!([{"text": REPLY_WORDS.concat()}]),
    };
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": if tool.is_some() { "tool_use" } else { "end_turn" },
        "usage": usage(6),
        "metrics": {"latencyMs": 5}
    })
}

/// Claude on `invoke`: the Anthropic Messages body with Bedrock's `anthropic_version` and no
/// `model` or `stream`; the reply is Anthropic's JSON, or its events, each base64 in a `chunk`
/// frame.
async fn invoke_claude(
    session: &mut ServerSession,
    opts: &MockOptions,
    model: &str,
    action: Action,
    request: &Value,
) -> MockResult<bool> {
    let problem = if request["anthropic_version"] != "bedrock-2023-05-31" {
        Some("anthropic_version must be bedrock-2023-05-31")
    } else if request.get("model").is_some() || request.get("stream").is_some() {
        Some("extraneous key [model or stream] is not permitted")
    } else if !request["max_tokens"].is_u64() {
        Some("max_tokens is required")
    } else {
        None
    };
    if let Some(problem) = problem {
        return aws_error(session, 400, "ValidationException", problem).await;
    }
    let tool = request["tools"][0]["name"].as_str();
    if action == Action::Invoke {
        let reply = super::mock_anthropic::message(model, tool);
        return super::mock_shared::write_json(session, 200, &reply).await.map(|_| true);
    }
    let mut head = ResponseHeader::build(200, None)?;
    head.insert_header("content-type", CONTENT_TYPE)?;
    head.insert_header("transfer-encoding", "chunked")?;
    session.write_response_header(Box::new(head)).await?;
    let events = super::mock_anthropic::event_list(model, tool, opts.chunks);
    let last = events.len().saturating_sub(1);
    for (at, event) in events.into_iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        session
            .write_response_body(frame("chunk", &json!({ "bytes": bytes })), at == last)
            .await?;
    }
    Ok(true)
}

async fn invoke(session: &mut ServerSession, model: &str, request: &Value) -> MockResult<bool> {
    if model.contains("cohere.") {
        let Some(texts) = request["texts"].as_array() else {
            return aws_error(session, 400, "ValidationException", "texts is required").await;
        };
        let embeddings: Vec<Value> = (0..texts.len()).map(|i| json!([0.25, i as f64, -0.5])).collect();
        let reply =
            json!({"id": "emb-mock", "embeddings": embeddings, "texts": texts, "response_type": "embeddings_floats"});
        return super::mock_shared::write_json(session, 200, &reply).await.map(|_| true);
    }
    if !request["inputText"].is_string() {
        return aws_error(session, 400, "ValidationException", "inputText is required").await;
    }
    let reply = json!({"embedding": [0.125, -0.25, 0.5], "inputTextTokenCount": 4});
    super::mock_shared::write_json(session, 200, &reply).await.map(|_| true)
}

fn frame(kind: &str, payload: &Value) -> Bytes {
    let mut out = Vec::new();
    write_event(kind, payload.to_string().as_bytes(), &mut out);
    Bytes::from(out)
}

async fn stream(session: &mut ServerSession, opts: &MockOptions, tool: Option<&str>) -> MockResult<bool> {
    let mut head = ResponseHeader::build(200, None)?;
    head.insert_header("content-type", CONTENT_TYPE)?;
    head.insert_header("transfer-encoding", "chunked")?;
    session.write_response_header(Box::new(head)).await?;
    session
        .write_response_body(frame("messageStart", &json!({"role": "assistant"})), false)
        .await?;
    let (stop, output) = if let Some(name) = tool {
        let start =
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_mock_1", "name": name}}});
        session
            .write_response_body(frame("contentBlockStart", &start), false)
            .await?;
        let (first, second) = TOOL_ARGUMENTS.split_at(8);
        for part in [first, second] {
            let delta = json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": part}}});
            session
                .write_response_body(frame("contentBlockDelta", &delta), false)
                .await?;
        }
        ("tool_use", 6)
    } else {
        for i in 0..opts.chunks {
            if opts.abort_after_chunks == Some(i) {
                let mut exception = Vec::new();
                write_exception(
                    "modelStreamErrorException",
                    "mock upstream failed mid-stream",
                    &mut exception,
                );
                return match opts.truncation {
                    Truncation::ErrorEvent => {
                        session.write_response_body(Bytes::from(exception), true).await?;
                        Ok(true)
                    }
                    Truncation::CleanEnd => {
                        session.write_response_body(Bytes::new(), true).await?;
                        Ok(true)
                    }
                    // Half a frame, then the connection drops.
                    Truncation::MidLine => {
                        exception.truncate(exception.len() / 2);
                        session.write_response_body(Bytes::from(exception), false).await?;
                        Ok(false)
                    }
                    Truncation::Drop => Ok(false),
                };
            }
            if !opts.chunk_delay.is_zero() {
                tokio::time::sleep(opts.chunk_delay).await;
            }
            let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
            let delta = json!({"contentBlockIndex": 0, "delta": {"text": word}});
            session
                .write_response_body(frame("contentBlockDelta", &delta), false)
                .await?;
        }
        ("end_turn", u64::from(opts.chunks))
    };
    session
        .write_response_body(frame("contentBlockStop", &json!({"contentBlockIndex": 0})), false)
        .await?;
    session
        .write_response_body(frame("messageStop", &json!({"stopReason": stop})), false)
        .await?;
    let metadata = json!({"usage": usage(output), "metrics": {"latencyMs": 5}});
    session.write_response_body(frame("metadata", &metadata), true).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_dates() {
        assert_eq!(
            route("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"),
            Some(("anthropic.claude-3-haiku-20240307-v1:0".into(), Action::ConverseStream))
        );
        assert_eq!(
            route("/x/model/amazon.titan-embed-text-v2%3A0/invoke").map(|r| r.1),
            Some(Action::Invoke)
        );
        assert_eq!(route("/model/m/other"), None);
        assert_eq!(
            amz_date("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(amz_date("2015-08-30"), None);
    }
}
