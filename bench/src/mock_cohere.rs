//! The mock's Cohere v2 API: `POST /v2/chat` (JSON, or SSE events when `stream` is set) and
//! `POST /v2/embed`. Requests must carry `Authorization: Bearer`; a body in OpenAI's shape where
//! Cohere's differs (`top_p`, `stop`, a lowercase `tool_choice`) is refused with a 400, as
//! Cohere refuses unknown members.

use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::write_json;
use super::mock_shared::{MockOptions, MockResult, REPLY_WORDS, TOOL_ARGUMENTS, sse_head};

/// What a Cohere path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `/v2/chat`.
    Chat,
    /// `/v2/embed`.
    Embed,
}

/// The Cohere call a path names.
pub fn route(path: &str) -> Option<Call> {
    if path.ends_with("/v2/chat") {
        Some(Call::Chat)
    } else if path.ends_with("/v2/embed") {
        Some(Call::Embed)
    } else {
        None
    }
}

fn problem(request: &Value) -> Option<String> {
    for member in ["top_p", "stop", "max_completion_tokens", "stream_options", "n"] {
        if request.get(member).is_some() {
            return Some(format!("invalid request: unknown field '{member}'"));
        }
    }
    if let Some(choice) = request.get("tool_choice")
        && !matches!(choice.as_str(), Some("REQUIRED" | "NONE"))
    {
        return Some("invalid request: tool_choice must be REQUIRED or NONE".into());
    }
    request["messages"]
        .as_array()
        .is_none_or(|m| m.is_empty())
        .then(|| "invalid request: messages must not be empty".into())
}

fn usage(output: u64) -> Value {
    json!({"billed_units": {"input_tokens": 5, "output_tokens": output},
        "tokens": {"input_tokens": 71, "output_tokens": output}})
}

fn event(value: &Value) -> Bytes {
    let kind = value["type"].as_str().unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {value}\n\n"))
}

/// Answers one Cohere call.
pub async fn respond(session: &mut ServerSession, opts: &MockOptions, call: Call, body: &[u8]) -> MockResult<bool> {
    let authorized = session
        .req_header()
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if !authorized {
        return write_json(session, 401, &json!({"message": "no api key supplied"}))
            .await
            .map(|_| true);
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return write_json(session, 400, &json!({"message": "invalid request: body is not JSON"}))
            .await
            .map(|_| true);
    };
    if call == Call::Embed {
        let Some(texts) = request["texts"].as_array() else {
            return write_json(session, 400, &json!({"message": "invalid request: texts is required"}))
                .await
                .map(|_| true);
        };
        let floats: Vec<Value> = (0..texts.len()).map(|i| json!([0.5, i as f64])).collect();
        let reply = json!({"id": "emb-mock", "embeddings": {"float": floats}, "texts": texts,
            "meta": {"billed_units": {"input_tokens": 7}}});
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if let Some(problem) = problem(&request) {
        return write_json(session, 400, &json!({"message": problem}))
            .await
            .map(|_| true);
    }
    let tool = request["tools"][0]["function"]["name"].as_str().map(str::to_string);
    if request["stream"].as_bool() == Some(true) {
        return stream(session, opts, tool.as_deref()).await;
    }
    let message = match &tool {
        Some(name) => json!({"role": "assistant", "tool_plan": "I will call the tool.",
            "tool_calls": [{"id": "call_cohere_1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}]}),
        None => json!({"role": "assistant", "content": [{"type": "text", "text": REPLY_WORDS.concat()}]}),
    };
    let reply = json!({"id": "cohere-mock", "message": message,
        "finish_reason": if tool.is_some() { "TOOL_CALL" } else { "COMPLETE" }, "usage": usage(6)});
    write_json(session, 200, &reply).await.map(|_| true)
}

async fn stream(session: &mut ServerSession, opts: &MockOptions, tool: Option<&str>) -> MockResult<bool> {
    sse_head(session).await?;
    let start = json!({"id": "cohere-mock", "type": "message-start", "delta": {"message": {"role": "assistant"}}});
    session.write_response_body(event(&start), false).await?;
    let (reason, output) = if let Some(name) = tool {
        let plan = json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will call the tool."}}});
        session.write_response_body(event(&plan), false).await?;
        let start = json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls":
            {"id": "call_cohere_1", "type": "function", "function": {"name": name, "arguments": ""}}}}});
        session.write_response_body(event(&start), false).await?;
        let (first, second) = TOOL_ARGUMENTS.split_at(8);
        for part in [first, second] {
            let delta = json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}});
            session.write_response_body(event(&delta), false).await?;
        }
        session
            .write_response_body(event(&json!({"type": "tool-call-end", "index": 0})), false)
            .await?;
        ("TOOL_CALL", 6)
    } else {
        let start = json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}});
        session.write_response_body(event(&start), false).await?;
        for i in 0..opts.chunks {
            if opts.abort_after_chunks == Some(i) {
                return Ok(false);
            }
            if !opts.chunk_delay.is_zero() {
                tokio::time::sleep(opts.chunk_delay).await;
            }
            let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
            let delta = json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": word}}}});
            session.write_response_body(event(&delta), false).await?;
        }
        session
            .write_response_body(event(&json!({"type": "content-end", "index": 0})), false)
            .await?;
        ("COMPLETE", u64::from(opts.chunks))
    };
    let end = json!({"type": "message-end", "delta": {"finish_reason": reason, "usage": usage(output)}});
    session.write_response_body(event(&end), true).await?;
    Ok(true)
}
