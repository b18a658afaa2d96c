//! The mock provider's Gemini wire (`generateContent`, `streamGenerateContent?alt=sse`,
//! `batchEmbedContents`), shaped as Google's Gemini API reference documents its replies.

use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::{MockOptions, MockResult, REPLY_WORDS, sse_head};

/// The model named in a Gemini path (`…/models/{model}:{method}`) and the method.
pub fn route(path: &str) -> Option<(&str, &str)> {
    let (_, rest) = path.split_once("/models/")?;
    let (model, method) = rest.split_once(':')?;
    matches!(
        method,
        "generateContent" | "streamGenerateContent" | "batchEmbedContents" | "embedContent" | "countTokens"
    )
    .then_some((model, method))
}

/// The first function a Gemini request declares.
pub fn first_tool_name(request: &Value) -> Option<String> {
    request["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .map(str::to_string)
}

fn usage(output: u32) -> Value {
    json!({"promptTokenCount": 12, "candidatesTokenCount": output, "totalTokenCount": 12 + output,
           "cachedContentTokenCount": 3, "thoughtsTokenCount": 2})
}

/// A whole reply: text (after a thought), or a call to `tool` when the request declared
/// functions. Calls carry no id, as older Gemini models send them.
pub fn generate(model: &str, tool: Option<&str>) -> Value {
    let parts = match tool {
        Some(tool) => json!([{"functionCall": {"name": tool, "args": {"city": "Paris"}}}]),
        None => json!([{"text": "Thinking it over.", "thought": true}, {"text": REPLY_WORDS.concat()}]),
    };
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage(6),
        "modelVersion": model,
        "responseId": "mock-gemini-1",
    })
}

/// A `batchEmbedContents` reply with one vector per request.
pub fn embeddings(request: &Value) -> Value {
    let n = request["requests"].as_array().map_or(1, Vec::len);
    let embeddings: Vec<Value> = (0..n).map(|_| json!({"values": [0.0125, -0.25, 0.5]})).collect();
    json!({"embeddings": embeddings})
}

/// An `embedContent` reply.
pub fn embedding() -> Value {
    json!({"embedding": {"values": [0.0125, -0.25, 0.5]}})
}

/// Google's error body.
pub fn error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// Google's error body for an HTTP status, with the status name Google gives it.
pub fn error_for(code: u16, message: &str) -> Value {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNAVAILABLE",
    };
    error(code, status, message)
}

fn event(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\r\n\r\n"))
}

/// A streamed reply, paced by the mock's options: one event per word, the last one carrying
/// `finishReason` and the usage.
pub async fn stream(
    session: &mut ServerSession,
    opts: &MockOptions,
    model: &str,
    tool: Option<&str>,
) -> MockResult<bool> {
    sse_head(session).await?;
    let piece = |parts: Value, finish: Option<&str>, output: u32| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({"candidates": [candidate], "usageMetadata": usage(output), "modelVersion": model, "responseId": "mock-gemini-1"})
    };
    if let Some(tool) = tool {
        let parts = json!([{"functionCall": {"name": tool, "args": {"city": "Paris"}}}]);
        session
            .write_response_body(event(&piece(parts, Some("STOP"), 4)), true)
            .await?;
        return Ok(true);
    }
    for i in 0..opts.chunks {
        if opts.abort_after_chunks == Some(i) {
            let error = format!(
                "data: {}\r\n\r\n",
                error(500, "INTERNAL", "mock upstream failed mid-stream")
            );
            return super::mock_shared::cut(session, opts.truncation, error.as_bytes()).await;
        }
        if !opts.chunk_delay.is_zero() {
            tokio::time::sleep(opts.chunk_delay).await;
        }
        let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
        let last = i + 1 == opts.chunks;
        let event = event(&piece(json!([{"text": word}]), last.then_some("STOP"), i + 1));
        session.write_response_body(event, last).await?;
    }
    if opts.chunks == 0 {
        session
            .write_response_body(event(&piece(json!([]), Some("STOP"), 0)), true)
            .await?;
    }
    Ok(true)
}
