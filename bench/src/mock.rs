//! The mock provider: a real HTTP/1.1 server on loopback that speaks the OpenAI wire (chat as JSON
//! or SSE, embeddings, models), with configurable latency, streaming pace and failures.
//!
//! It serves `asbru bench mock`, the `mock:` section of a config (in-process, for the offline
//! demo) and the integration tests, which also read what it received through [`MockHandle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream;
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use super::mock_shared::{MockOptions, Truncation};
use super::mock_shared::{MockResult, REPLY_WORDS, TOOL_ARGUMENTS, sse_head, write_json};

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// State shared by the mock's connections.
#[derive(Debug, Default)]
pub struct MockState {
    options: MockOptions,
    inference_requests: AtomicU64,
    recorded: Mutex<Vec<RecordedRequest>>,
    responses: super::mock_responses::StoredResponses,
    tokens: super::mock_vertex::Tokens,
    media_objects: super::mock_openai_media::StoredObjects,
}

const MAX_RECORDED: usize = 10_000;

impl MockState {
    /// New state with these options.
    pub fn new(options: MockOptions) -> Arc<MockState> {
        Arc::new(MockState {
            options,
            ..Default::default()
        })
    }

    /// Inference requests served so far (chat, embeddings; not models or stats).
    pub fn request_count(&self) -> u64 {
        self.inference_requests.load(Ordering::Relaxed)
    }

    /// Access-token requests the mock's OAuth2 endpoint served.
    pub fn token_requests(&self) -> u64 {
        self.tokens.requests()
    }

    /// The last JWT assertion exchanged at the OAuth2 endpoint.
    pub fn last_assertion(&self) -> Option<String> {
        self.tokens.last_assertion()
    }

    /// The claims of the last JWT assertion exchanged.
    pub fn last_token_claims(&self) -> Option<Value> {
        self.tokens.last_claims()
    }

    /// Copies of the requests received (when recording).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Accepts connections on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: Arc<MockState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(stream, state.clone()));
                }
                Err(e) => {
                    tracing::warn!("mock provider: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// A mock running on its own thread and runtime; dropping the handle stops it.
pub struct MockHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (request count, recorded requests).
    pub state: Arc<MockState>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockHandle {
    /// `http://addr` (`https://addr` when serving TLS) for use as a provider base URL.
    pub fn base_url(&self) -> String {
        match self.state.options.tls {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a mock on `listen` (port 0 picks a free port) in a background thread.
pub fn spawn(listen: SocketAddr, options: MockOptions) -> std::io::Result<MockHandle> {
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let state = MockState::new(options);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let thread_state = state.clone();
    let thread = std::thread::Builder::new().name("asbru-mock".into()).spawn(move || {
        runtime.block_on(async move {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => serve(listener, thread_state, shutdown_rx).await,
                Err(e) => tracing::error!("mock provider: cannot listen: {e}"),
            }
        });
    })?;
    Ok(MockHandle {
        addr,
        state,
        shutdown,
        thread: Some(thread),
    })
}

async fn handle_connection(tcp: TcpStream, state: Arc<MockState>) {
    let _ = tcp.set_nodelay(true);
    let mut stream: pingora::protocols::Stream = match &state.options.tls {
        None => Box::new(Stream::from(tcp)),
        Some(config) => {
            let acceptor = pingora::listeners::tls::Acceptor::from_server_config(config.clone());
            match acceptor.tls_handshake(Stream::from(tcp)).await {
                Ok(tls) => Box::new(tls),
                Err(_) => return,
            }
        }
    };
    loop {
        let mut session = ServerSession::new_http1(stream);
        match session.read_request().await {
            Ok(true) => {}
            _ => return,
        }
        let keep_going = match respond(&mut session, &state).await {
            Ok(keep) => keep,
            Err(_) => return,
        };
        if !keep_going {
            return;
        }
        match session.finish().await {
            Ok(Some(reusable)) => {
                let (next, prefix) = reusable.into_parts();
                if prefix.is_some_and(|p| !p.is_empty()) {
                    return;
                }
                stream = next;
            }
            _ => return,
        }
    }
}

/// Serves one request. Returns `false` when the connection must be dropped.
async fn respond(session: &mut ServerSession, state: &MockState) -> MockResult<bool> {
    let method = session.req_header().method.as_str().to_string();
    let path = session.req_header().uri.path().to_string();
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
    }
    if path == "/mock/stats" {
        let stats = json!({"requests": state.request_count()});
        return write_json(session, 200, &stats).await.map(|_| true);
    }
    if method == "POST" && path == "/token" {
        // `?fail=1` on the token URI: the grant is refused (tests of refused service accounts).
        let refuse = session.req_header().uri.query().is_some_and(|q| q.contains("fail=1"));
        let ttl = state.options.token_ttl_secs;
        return super::mock_vertex::token(session, &state.tokens, &body, ttl, refuse).await;
    }
    let vertex_claude = super::mock_vertex::claude_route(&path).map(|(m, s)| (m.to_string(), s));
    let anthropic = path.ends_with("/messages") || path.ends_with("/messages/count_tokens") || vertex_claude.is_some();
    let gemini = super::mock_gemini::route(&path).is_some();
    let responses = super::mock_responses::route(&method, &path);
    let bedrock = super::mock_bedrock::route(&path).filter(|_| method == "POST");
    let cohere = super::mock_cohere::route(&path).filter(|_| method == "POST");
    let media = super::mock_openai_media::route(&method, &path);
    let is_inference = path.ends_with("/completions")
        || path.ends_with("/embeddings")
        || anthropic
        || gemini
        || responses.is_some()
        || bedrock.is_some()
        || cohere.is_some()
        || media.is_some();
    if is_inference {
        let index = state.inference_requests.fetch_add(1, Ordering::Relaxed);
        if state.options.record {
            record(state, session, &method, &body);
        }
        if super::mock_vertex::is_vertex(&path) {
            let headers = &session.req_header().headers;
            let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
            if !state.tokens.accepts(bearer) && headers.get("x-goog-api-key").is_none() {
                return super::mock_vertex::unauthenticated(session).await;
            }
        }
        let opts = &state.options;
        if !opts.latency.is_zero() {
            tokio::time::sleep(opts.latency).await;
        }
        if let Some(revoked) = &opts.reject_key {
            let headers = &session.req_header().headers;
            let presented = ["authorization", "x-api-key", "x-goog-api-key"]
                .iter()
                .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
                .any(|v| v.contains(revoked.as_str()));
            if presented {
                if gemini {
                    // Google refuses a bad key with 400 and a reason, not 401.
                    let err = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
                    return write_json(session, 400, &err).await.map(|_| true);
                }
                let err = json!({"error": {"message": "invalid api key", "type": "invalid_request_error"}});
                return write_json(session, 401, &err).await.map(|_| true);
            }
        }
        let fail = index < opts.fail_first || (opts.fail_rate > 0.0 && rand::rng().random::<f64>() < opts.fail_rate);
        if fail {
            if opts.echo_auth_on_failure {
                let auth = session
                    .req_header()
                    .headers
                    .get("authorization")
                    .or_else(|| session.req_header().headers.get("x-api-key"))
                    .or_else(|| session.req_header().headers.get("x-goog-api-key"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let err = json!({"error": {"message": format!("invalid credentials: {auth}"), "type": "invalid_request_error"}});
                let body = Bytes::from(err.to_string());
                let mut head = ResponseHeader::build(opts.fail_status, None)?;
                head.insert_header("content-type", "application/json")?;
                head.insert_header("content-length", body.len().to_string())?;
                head.insert_header("x-echo-auth", auth)?;
                session.write_response_header(Box::new(head)).await?;
                session.write_response_body(body, true).await?;
                return Ok(true);
            }
            let err = if anthropic {
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock provider failure"}})
            } else if bedrock.is_some() || cohere.is_some() {
                json!({"message": "mock provider failure"})
            } else if gemini {
                super::mock_gemini::error_for(opts.fail_status, "mock provider failure")
            } else {
                json!({"error": {"message": "mock provider failure", "type": "server_error", "param": null, "code": null}})
            };
            if let Some(seconds) = opts.retry_after {
                let body = Bytes::from(err.to_string());
                let mut head = ResponseHeader::build(opts.fail_status, None)?;
                head.insert_header("content-type", "application/json")?;
                head.insert_header("content-length", body.len().to_string())?;
                head.insert_header("retry-after", seconds.to_string())?;
                session.write_response_header(Box::new(head)).await?;
                session.write_response_body(body, true).await?;
                return Ok(true);
            }
            return write_json(session, opts.fail_status, &err).await.map(|_| true);
        }
    }
    if let Some(call) = media {
        let headers = &session.req_header().headers;
        let key = ["authorization", "api-key"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_string();
        return super::mock_openai_media::respond(session, &state.media_objects, call, &body, &key).await;
    }
    if let Some(call) = cohere {
        return super::mock_cohere::respond(session, &state.options, call, &body).await;
    }
    if let Some((model, action)) = bedrock {
        return super::mock_bedrock::respond(session, &state.options, &model, action, &body).await;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let tool = first_tool_name(&request);
    if method == "POST" && path.ends_with("/messages/count_tokens") {
        return write_json(session, 200, &json!({"input_tokens": 42}))
            .await
            .map(|_| true);
    }
    if method == "POST"
        && let Some((model, method)) = super::mock_gemini::route(&path)
    {
        let tool = super::mock_gemini::first_tool_name(&request);
        let reply = match method {
            "streamGenerateContent" => {
                return super::mock_gemini::stream(session, &state.options, model, tool.as_deref()).await;
            }
            "batchEmbedContents" => super::mock_gemini::embeddings(&request),
            "embedContent" => super::mock_gemini::embedding(),
            "countTokens" => json!({"totalTokens": 42}),
            _ => super::mock_gemini::generate(model, tool.as_deref()),
        };
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if let Some((model, stream)) = vertex_claude {
        if let Some(problem) = super::mock_vertex::claude_body_problem(&request) {
            let err = json!({"type": "error", "error": {"type": "invalid_request_error", "message": problem}});
            return write_json(session, 400, &err).await.map(|_| true);
        }
        if stream {
            return super::mock_anthropic::stream(session, &state.options, &model, tool.as_deref()).await;
        }
        let reply = super::mock_anthropic::message(&model, tool.as_deref());
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if method == "POST" && path.ends_with("/messages") {
        let model = request["model"].as_str().unwrap_or("claude-mock").to_string();
        if request["stream"].as_bool() == Some(true) {
            return super::mock_anthropic::stream(session, &state.options, &model, tool.as_deref()).await;
        }
        let reply = super::mock_anthropic::message(&model, tool.as_deref());
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if let Some(call) = responses {
        let headers = &session.req_header().headers;
        let key = ["authorization", "api-key"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_string();
        return super::mock_responses::respond(session, &state.options, &state.responses, call, &request, &key).await;
    }
    if method == "POST" && path.ends_with("/completions") && !path.ends_with("/chat/completions") {
        return super::mock_responses::completion(session, &state.options, &request).await;
    }
    if method == "POST" && path.ends_with("/chat/completions") {
        let model = request["model"].as_str().unwrap_or("mock-model").to_string();
        if request["stream"].as_bool() == Some(true) {
            // Like OpenAI, the final usage chunk is sent only when the request asks for it.
            let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
            return stream_chat(session, state, &model, tool.as_deref(), include_usage).await;
        }
        return write_json(session, 200, &chat_completion(&model, tool.as_deref()))
            .await
            .map(|_| true);
    }
    if method == "POST" && path.ends_with("/embeddings") {
        let model = request["model"].as_str().unwrap_or("mock-embedding").to_string();
        let inputs = match &request["input"] {
            Value::Array(items) => items.len().max(1),
            _ => 1,
        };
        let data: Vec<Value> = (0..inputs)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.0125, -0.25, 0.5]}))
            .collect();
        let reply =
            json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if method == "GET" && path.ends_with("/v1beta/models") {
        if state.options.record {
            record(state, session, &method, &body);
        }
        let reply = json!({"models": [
            {"name": "models/gemini-2.0-flash", "displayName": "Gemini 2.0 Flash", "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/text-embedding-004", "displayName": "Text Embedding 004", "supportedGenerationMethods": ["embedContent"]}
        ]});
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    if method == "GET" && path.ends_with("/models") {
        let reply = json!({"object": "list", "data": [
            {"id": "mock-gpt", "object": "model", "created": 1700000000, "owned_by": "asbru-mock"},
            {"id": "mock-embedding", "object": "model", "created": 1700000000, "owned_by": "asbru-mock"}
        ]});
        return write_json(session, 200, &reply).await.map(|_| true);
    }
    let err = json!({"error": {"message": format!("mock provider has no route {method} {path}"), "type": "invalid_request_error", "param": null, "code": "not_found"}});
    write_json(session, 404, &err).await.map(|_| true)
}

fn record(state: &MockState, session: &ServerSession, method: &str, body: &[u8]) {
    let req = session.req_header();
    let headers = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    if let Ok(mut recorded) = state.recorded.lock()
        && recorded.len() < MAX_RECORDED
    {
        recorded.push(RecordedRequest {
            method: method.to_string(),
            path,
            headers,
            body: Bytes::copy_from_slice(body),
        });
    }
}

/// The name of the first tool a request declares (OpenAI or Anthropic shape): the mock then
/// answers with a call to it.
pub(crate) fn first_tool_name(request: &Value) -> Option<String> {
    let tool = request["tools"].as_array()?.first()?;
    tool["function"]["name"]
        .as_str()
        .or_else(|| tool["name"].as_str())
        .map(str::to_string)
}

fn chat_completion(model: &str, tool: Option<&str>) -> Value {
    if let Some(tool) = tool {
        return json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_mock_1", "type": "function", "function": {"name": tool, "arguments": TOOL_ARGUMENTS}}
            ]}, "finish_reason": "tool_calls", "logprobs": null}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
        });
    }
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY_WORDS.concat()}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    })
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

async fn stream_chat(
    session: &mut ServerSession,
    state: &MockState,
    model: &str,
    tool: Option<&str>,
    include_usage: bool,
) -> MockResult<bool> {
    let opts = &state.options;
    sse_head(session).await?;
    session
        .write_response_body(
            sse(&chunk(model, json!({"role": "assistant", "content": ""}), None)),
            false,
        )
        .await?;
    if let Some(tool) = tool {
        let (first, second) = TOOL_ARGUMENTS.split_at(8);
        let start = json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function", "function": {"name": tool, "arguments": ""}}]});
        session
            .write_response_body(sse(&chunk(model, start, None)), false)
            .await?;
        for part in [first, second] {
            let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]});
            session
                .write_response_body(sse(&chunk(model, delta, None)), false)
                .await?;
        }
        session
            .write_response_body(sse(&chunk(model, json!({}), Some("tool_calls"))), false)
            .await?;
        if include_usage {
            let usage = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}});
            session.write_response_body(sse(&usage), false).await?;
        }
        session
            .write_response_body(Bytes::from_static(b"data: [DONE]\n\n"), true)
            .await?;
        return Ok(true);
    }
    for i in 0..opts.chunks {
        if opts.abort_after_chunks == Some(i) {
            let error = br#"data: {"error":{"message":"mock upstream failed mid-stream","type":"server_error"}}

"#;
            return super::mock_shared::cut(session, opts.truncation, error).await;
        }
        if !opts.chunk_delay.is_zero() {
            tokio::time::sleep(opts.chunk_delay).await;
        }
        let word = REPLY_WORDS[i as usize % REPLY_WORDS.len()];
        session
            .write_response_body(sse(&chunk(model, json!({"content": word}), None)), false)
            .await?;
    }
    session
        .write_response_body(sse(&chunk(model, json!({}), Some("stop"))), false)
        .await?;
    if include_usage {
        let usage = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": opts.chunks, "total_tokens": 12 + opts.chunks}
        });
        session.write_response_body(sse(&usage), false).await?;
    }
    session
        .write_response_body(Bytes::from_static(b"data: [DONE]\n\n"), true)
        .await?;
    Ok(true)
}

/// The non-stream Anthropic reply the mock sends for `model` (tests compare pass-through bytes).
pub fn anthropic_message_for_tests(model: &str, tool: Option<&str>) -> Value {
    super::mock_anthropic::message(model, tool)
}
