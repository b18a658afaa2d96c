//! The mock provider's Anthropic Messages wire: replies, SSE events and errors.

use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::{MockOptions, MockResult, REPLY_WORDS, TOOL_ARGUMENTS, sse_head};

fn usage(output: u32) -> Value {
    json!({"input_tokens": 12, "output_tokens": output, "cache_read_input_tokens": 3})
}

/// A non-stream Messages reply: text, or a call to `tool` when the request declared tools.
pub fn message(model: &str, tool: Option<&str>) -> Value {
    let (content, stop) = match tool {
        Some(tool) => (
            json!([{"type": "tool_use", "id": "toolu_mock_1", "name": tool, "input": {"city": "Paris"}}]),
            "tool_use",
        ),
        None => (json!([{"type": "text", "text": REPLY_WORDS.concat()}]), "end_turn"),
    };
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage(6)
    })
}

/// The events of a whole streamed reply, in order (each carries its `type`): what Bedrock's
/// `invoke-with-response-stream` wraps in frames.
pub(crate) fn event_list(model: &str, tool: Option<&str>, chunks: u32) -> Vec<Value> {
    let mut start = message(model, None);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = usage(1);
    let mut events = vec![json!({"type": "message_start", "message": start})];
    let stop = match tool {
        Some(tool) => {
            let block = json!({"type": "tool_use", "id": "toolu_mock_1", "name": tool, "input": {}});
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": block}));
            let (first, second) = TOOL_ARGUMENTS.split_at(8);
            for part in [first, second] {
                events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}}));
            }
            "tool_use"
        }
        None => {
            events.push(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            for i in 0..chunks {
                let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
                events.push(
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
                );
            }
            "end_turn"
        }
    };
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": chunks}}));
    events.push(json!({"type": "message_stop"}));
    events
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A streamed Messages reply, paced by the mock's options.
pub async fn stream(
    session: &mut ServerSession,
    opts: &MockOptions,
    model: &str,
    tool: Option<&str>,
) -> MockResult<bool> {
    sse_head(session).await?;
    let mut start = message(model, None);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = usage(1);
    session
        .write_response_body(
            event("message_start", &json!({"type": "message_start", "message": start})),
            false,
        )
        .await?;
    session
        .write_response_body(event("ping", &json!({"type": "ping"})), false)
        .await?;
    let stop = if let Some(tool) = tool {
        let block = json!({"type": "tool_use", "id": "toolu_mock_1", "name": tool, "input": {}});
        session
            .write_response_body(
                event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0, "content_block": block}),
                ),
                false,
            )
            .await?;
        let (first, second) = TOOL_ARGUMENTS.split_at(8);
        for part in [first, second] {
            let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}});
            session
                .write_response_body(event("content_block_delta", &delta), false)
                .await?;
        }
        "tool_use"
    } else {
        let block = json!({"type": "text", "text": ""});
        session
            .write_response_body(
                event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0, "content_block": block}),
                ),
                false,
            )
            .await?;
        for i in 0..opts.chunks {
            if opts.abort_after_chunks == Some(i) {
                let error = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"mock upstream failed mid-stream\"}}\n\n";
                return super::mock_shared::cut(session, opts.truncation, error).await;
            }
            if !opts.chunk_delay.is_zero() {
                tokio::time::sleep(opts.chunk_delay).await;
            }
            let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
            let delta =
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}});
            session
                .write_response_body(event("content_block_delta", &delta), false)
                .await?;
        }
        "end_turn"
    };
    session
        .write_response_body(
            event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})),
            false,
        )
        .await?;
    let delta = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": opts.chunks}});
    session
        .write_response_body(event("message_delta", &delta), false)
        .await?;
    session
        .write_response_body(event("message_stop", &json!({"type": "message_stop"})), true)
        .await?;
    Ok(true)
}
