//! Anthropic and Azure upstreams, and the `/anthropic` ingress, end to end against the mock.

use asbru_bench::mock::MockOptions;
use serde_json::Value;

use crate::support::*;

fn anthropic_provider(base_url: &str) -> String {
    format!(
        "  anthropic:\n    keys: [{{name: a, value: sk-ant-key}}]\n    network_config: {{base_url: \"{base_url}\"}}\n"
    )
}

#[tokio::test]
async fn openai_client_to_anthropic_upstream() {
    let upstream = default_mock();
    let gw = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let body = r#"{"model":"anthropic/claude-3-5-haiku","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"user":"u-1"}"#;
    let headers = [
        ("authorization", "Bearer client-secret"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ];
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &headers, body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(
        json["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        json["usage"]["prompt_tokens"], 15,
        "cache reads counted once in the prompt"
    );
    assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("anthropic"));

    let seen = &upstream.state.recorded()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-key"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(seen.header("authorization"), None);
    let sent: Value = serde_json::from_slice(&seen.body).expect("json");
    assert_eq!(sent["model"], "claude-3-5-haiku");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["metadata"]["user_id"], "u-1");
}

#[tokio::test]
async fn openai_stream_from_anthropic_upstream() {
    let upstream = default_mock();
    let gw = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"anthropic/claude","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
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
    assert_eq!(last["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn openai_tool_calls_through_anthropic() {
    let upstream = default_mock();
    let gw = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let body = r#"{"model":"anthropic/claude","messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}"#;
    let reply = post(&gw, "/v1/chat/completions", body).await;
    let json = reply.json();
    assert_eq!(json["choices"][0]["finish_reason"], "tool_calls");
    let call = &json["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);

    let stream_body = body.replacen("\"messages\"", "\"stream\":true,\"messages\"", 1);
    let reply = post(&gw, "/v1/chat/completions", &stream_body).await;
    let chunks: Vec<Value> = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64().unwrap_or(0) == 0)
    );
}

#[tokio::test]
async fn anthropic_ingress_to_anthropic_is_verbatim() {
    let upstream = default_mock();
    let gw = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let sent = r#"{"model":"claude-sonnet-4","max_tokens":64,"system":[{"type":"text","text":"cached","cache_control":{"type":"ephemeral"}}],"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"hi"}]}"#;
    let headers = [
        ("x-api-key", "client-key"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "web-search-2025-03-05"),
    ];
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &headers, sent.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        sent,
        "the body went upstream unchanged"
    );
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-key"));
    assert_eq!(seen.header("anthropic-beta"), Some("web-search-2025-03-05"));
    let expected = asbru_bench::mock::anthropic_message_for_tests("claude-sonnet-4", Some("web_search"));
    assert_eq!(reply.json(), expected, "the reply came back unchanged");

    let stream = sent.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1);
    let reply = send(gw.addr, "POST", "/anthropic/messages", &headers, stream.as_bytes()).await;
    let evs = events(&reply.text());
    assert_eq!(evs.first().map(|e| e.0.as_str()), Some("message_start"));
    assert!(
        evs.iter().any(|e| e.0 == "ping"),
        "pass-through keeps every event, ping included"
    );
    assert_eq!(evs.last().map(|e| e.0.as_str()), Some("message_stop"));
}

#[tokio::test]
async fn anthropic_ingress_to_openai_upstream() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let body = r#"{"model":"openai/gpt-4o-mini","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &[], body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["type"], "message");
    assert_eq!(json["role"], "assistant");
    assert_eq!(json["content"][0]["text"], "Hello from the asbru mock provider.");
    assert_eq!(json["stop_reason"], "end_turn");
    assert_eq!(json["usage"]["input_tokens"], 12);
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[0].body).expect("json");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["model"], "gpt-4o-mini");

    let stream = body.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1);
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &[], stream.as_bytes()).await;
    let evs = events(&reply.text());
    let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[1], "content_block_start");
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = evs.iter().filter_map(|e| e.1["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Hello from the asbru mock");
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[1].body).expect("json");
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn anthropic_ingress_errors_use_anthropic_shape() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 429,
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let body = r#"{"model":"openai/gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &[], body.as_bytes()).await;
    assert_eq!(reply.status(), 429);
    let json = reply.json();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(json["error"]["message"], "mock provider failure");

    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &[], b"{not json").await;
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = send(
        gw.addr,
        "POST",
        "/anthropic/v1/messages/count_tokens",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 400, "count_tokens needs an Anthropic upstream");
    assert_eq!(reply.json()["type"], "error");
}

#[tokio::test]
async fn anthropic_errors_reach_openai_clients_with_their_status() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 529,
        ..MockOptions::default()
    });
    let gw = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"anthropic/claude","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 529);
    let json = reply.json();
    assert_eq!(json["status_code"], 529);
    assert_eq!(json["error"]["type"], "overloaded_error");
    assert_eq!(json["error"]["message"], "mock provider failure");
    let reply = send(
        gw.addr,
        "POST",
        "/anthropic/v1/messages/count_tokens",
        &[],
        br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["input_tokens"], 42);
}

#[tokio::test]
async fn azure_deployments_paths_and_headers() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  azure:\n    keys:\n      - name: az\n        value: az-secret\n        aliases: {{gpt-4o: my-gpt4o-deployment}}\n        azure_key_config: {{endpoint: \"{}\", api_version: \"2024-06-01\"}}\n",
        upstream.base_url()
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"azure/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        reply.header("x-bifrost-resolved-model").as_deref(),
        Some("my-gpt4o-deployment")
    );
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(seen.header("api-key"), Some("az-secret"));
    assert_eq!(seen.header("authorization"), None);

    // The Azure SDK's own path: the deployment in the URL names the model.
    let reply = send(
        gw.addr,
        "POST",
        "/openai/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01",
        &[("api-key", "client-key")],
        br#"{"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = &upstream.state.recorded()[1];
    assert_eq!(
        seen.path,
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-06-01"
    );
    assert_eq!(seen.header("api-key"), Some("az-secret"));
}

/// `send_back_raw_response`: a non-stream reply carries the provider's own body in
/// `extra_fields.raw_response` (here Anthropic's Messages reply under an OpenAI-shaped
/// completion); without the setting there is no such field.
#[tokio::test]
async fn send_back_raw_response_adds_the_providers_own_reply() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}    send_back_raw_response: true\n",
        anthropic_provider(&upstream.base_url())
    ));
    let body = r#"{"model":"anthropic/claude-3-5-haiku","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &[], body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("content-length"), Some(reply.body().len().to_string()));
    let json = reply.json();
    assert_eq!(json["object"], "chat.completion");
    let raw = &json["extra_fields"]["raw_response"];
    assert_eq!(raw["type"], "message", "{json}");
    assert_eq!(raw["content"][0]["text"], "Hello from the asbru mock provider.");

    let plain = gateway(&format!("providers:\n{}", anthropic_provider(&upstream.base_url())));
    let reply = send(plain.addr, "POST", "/v1/chat/completions", &[], body.as_bytes()).await;
    assert!(reply.json().get("extra_fields").is_none(), "{}", reply.text());
}
