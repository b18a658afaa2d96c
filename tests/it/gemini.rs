//! A Gemini upstream end to end against the mock speaking Gemini's wire: OpenAI chat (whole and
//! streamed), tool calls both ways, embeddings, an Anthropic client through the hub, and errors.

use asbru_bench::mock::{MockOptions, Truncation};
use serde_json::{Value, json};

use crate::support::*;

fn gemini_provider(base_url: &str) -> String {
    format!(
        "providers:\n  gemini:\n    keys: [{{name: g, value: gm-key-1}}]\n    network_config: {{base_url: \"{base_url}\"}}\n"
    )
}

fn sent_body(upstream: &asbru_bench::mock::MockHandle, at: usize) -> Value {
    serde_json::from_slice(&upstream.state.recorded()[at].body).expect("json body")
}

#[tokio::test]
async fn openai_chat_to_gemini_and_back() {
    let upstream = default_mock();
    let gw = gateway(&gemini_provider(&upstream.base_url()));
    let body = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}}
            ]}
        ],
        "temperature": 0.3, "max_tokens": 100, "stop": "END", "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        "reasoning_effort": "low"
    });
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "gemini-2.0-flash");
    let message = &json["choices"][0]["message"];
    assert_eq!(message["content"], "Hello from the asbru mock provider.");
    assert_eq!(message["reasoning"], "Thinking it over.");
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    // usageMetadata: 12 prompt (3 cached), 6 candidates + 2 thoughts.
    assert_eq!(json["usage"]["prompt_tokens"], 12);
    assert_eq!(json["usage"]["completion_tokens"], 8);
    assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(json["usage"]["completion_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("gemini"));

    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("gm-key-1"));
    assert_eq!(seen.header("authorization"), None);
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["systemInstruction"], json!({"parts": [{"text": "Be brief."}]}));
    assert_eq!(sent["contents"][0]["role"], "user");
    let parts = &sent["contents"][0]["parts"];
    assert_eq!(parts[0], json!({"text": "what is this?"}));
    assert_eq!(
        parts[1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        parts[2],
        json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}})
    );
    let config = &sent["generationConfig"];
    assert_eq!(config["temperature"], 0.3);
    assert_eq!(config["maxOutputTokens"], 100);
    assert_eq!(config["stopSequences"], json!(["END"]));
    assert_eq!(config["seed"], 7);
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["responseJsonSchema"], json!({"type": "object"}));
    assert_eq!(
        config["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    assert!(sent.get("model").is_none(), "the model is in the path");
}

#[tokio::test]
async fn openai_stream_from_gemini() {
    let upstream = default_mock();
    let gw = gateway(&gemini_provider(&upstream.base_url()));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"gemini/gemini-2.0-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    assert_eq!(
        upstream.state.recorded()[0].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let data = sse_data(&reply.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the asbru mock");
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        last["usage"]["completion_tokens"], 7,
        "5 candidate tokens and 2 thoughts"
    );
}

#[tokio::test]
async fn tool_calls_get_ids_and_results_find_their_names() {
    let upstream = default_mock();
    let gw = gateway(&gemini_provider(&upstream.base_url()));
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let first = json!({"model": "gemini/gemini-2.0-flash", "tool_choice": "required", "tools": tools,
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let reply = post(&gw, "/v1/chat/completions", &first.to_string()).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls", "{json}");
    let call = json["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let id = call["id"].as_str().expect("a synthesised id").to_string();
    assert!(id.starts_with("call_"), "{id}");
    let sent = sent_body(&upstream, 0);
    assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
    assert_eq!(sent["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));

    // The next turn sends the result back: Gemini needs the function's name, which only the
    // assistant turn that made the call knows.
    let second = json!({"model": "gemini/gemini-2.0-flash", "tools": tools, "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 21}"},
    ]});
    let reply = post(&gw, "/v1/chat/completions", &second.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let sent = sent_body(&upstream, 1);
    let turns = sent["contents"].as_array().expect("contents");
    assert_eq!(turns[1]["role"], "model");
    assert_eq!(
        turns[1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert_eq!(
        turns[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}]})
    );

    // A result for a call no assistant turn made is refused before anything is sent.
    let orphan = json!({"model": "gemini/gemini-2.0-flash", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "x"},
    ]});
    let reply = post(&gw, "/v1/chat/completions", &orphan.to_string()).await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("call_unknown")
    );
    assert_eq!(upstream.state.recorded().len(), 2);

    // Streamed, the call arrives whole in one chunk.
    let streamed = first.as_object().cloned().map(|mut o| {
        o.insert("stream".into(), Value::Bool(true));
        Value::Object(o)
    });
    let reply = post(&gw, "/v1/chat/completions", &streamed.expect("object").to_string()).await;
    let chunks: Vec<Value> = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls.len(), 1, "{chunks:?}");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(
        chunks.last().expect("chunks")["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn embeddings_through_batch_embed_contents() {
    let upstream = default_mock();
    let gw = gateway(&gemini_provider(&upstream.base_url()));
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"gemini/text-embedding-004","input":["one","two"],"dimensions":3}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "list");
    assert_eq!(json["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["data"][1]["index"], 1);
    assert_eq!(json["data"][0]["embedding"], json!([0.0125, -0.25, 0.5]));
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1beta/models/text-embedding-004:batchEmbedContents");
    let sent = sent_body(&upstream, 0);
    assert_eq!(
        sent["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "two"}]}, "outputDimensionality": 3})
    );
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"gemini/text-embedding-004","input":[[1,2,3]]}"#,
    )
    .await;
    assert_eq!(
        reply.status(),
        400,
        "token arrays cannot go to Gemini: {}",
        reply.text()
    );

    // The OpenAI Node SDK asks for base64 by default: little-endian f32 bytes.
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"gemini/text-embedding-004","input":"one","encoding_format":"base64"}"#,
    )
    .await;
    let encoded = reply.json()["data"][0]["embedding"]
        .as_str()
        .expect("base64 text")
        .to_string();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(floats, [0.0125, -0.25, 0.5]);
    let many = json!({"model": "gemini/text-embedding-004", "input": vec!["x"; 101]});
    let reply = post(&gw, "/v1/embeddings", &many.to_string()).await;
    assert_eq!(reply.status(), 400);
    assert!(reply.text().contains("at most 100"), "{}", reply.text());
}

#[tokio::test]
async fn a_key_google_refuses_with_400_is_a_refused_key() {
    let upstream = mock(MockOptions {
        reject_key: Some("gm-revoked".into()),
        ..MockOptions::default()
    });
    let yaml = format!(
        "providers:\n  gemini:\n    keys: [{{name: old, value: gm-revoked, weight: 100}}, {{name: new, value: gm-good, weight: 0.001}}]\n    network_config: {{base_url: \"{}\", max_retries: 2}}\n",
        upstream.base_url()
    );
    let gw = gateway(&yaml);
    let body = r#"{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(reply.status(), 200, "the other key serves: {}", reply.text());
    let keys: Vec<String> = upstream
        .state
        .recorded()
        .iter()
        .filter_map(|r| r.header("x-goog-api-key").map(str::to_string))
        .collect();
    assert_eq!(keys, ["gm-revoked", "gm-good"]);

    let only_revoked = gateway(&format!(
        "providers:\n  gemini:\n    keys: [{{name: old, value: gm-revoked}}]\n    network_config: {{base_url: \"{}\"}}\n",
        upstream.base_url()
    ));
    let reply = post(&only_revoked, "/v1/chat/completions", body).await;
    assert_eq!(reply.status(), 401, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    assert!(!reply.text().contains("gm-revoked"));
}

#[tokio::test]
async fn anthropic_client_reaches_gemini_through_the_hub() {
    let upstream = default_mock();
    let gw = gateway(&gemini_provider(&upstream.base_url()));
    let headers = [("x-api-key", "client"), ("anthropic-version", "2023-06-01")];
    let body = r#"{"model":"gemini/gemini-2.0-flash","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["type"], "message");
    assert_eq!(json["content"][0]["text"], "Hello from the asbru mock provider.");
    assert_eq!(json["stop_reason"], "end_turn");

    let stream = body.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1);
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &headers, stream.as_bytes()).await;
    assert_eq!(reply.status(), 200);
    let text = reply.text();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.trim_end().ends_with("data: {\"type\":\"message_stop\"}"), "{text}");
    let deltas: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(deltas, "Hello from the asbru mock");
}

#[tokio::test]
async fn gemini_errors_keep_their_status_and_cut_streams_end_in_an_error() {
    let failing = mock(MockOptions {
        fail_first: 100,
        fail_status: 429,
        echo_auth_on_failure: true,
        ..MockOptions::default()
    });
    let gw = gateway(&gemini_provider(&failing.base_url()));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"gemini/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 429, "{}", reply.text());
    let json = reply.json();
    // The mock echoes the key it was sent in its error; the gateway never hands it on.
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid credentials")),
        "{json}"
    );
    assert!(!reply.text().contains("gm-key-1"), "{}", reply.text());
    assert_eq!(failing.state.recorded()[0].header("x-goog-api-key"), Some("gm-key-1"));

    let cut = mock(MockOptions {
        abort_after_chunks: Some(2),
        truncation: Truncation::ErrorEvent,
        ..MockOptions::default()
    });
    let gw = gateway(&gemini_provider(&cut.base_url()));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"gemini/gemini-2.0-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let data = sse_data(&reply.text());
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().expect("events")).expect("json");
    assert!(last["error"]["message"].as_str().is_some(), "{last}");
}

/// A gateway with a Gemini provider and an OpenAI and an Anthropic one, all on one mock.
fn genai_gateway(upstream: &asbru_bench::mock::MockHandle, extra: &str) -> asbru::server::RunningGateway {
    let url = upstream.base_url();
    gateway(&format!(
        "providers:\n  gemini:\n    keys: [{{name: g, value: gm-key-1}}]\n    network_config: {{base_url: \"{url}\"}}\n  openai:\n    keys: [{{name: o, value: sk-openai-1}}]\n    network_config: {{base_url: \"{url}\"}}\n  anthropic:\n    keys: [{{name: a, value: sk-ant-1}}]\n    network_config: {{base_url: \"{url}\"}}\n{extra}"
    ))
}

/// A POST to the gateway (the `/genai` tests' one call shape).
async fn genai_post(gw: &asbru::server::RunningGateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    send(gw.addr, "POST", path, headers, body).await
}

const GENAI_BODY: &str =
    r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":20}}"#;

#[tokio::test]
async fn genai_bare_models_pass_through_byte_for_byte() {
    let upstream = default_mock();
    let gw = genai_gateway(&upstream, "");
    let headers = [("x-goog-api-key", "client-key"), ("content-type", "application/json")];
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/gemini-2.0-flash:generateContent",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json(), bench_gemini_reply("gemini-2.0-flash"));
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(&seen.body[..], GENAI_BODY.as_bytes());
    assert_eq!(
        seen.header("x-goog-api-key"),
        Some("gm-key-1"),
        "the provider's key, not the client's"
    );

    // Bifrost's own members are taken out; the rest is untouched.
    let with_fallbacks = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"fallbacks":["openai/gpt-4o-mini"]}"#;
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/gemini-2.0-flash:generateContent",
        &headers,
        with_fallbacks.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let sent = upstream.state.recorded().last().map(|r| r.body.clone()).expect("sent");
    assert_eq!(&sent[..], br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#);
    let seen_before = upstream.state.recorded().len();

    let reply = genai_post(
        &gw,
        "/genai/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        upstream.state.recorded()[seen_before].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    let text = reply.text();
    assert!(text.contains("\r\n\r\n"), "the mock's own CRLF framing, untouched");
    let events: Vec<Value> = sse_data(&text.replace("\r\n", "\n"))
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(events.len(), 5, "verbatim Gemini events");
    assert_eq!(events[4]["candidates"][0]["finishReason"], "STOP");

    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/text-embedding-004:embedContent",
        &headers,
        br#"{"content":{"parts":[{"text":"x"}]}}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream.state.recorded()[seen_before + 1].path,
        "/v1beta/models/text-embedding-004:embedContent"
    );

    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/gemini-2.0-flash:countTokens",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"totalTokens": 42}));
    assert_eq!(
        upstream.state.recorded()[seen_before + 2].path,
        "/v1beta/models/gemini-2.0-flash:countTokens"
    );
    // Other providers count no Gemini tokens: a clear 400, nothing sent.
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/openai/gpt-4o:countTokens",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(upstream.state.recorded().len(), seen_before + 3);

    // The SDK's models.list: Gemini's own listing, the query passed on without the key.
    let reply = send(
        gw.addr,
        "GET",
        "/genai/v1beta/models?pageSize=10&key=client-key",
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["models"][0]["name"], "models/gemini-2.0-flash");
    let seen = &upstream.state.recorded()[seen_before + 3];
    assert_eq!(seen.path, "/v1beta/models?pageSize=10");
    assert_eq!(seen.header("x-goog-api-key"), Some("gm-key-1"));
}

fn bench_gemini_reply(model: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Thinking it over.", "thought": true}, {"text": "Hello from the asbru mock provider."}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 6, "totalTokenCount": 18, "cachedContentTokenCount": 3, "thoughtsTokenCount": 2},
        "modelVersion": model,
        "responseId": "mock-gemini-1",
    })
}

#[tokio::test]
async fn genai_reaches_other_providers_through_the_hub() {
    let upstream = default_mock();
    let gw = genai_gateway(&upstream, "");
    let headers = [("x-goog-api-key", "client-key")];
    // The google-genai SDK sends provider/model unencoded; others encode the slash.
    for path in [
        "/genai/v1beta/models/openai/gpt-4o-mini:generateContent",
        "/genai/v1beta/models/openai%2Fgpt-4o-mini:generateContent",
    ] {
        let reply = send(gw.addr, "POST", path, &headers, GENAI_BODY.as_bytes()).await;
        assert_eq!(reply.status(), 200, "{path}: {}", reply.text());
        let json = reply.json();
        assert_eq!(
            json["candidates"][0]["content"]["parts"][0]["text"],
            "Hello from the asbru mock provider."
        );
        assert_eq!(json["candidates"][0]["finishReason"], "STOP");
        assert!(
            json["usageMetadata"]["promptTokenCount"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{json}"
        );
    }
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(sent["max_tokens"], 20);

    // Streamed, from OpenAI and from Anthropic.
    for (path, provider) in [
        (
            "/genai/v1beta/models/openai/gpt-4o-mini:streamGenerateContent?alt=sse",
            "openai",
        ),
        (
            "/genai/v1beta/models/anthropic/claude-3-5-haiku:streamGenerateContent?alt=sse",
            "anthropic",
        ),
    ] {
        let reply = send(gw.addr, "POST", path, &headers, GENAI_BODY.as_bytes()).await;
        assert_eq!(reply.status(), 200, "{provider}: {}", reply.text());
        let events: Vec<Value> = sse_data(&reply.text())
            .iter()
            .map(|d| serde_json::from_str(d).expect("every event is JSON"))
            .collect();
        let text: String = events
            .iter()
            .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert_eq!(text, "Hello from the asbru mock", "{provider}");
        let last = events.last().expect("events");
        assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{provider}");
        assert!(
            last["usageMetadata"]["candidatesTokenCount"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{provider}: {last}"
        );
    }
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/anthropic/claude-3-5-haiku:generateContent",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.json()["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from the asbru mock provider."
    );
}

#[tokio::test]
async fn genai_errors_are_google_shaped_and_keys_come_from_the_query() {
    let upstream = default_mock();
    let gw = genai_gateway(
        &upstream,
        "governance:\n  virtual_keys:\n    - {id: vk-g, name: G, value: sk-bf-genai, provider_configs: [{provider: openai, weight: 1}]}\nclient: {enforce_auth_on_inference: true}\n",
    );
    let path = "/genai/v1beta/models/openai/gpt-4o-mini:generateContent";
    let reply = send(gw.addr, "POST", path, &[], GENAI_BODY.as_bytes()).await;
    assert_eq!(reply.status(), 401, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["error"]["code"], 401);
    assert_eq!(json["error"]["status"], "UNAUTHENTICATED");
    assert!(json["error"]["message"].as_str().is_some());

    let with_key = format!("{path}?key=sk-bf-genai");
    let reply = send(gw.addr, "POST", &with_key, &[], GENAI_BODY.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = upstream.state.recorded();
    assert!(
        seen.iter()
            .all(|r| !r.path.contains("sk-bf-genai") && r.headers.iter().all(|(_, v)| !v.contains("sk-bf-genai"))),
        "the virtual key never goes upstream"
    );
    let reply = send(
        gw.addr,
        "POST",
        path,
        &[("x-goog-api-key", "sk-bf-genai")],
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());

    let reply = genai_post(&gw, "/genai/v1beta/models/gemini-2.0-flash:predict", &[], b"{}").await;
    assert_eq!(reply.status(), 404);
    assert_eq!(reply.json()["error"]["status"], "NOT_FOUND");
    let reply = send(gw.addr, "POST", &with_key, &[], b"{not json").await;
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.json()["error"]["status"], "INVALID_ARGUMENT", "{}", reply.text());
}

#[tokio::test]
async fn genai_upstream_failures_keep_their_status_in_googles_shape() {
    let failing = mock(MockOptions {
        fail_first: 100,
        fail_status: 429,
        ..MockOptions::default()
    });
    let gw = genai_gateway(&failing, "");
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/openai/gpt-4o-mini:generateContent",
        &[],
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 429, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["error"]["status"], "RESOURCE_EXHAUSTED", "{json}");
    assert_eq!(json["error"]["message"], "mock provider failure");
}

#[tokio::test]
async fn genai_requests_are_charged_from_usage_metadata() {
    let upstream = default_mock();
    let gw = genai_gateway(
        &upstream,
        "governance:\n  pricing_overrides:\n    - {provider: gemini, model: gemini-2.0-flash, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n    - {provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n  virtual_keys:\n    - {id: vk-g, name: G, value: sk-bf-g, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: gemini, weight: 1}, {provider: openai, weight: 1}]}\n",
    );
    let settled = || {
        gw.state
            .registry
            .get("vk:vk-g:budget:0")
            .expect("the key's budget meter")
            .settled()
    };
    let headers = [("x-goog-api-key", "sk-bf-g")];
    // Passthrough, whole: 6 candidate tokens and 2 thoughts at 100 µ$ each.
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/gemini-2.0-flash:generateContent",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(settled(), 800);
    // Passthrough, streamed: the last event's 5 candidate tokens and 2 thoughts.
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let _ = reply.text();
    assert_eq!(settled(), 800 + 700);
    // Through the hub to OpenAI: the mock's 6 output tokens.
    let reply = genai_post(
        &gw,
        "/genai/v1beta/models/openai/gpt-4o:generateContent",
        &headers,
        GENAI_BODY.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(settled(), 800 + 700 + 600);
}
