//! The mock's OpenAI audio, images, moderations, files and batches APIs.
//!
//! - `POST /v1/audio/speech`: audio bytes (`audio/mpeg`), sent in several chunks.
//! - `POST /v1/audio/transcriptions` and `/translations`: a multipart form whose `model` and
//!   `file` fields must be present; the reply is `{"text", "usage": {"type": "duration",
//!   "seconds"}}`, or plain text with `response_format=text`.
//! - `POST /v1/images/generations`: `b64_json` images, `n` of them, with token usage for
//!   `gpt-image-1`.
//! - `POST /v1/moderations`: one result per input.
//! - Files and batches: created objects belong to the key (the account) that created them;
//!   another key gets 404, as OpenAI's accounts do, and a list shows the account's objects.
//!   A batch names an output file, which its account can read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::write_json;
use super::mock_shared::{MockResult, REPLY_WORDS};

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `POST …/audio/speech`.
    Speech,
    /// `POST …/audio/transcriptions` or `…/audio/translations`.
    Transcribe,
    /// `POST …/images/generations`.
    Images,
    /// `POST …/moderations`.
    Moderations,
    /// `…/files…` or `…/batches…`: the collection (`id` empty) or one object, and the action
    /// after its id.
    Stored {
        /// `file` or `batch`.
        kind: &'static str,
        /// The object's id; empty for the collection.
        id: String,
        /// What follows the id (`content`, `cancel`), or nothing.
        action: String,
    },
}

/// The call `method` and `path` name, if any.
pub fn route(method: &str, path: &str) -> Option<Call> {
    if method == "POST" {
        if path.ends_with("/audio/speech") {
            return Some(Call::Speech);
        }
        if path.ends_with("/audio/transcriptions") || path.ends_with("/audio/translations") {
            return Some(Call::Transcribe);
        }
        if path.ends_with("/images/generations") {
            return Some(Call::Images);
        }
        if path.ends_with("/moderations") {
            return Some(Call::Moderations);
        }
    }
    for (segment, kind) in [("/files", "file"), ("/batches", "batch")] {
        if path.ends_with(segment) {
            return Some(Call::Stored {
                kind,
                id: String::new(),
                action: String::new(),
            });
        }
        if let Some((_, rest)) = path.split_once(&format!("{segment}/")) {
            let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
            return Some(Call::Stored {
                kind,
                id: id.to_string(),
                action: action.to_string(),
            });
        }
    }
    None
}

/// Files and batches the mock holds, with the key that created each.
#[derive(Debug, Default)]
pub struct StoredObjects {
    next: AtomicU64,
    by_id: Mutex<HashMap<String, (String, Value)>>,
}

/// The bytes the mock's speech reply is made of, in order.
pub const SPEECH_CHUNKS: [&[u8]; 3] = [b"ID3\x04\x00mock-", b"audio-", b"frames"];

/// Answers one call; `key` is the credential the request carried.
pub async fn respond(
    session: &mut ServerSession,
    objects: &StoredObjects,
    call: Call,
    body: &[u8],
    key: &str,
) -> MockResult<bool> {
    match call {
        Call::Speech => speech(session, body).await,
        Call::Transcribe => transcribe(session, body).await,
        Call::Images => images(session, body).await,
        Call::Moderations => moderations(session, body).await,
        Call::Stored { kind, id, action } => stored(session, objects, kind, &id, &action, body, key).await,
    }
}

async fn error(session: &mut ServerSession, status: u16, message: &str) -> MockResult<bool> {
    let err = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    write_json(session, status, &err).await.map(|_| true)
}

async fn speech(session: &mut ServerSession, body: &[u8]) -> MockResult<bool> {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    if !request["model"].is_string() || !request["input"].is_string() || !request["voice"].is_string() {
        return error(session, 400, "model, input and voice are required").await;
    }
    let mut head = ResponseHeader::build(200, None)?;
    head.insert_header("content-type", "audio/mpeg")?;
    head.insert_header("transfer-encoding", "chunked")?;
    session.write_response_header(Box::new(head)).await?;
    for (at, chunk) in SPEECH_CHUNKS.iter().enumerate() {
        session
            .write_response_body(Bytes::from_static(chunk), at == SPEECH_CHUNKS.len() - 1)
            .await?;
    }
    Ok(true)
}

/// The text fields of a multipart form, and whether it carries a file.
async fn form(session: &ServerSession, body: &[u8]) -> Option<(HashMap<String, String>, bool)> {
    let content_type = session.req_header().headers.get("content-type")?.to_str().ok()?;
    let boundary = multer::parse_boundary(content_type).ok()?;
    let chunk = Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = HashMap::new();
    let mut file = false;
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.ok()?;
        if is_file {
            file = !data.is_empty();
        } else {
            fields.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Some((fields, file))
}

async fn transcribe(session: &mut ServerSession, body: &[u8]) -> MockResult<bool> {
    let Some((fields, file)) = form(session, body).await else {
        return error(session, 400, "the body must be multipart/form-data").await;
    };
    if !file || !fields.contains_key("model") {
        return error(session, 400, "model and file are required").await;
    }
    let text = REPLY_WORDS.concat();
    if fields.get("response_format").map(String::as_str) == Some("text") {
        let body = Bytes::from(format!("{text}\n"));
        let mut head = ResponseHeader::build(200, None)?;
        head.insert_header("content-type", "text/plain; charset=utf-8")?;
        head.insert_header("content-length", body.len().to_string())?;
        session.write_response_header(Box::new(head)).await?;
        session.write_response_body(body, true).await?;
        return Ok(true);
    }
    let reply = json!({"text": text, "usage": {"type": "duration", "seconds": 3}});
    write_json(session, 200, &reply).await.map(|_| true)
}

async fn images(session: &mut ServerSession, body: &[u8]) -> MockResult<bool> {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    if !request["prompt"].is_string() {
        return error(session, 400, "prompt is required").await;
    }
    let n = request["n"].as_u64().unwrap_or(1).clamp(1, 10);
    let data: Vec<Value> = (0..n).map(|_| json!({"b64_json": "iVBORw0KGgo="})).collect();
    let mut reply = json!({"created": 1700000000, "data": data});
    if request["model"] == "gpt-image-1" {
        reply["usage"] = json!({"input_tokens": 10, "output_tokens": 272 * n, "total_tokens": 10 + 272 * n,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 0}});
    }
    write_json(session, 200, &reply).await.map(|_| true)
}

async fn moderations(session: &mut ServerSession, body: &[u8]) -> MockResult<bool> {
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let inputs = match &request["input"] {
        Value::Array(items) => items.len(),
        Value::String(_) => 1,
        _ => return error(session, 400, "input is required").await,
    };
    let result = json!({"flagged": false, "categories": {"violence": false}, "category_scores": {"violence": 0.001}});
    let reply = json!({"id": "modr-mock", "model": request["model"].as_str().unwrap_or("omni-moderation-latest"),
        "results": vec![result; inputs]});
    write_json(session, 200, &reply).await.map(|_| true)
}

async fn stored(
    session: &mut ServerSession,
    objects: &StoredObjects,
    kind: &'static str,
    id: &str,
    action: &str,
    body: &[u8],
    key: &str,
) -> MockResult<bool> {
    let method = session.req_header().method.as_str().to_string();
    if id.is_empty() {
        if method == "GET" {
            let data: Vec<Value> = objects
                .by_id
                .lock()
                .map(|by_id| {
                    by_id
                        .values()
                        .filter(|(owner, object)| owner == key && object["object"] == kind)
                        .map(|(_, object)| object.clone())
                        .collect()
                })
                .unwrap_or_default();
            return write_json(
                session,
                200,
                &json!({"object": "list", "data": data, "has_more": false}),
            )
            .await
            .map(|_| true);
        }
        let n = objects.next.fetch_add(1, Ordering::Relaxed) + 1;
        let object = if kind == "file" {
            let Some((fields, true)) = form(session, body).await else {
                return error(session, 400, "purpose and file are required").await;
            };
            json!({"id": format!("file-mock{n}"), "object": "file", "bytes": body.len(), "created_at": 1700000000,
                "filename": "upload.jsonl", "purpose": fields.get("purpose").cloned().unwrap_or_default()})
        } else {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            if !request["input_file_id"].is_string() || !request["endpoint"].is_string() {
                return error(session, 400, "input_file_id and endpoint are required").await;
            }
            let output = format!("file-batchout{n}");
            if let Ok(mut by_id) = objects.by_id.lock() {
                let file = json!({"id": output, "object": "file", "bytes": 17, "created_at": 1700000000,
                    "filename": "batch_output.jsonl", "purpose": "batch_output"});
                by_id.insert(output.clone(), (key.to_string(), file));
            }
            json!({"id": format!("batch_mock{n}"), "object": "batch", "endpoint": request["endpoint"],
                "input_file_id": request["input_file_id"], "completion_window": "24h", "status": "completed",
                "output_file_id": output, "created_at": 1700000000})
        };
        if let Ok(mut by_id) = objects.by_id.lock() {
            by_id.insert(
                object["id"].as_str().unwrap_or_default().to_string(),
                (key.to_string(), object.clone()),
            );
        }
        return write_json(session, 200, &object).await.map(|_| true);
    }
    let found = objects
        .by_id
        .lock()
        .ok()
        .and_then(|by_id| by_id.get(id).cloned())
        .filter(|(owner, _)| owner == key);
    let Some((_, mut object)) = found else {
        return error(session, 404, &format!("No such {kind}: {id}")).await;
    };
    match (method.as_str(), action) {
        ("GET", "") => write_json(session, 200, &object).await.map(|_| true),
        ("GET", "content") => {
            let body = Bytes::from_static(b"{\"custom_id\":\"1\"}\n");
            let mut head = ResponseHeader::build(200, None)?;
            head.insert_header("content-type", "application/octet-stream")?;
            head.insert_header("content-length", body.len().to_string())?;
            session.write_response_header(Box::new(head)).await?;
            session.write_response_body(body, true).await?;
            Ok(true)
        }
        ("DELETE", "") => {
            if let Ok(mut by_id) = objects.by_id.lock() {
                by_id.remove(id);
            }
            write_json(session, 200, &json!({"id": id, "object": kind, "deleted": true}))
                .await
                .map(|_| true)
        }
        ("POST", "cancel") => {
            object["status"] = json!("cancelling");
            write_json(session, 200, &object).await.map(|_| true)
        }
        _ => error(session, 404, "no such call").await,
    }
}
