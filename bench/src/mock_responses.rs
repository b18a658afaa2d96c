//! The mock's OpenAI Responses API and legacy completions: `POST …/responses` (JSON or the
//! Responses event stream), the stored-response calls (`GET`/`DELETE …/responses/{id}`,
//! `POST …/responses/{id}/cancel`, `GET …/responses/{id}/input_items`), and `POST …/completions`.
//!
//! Like OpenAI, a stored response belongs to the key that created it: another key reading it
//! gets 404, which is what the gateway's affinity must avoid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::write_json;
use super::mock_shared::{MockOptions, MockResult, REPLY_WORDS, TOOL_ARGUMENTS, sse_head};

/// Stored responses, by id, with the key that created them.
#[derive(Debug, Default)]
pub struct StoredResponses {
    next: AtomicU64,
    by_id: Mutex<HashMap<String, (String, Value)>>,
}

/// What a `…/responses…` path asks for.
pub enum Call<'a> {
    /// `POST …/responses`.
    Create,
    /// `GET`/`DELETE …/responses/{id}`, `POST …/responses/{id}/cancel`.
    Stored { id: &'a str, action: &'a str },
}

/// The Responses call a path names, if any.
pub fn route<'a>(method: &str, path: &'a str) -> Option<Call<'a>> {
    if method == "POST" && path.ends_with("/responses") {
        return Some(Call::Create);
    }
    let (_, rest) = path.split_once("/responses/")?;
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    Some(Call::Stored { id, action })
}

fn usage(output_tokens: u64) -> Value {
    json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + output_tokens})
}

fn object(id: &str, model: &str, status: &str, output: Vec<Value>, usage: Value) -> Value {
    json!({"id": id, "object": "response", "created_at": 1700000000, "status": status, "error": null,
        "incomplete_details": null, "model": model, "output": output, "usage": usage,
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "store": true})
}

fn text_item(text: &str) -> Value {
    json!({"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(tool: &str) -> Value {
    json!({"type": "function_call", "id": "fc_mock", "call_id": "call_mock_1", "name": tool,
        "arguments": TOOL_ARGUMENTS, "status": "completed"})
}

/// Answers a Responses call; `key` is the credential presented.
pub async fn respond(
    session: &mut ServerSession,
    options: &MockOptions,
    stored: &StoredResponses,
    call: Call<'_>,
    request: &Value,
    key: &str,
) -> MockResult<bool> {
    match call {
        Call::Create => {
            let id = format!("resp_mock_{}", stored.next.fetch_add(1, Ordering::Relaxed));
            let model = request["model"].as_str().unwrap_or("mock-model").to_string();
            let tool = request["tools"][0]["name"].as_str();
            let output = match tool {
                Some(tool) => vec![call_item(tool)],
                None => vec![text_item(&REPLY_WORDS.concat())],
            };
            let whole = object(&id, &model, "completed", output, usage(6));
            if request["store"].as_bool() != Some(false)
                && let Ok(mut by_id) = stored.by_id.lock()
            {
                by_id.insert(id.clone(), (key.to_string(), whole.clone()));
            }
            if request["stream"].as_bool() == Some(true) {
                return stream(session, options, &id, &model, tool, whole).await;
            }
            write_json(session, 200, &whole).await.map(|_| true)
        }
        Call::Stored { id, action } => {
            let found = stored
                .by_id
                .lock()
                .ok()
                .and_then(|by_id| by_id.get(id).cloned())
                .filter(|(owner, _)| owner == key);
            let method = session.req_header().method.as_str().to_string();
            let Some((_, mut response)) = found else {
                let err = json!({"error": {"message": format!("Response with id '{id}' not found."),
                    "type": "invalid_request_error", "param": null, "code": null}});
                return write_json(session, 404, &err).await.map(|_| true);
            };
            let reply = match (method.as_str(), action) {
                ("GET", "") => response,
                ("DELETE", "") => {
                    if let Ok(mut by_id) = stored.by_id.lock() {
                        by_id.remove(id);
                    }
                    json!({"id": id, "object": "response.deleted", "deleted": true})
                }
                ("GET", "input_items") => {
                    json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
                }
                ("POST", "cancel") => {
                    response["status"] = json!("cancelled");
                    response
                }
                _ => {
                    let err = json!({"error": {"message": "no such call", "type": "invalid_request_error"}});
                    return write_json(session, 404, &err).await.map(|_| true);
                }
            };
            write_json(session, 200, &reply).await.map(|_| true)
        }
    }
}

fn event(kind: &str, sequence: &mut u64, mut data: Value) -> Bytes {
    data["type"] = json!(kind);
    data["sequence_number"] = json!(*sequence);
    *sequence += 1;
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

async fn stream(
    session: &mut ServerSession,
    options: &MockOptions,
    id: &str,
    model: &str,
    tool: Option<&str>,
    whole: Value,
) -> MockResult<bool> {
    sse_head(session).await?;
    let mut n = 0;
    let started = object(id, model, "in_progress", Vec::new(), Value::Null);
    session
        .write_response_body(event("response.created", &mut n, json!({"response": started})), false)
        .await?;
    if let Some(tool) = tool {
        let mut item = call_item(tool);
        item["arguments"] = json!("");
        session
            .write_response_body(
                event(
                    "response.output_item.added",
                    &mut n,
                    json!({"output_index": 0, "item": item}),
                ),
                false,
            )
            .await?;
        let delta = json!({"item_id": "fc_mock", "output_index": 0, "delta": TOOL_ARGUMENTS});
        session
            .write_response_body(event("response.function_call_arguments.delta", &mut n, delta), false)
            .await?;
    } else {
        let mut item = text_item("");
        item["status"] = json!("in_progress");
        item["content"] = json!([]);
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        let added = [
            event(
                "response.output_item.added",
                &mut n,
                json!({"output_index": 0, "item": item}),
            ),
            event(
                "response.content_part.added",
                &mut n,
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part}),
            ),
        ];
        for piece in added {
            session.write_response_body(piece, false).await?;
        }
        for i in 0..options.chunks {
            if options.abort_after_chunks == Some(i) {
                let error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock upstream failed mid-stream\",\"param\":null}\n\n";
                return super::mock_shared::cut(session, options.truncation, error).await;
            }
            let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
            let delta = json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": word});
            session
                .write_response_body(event("response.output_text.delta", &mut n, delta), false)
                .await?;
        }
    }
    let mut done = whole;
    done["usage"] = usage(u64::from(if tool.is_some() { 6 } else { options.chunks }));
    if tool.is_none() {
        // The final response holds the text the deltas carried.
        let words = (0..options.chunks).map(|i| REPLY_WORDS[i as usize % REPLY_WORDS.len()]);
        let text = words.collect::<String>();
        done["output"][0]["content"][0]["text"] = json!(text);
        let part = json!({"type": "output_text", "text": text, "annotations": []});
        let closing = [
            event(
                "response.output_text.done",
                &mut n,
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": text}),
            ),
            event(
                "response.content_part.done",
                &mut n,
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": part}),
            ),
            event(
                "response.output_item.done",
                &mut n,
                json!({"output_index": 0, "item": done["output"][0].clone()}),
            ),
        ];
        for piece in closing {
            session.write_response_body(piece, false).await?;
        }
    }
    session
        .write_response_body(event("response.completed", &mut n, json!({"response": done})), true)
        .await?;
    Ok(true)
}

/// `POST …/completions`: a `text_completion`, whole or streamed.
pub async fn completion(session: &mut ServerSession, options: &MockOptions, request: &Value) -> MockResult<bool> {
    let model = request["model"].as_str().unwrap_or("mock-instruct").to_string();
    if request["stream"].as_bool() != Some(true) {
        let reply = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": model,
            "choices": [{"text": REPLY_WORDS.concat(), "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}});
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    sse_head(session).await?;
    for i in 0..options.chunks {
        let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
        let chunk = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": model,
            "choices": [{"text": word, "index": 0, "logprobs": null, "finish_reason": null}]});
        session
            .write_response_body(Bytes::from(format!("data: {chunk}\n\n")), false)
            .await?;
    }
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        let usage = json!({"id": "cmpl-mock", "object": "text_completion", "created": 1700000000, "model": model,
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": options.chunks, "total_tokens": 5 + options.chunks}});
        session
            .write_response_body(Bytes::from(format!("data: {usage}\n\n")), false)
            .await?;
    }
    session
        .write_response_body(Bytes::from_static(b"data: [DONE]\n\n"), true)
        .await?;
    Ok(true)
}
