//! Cohere's v2 API end to end against the mock, which refuses OpenAI's member names where
//! Cohere's differ: chat (whole, streamed, with tools), embeddings, Anthropic clients reaching
//! Cohere, and Cohere's errors in the client's shape.

use asbru_bench::mock::MockOptions;
use serde_json::{Value, json};

use crate::support::*;

const REPLY: &str = "Hello from the asbru mock provider.";

fn cohere_gateway(base_url: &str) -> asbru::server::RunningGateway {
    let config = json!({"providers": {"cohere": {
        "keys": [{"name": "co", "value": "co-key-1", "models": ["*"]}],
        "network_config": {"base_url": base_url}}}});
    gateway(&config.to_string())
}

#[tokio::test]
async fn chat_whole_and_streamed() {
    let upstream = default_mock();
    let gw = cohere_gateway(&upstream.base_url());
    let body = json!({"model": "cohere/command-r-plus", "top_p": 0.5, "stop": ["END"], "max_completion_tokens": 30,
        "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["choices"][0]["message"]["content"], REPLY);
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(json["usage"]["prompt_tokens"], 5, "billed_units: what Cohere charges");
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v2/chat");
    assert_eq!(seen.header("authorization"), Some("Bearer co-key-1"));
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["model"], "command-r-plus");
    assert_eq!(sent["p"], 0.5);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["max_tokens"], 30);

    let body = json!({"model": "cohere/command-r-plus", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let data = sse_data(&reply.text());
    let text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert!(text.starts_with("Hello from the asbru"), "{text}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(&data[data.len() - 2]).expect("json");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["usage"]["prompt_tokens"], 5);
}

#[tokio::test]
async fn tools_and_anthropic_clients() {
    let upstream = default_mock();
    let gw = cohere_gateway(&upstream.base_url());
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let body = json!({"model": "cohere/command-r-plus", "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "weather?"}]});
    let reply = post(&gw, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        json["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[0].body).expect("json");
    assert_eq!(sent["tool_choice"], "REQUIRED");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = post(&gw, "/v1/chat/completions", &streamed.to_string()).await;
    let arguments: String = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(serde_json::from_str::<Value>(&arguments).is_ok(), "{arguments}");

    // An Anthropic client, through the chat hub.
    let body =
        json!({"model": "cohere/command-r-plus", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&gw, "/anthropic/v1/messages", &body.to_string()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["content"][0]["text"], REPLY);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let reply = post(&gw, "/anthropic/v1/messages", &streamed.to_string()).await;
    let names: Vec<String> = events(&reply.text()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.last().map(String::as_str), Some("message_stop"), "{names:?}");
}

#[tokio::test]
async fn embeddings_and_errors() {
    let upstream = default_mock();
    let gw = cohere_gateway(&upstream.base_url());
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"cohere/embed-v4.0","input":["a","b"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["data"][1]["embedding"], json!([0.5, 1.0]));
    assert_eq!(json["usage"]["prompt_tokens"], 7);
    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v2/embed");
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["texts"], json!(["a", "b"]));
    assert_eq!(sent["embedding_types"], json!(["float"]));

    // Cohere's `{"message"}` errors keep their status and message, in OpenAI's shape.
    let failing = mock(MockOptions {
        fail_first: 10,
        fail_status: 429,
        ..MockOptions::default()
    });
    let gw = cohere_gateway(&failing.base_url());
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"cohere/command-r","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 429, "{}", reply.text());
    assert_eq!(reply.json()["error"]["message"], "mock provider failure");
    // n > 1 has no Cohere form: refused before anything is sent.
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"cohere/command-r","n":2,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
}
