//! The happy paths: bodies, streams, routes, headers, byte-exact pass-through.

use std::time::Duration;

use asbru_bench::mock::MockOptions;

use crate::support::*;

fn one_provider(base_url: &str) -> String {
    format!("providers:\n{}", provider_yaml("openai", base_url, ""))
}

#[tokio::test]
async fn non_stream_chat_passes_through() {
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
    assert_eq!(body["usage"]["total_tokens"], 18);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
    assert_eq!(reply.header("x-bifrost-resolved-model").as_deref(), Some("gpt-4o-mini"));
    assert_eq!(reply.header("x-bifrost-fallback-index"), None);
    assert!(reply.header("x-request-id").is_some_and(|id| id.len() == 36));
    let seen = upstream.state.recorded();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn client_request_id_is_echoed() {
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let body = br#"{"model":"openai/m","messages":[]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "trace-123")],
        body,
    )
    .await;
    assert_eq!(reply.header("x-request-id").as_deref(), Some("trace-123"));
}

#[tokio::test]
async fn unknown_fields_pass_through_byte_for_byte() {
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let sent = "{ \"model\" : \"openai/gpt-4o\",\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \u{1F600}\"}],\n  \"x_vendor\": {\"nested\": [1.50, 2e3, null]}, \"temperature\":0.70,\n  \"fallbacks\": [\"openai/gpt-4o-mini\"] ,\"seed\":  42}";
    let expected = "{ \"model\" : \"gpt-4o\",\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \u{1F600}\"}],\n  \"x_vendor\": {\"nested\": [1.50, 2e3, null]}, \"temperature\":0.70 ,\"seed\":  42}";
    let reply = post(&gw, "/v1/chat/completions", sent).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = upstream.state.recorded();
    assert_eq!(String::from_utf8_lossy(&seen[0].body), expected);
}

#[tokio::test]
async fn one_mebibyte_body_goes_through_intact() {
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let content: String = (0..(1024 * 1024)).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let body = format!(r#"{{"model":"openai/gpt-4o","messages":[{{"role":"user","content":"{content}"}}]}}"#);
    let reply = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = upstream.state.recorded();
    let expected = body.replacen("openai/gpt-4o", "gpt-4o", 1);
    assert_eq!(seen[0].body.len(), expected.len());
    assert!(
        seen[0].body == expected.as_bytes(),
        "the upstream body differs from the client's"
    );
}

#[tokio::test]
async fn stream_is_relayed_chunk_by_chunk() {
    let upstream = mock(MockOptions {
        chunks: 5,
        chunk_delay: Duration::from_millis(80),
        ..MockOptions::default()
    });
    let gw = gateway(&one_provider(&upstream.base_url()));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/event-stream"))
    );
    let events = sse_data(&reply.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let content: String = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(content, "Hello from the asbru mock");
    let usage = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .find(|v| v.get("usage").is_some())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    // Chunks were written as the upstream produced them, not collected and sent at the end.
    assert!(reply.chunks.len() >= 5, "only {} body reads", reply.chunks.len());
    let first = reply.chunks.first().expect("chunks").0;
    let last = reply.chunks.last().expect("chunks").0;
    assert!(
        last - first >= Duration::from_millis(240),
        "chunks arrived together: spread {:?}",
        last - first
    );
}

#[tokio::test]
async fn openai_integration_route_assumes_openai_and_strips_client_credentials() {
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let headers = [
        ("authorization", "Bearer client-secret"),
        ("x-api-key", "client-anthropic-key"),
        ("x-bf-eh-openai-organization", "org-42"),
    ];
    let body = br#"{"model":"gpt-4o-mini","messages":[]}"#;
    for path in ["/openai/v1/chat/completions", "/openai/chat/completions"] {
        let reply = send(gw.addr, "POST", path, &headers, body).await;
        assert_eq!(reply.status(), 200, "{path}: {}", reply.text());
    }
    for seen in upstream.state.recorded() {
        assert_eq!(seen.header("authorization"), Some("Bearer sk-openai-key"));
        assert_eq!(seen.header("x-api-key"), None);
        assert_eq!(seen.header("openai-organization"), Some("org-42"));
        assert_eq!(
            String::from_utf8_lossy(&seen.body),
            r#"{"model":"gpt-4o-mini","messages":[]}"#
        );
    }
}

#[tokio::test]
async fn embeddings_and_model_listing() {
    let first = default_mock();
    let second = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &first.base_url(), ""),
        provider_yaml("local", &format!("{}/api", second.base_url()), "")
    ));
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"local/mock-embedding","input":["a","b"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(second.state.recorded()[0].path, "/api/v1/embeddings");
    let reply = post(
        &gw,
        "/openai/v1/embeddings",
        r#"{"model":"mock-embedding","input":"a"}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);

    let reply = send(gw.addr, "GET", "/v1/models", &[], b"").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let ids: Vec<String> = reply.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        ids,
        [
            "local/mock-gpt",
            "local/mock-embedding",
            "openai/mock-gpt",
            "openai/mock-embedding"
        ]
    );
    let reply = send(gw.addr, "GET", "/v1/models?provider=openai", &[], b"").await;
    assert_eq!(reply.json()["data"].as_array().map(Vec::len), Some(2));
    let reply = send(gw.addr, "GET", "/openai/v1/models", &[], b"").await;
    assert_eq!(reply.json()["data"][0]["id"], "mock-gpt");
}

#[tokio::test]
async fn health_answers() {
    let gw = gateway("");
    let reply = send(gw.addr, "GET", "/health", &[], b"").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.json()["status"], "ok");
}

#[tokio::test]
async fn extra_headers_and_keyless_providers() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  ollama:\n    network_config:\n      base_url: \"{}\"\n      extra_headers: {{X-Team: research, x-trace: \"on\"}}\n",
        upstream.base_url()
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"ollama/llama3","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        seen.header("authorization"),
        None,
        "a keyless provider gets no credentials"
    );
    assert_eq!(seen.header("x-team"), Some("research"));
    assert_eq!(seen.header("x-trace"), Some("on"));
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    use std::io::{Read, Write};
    let upstream = default_mock();
    let gw = gateway(&one_provider(&upstream.base_url()));
    let body = br#"{"model":"openai/gpt-4o","messages":[]}"#;
    let mut stream = std::net::TcpStream::connect(gw.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    let mut interim = [0u8; 25];
    stream
        .read_exact(&mut interim)
        .expect("100 Continue arrives before the body is sent");
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(body).expect("body");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
}

#[tokio::test]
async fn bifrosts_quickstart_body_with_a_provider_field_works() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let body = r#"{"provider": "openai", "model": "gpt-4o-mini", "fallbacks": ["openai/gpt-4o"], "messages": [{"role": "user", "content": "Hello, Bifrost!"}]}"#;
    let reply = send(gw.addr, "POST", "/v1/chat/completions", &[], body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
    assert_eq!(reply.header("x-bifrost-resolved-model").as_deref(), Some("gpt-4o-mini"));
    let seen = upstream.state.recorded();
    let sent: serde_json::Value = serde_json::from_slice(&seen.last().expect("forwarded").body).expect("json");
    assert!(
        sent.get("provider").is_none(),
        "the provider field is not sent upstream: {sent}"
    );
    assert!(sent.get("fallbacks").is_none(), "{sent}");
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["messages"][0]["content"], "Hello, Bifrost!");
    // Already prefixed: not doubled. A provider that is not a string is a 400.
    let prefixed = r#"{"provider": "openai", "model": "openai/gpt-4o-mini", "messages": []}"#;
    assert_eq!(
        send(gw.addr, "POST", "/v1/chat/completions", &[], prefixed.as_bytes())
            .await
            .status(),
        200
    );
    let bad = r#"{"provider": 7, "model": "gpt-4o-mini", "messages": []}"#;
    let refused = send(gw.addr, "POST", "/v1/chat/completions", &[], bad.as_bytes()).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused.text().contains("`provider` must be a string"),
        "{}",
        refused.text()
    );
}

#[tokio::test]
async fn a_failing_provider_does_not_fail_the_model_listing() {
    let upstream = default_mock();
    let dead = format!("http://{}", dead_address());
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("groq", &dead, "")
    ));
    let reply = send(gw.addr, "GET", "/v1/models", &[], b"").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let body = reply.json();
    assert!(body["data"].as_array().is_some_and(|d| !d.is_empty()));
    assert!(
        body["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|m| m["id"].as_str().is_some_and(|id| id.starts_with("openai/")))
    );
    assert_eq!(body["failed_providers"][0]["provider"], "groq", "{body}");
    // Only when every provider fails is the listing an error.
    let gw = gateway(&format!("providers:\n{}", provider_yaml("groq", &dead, "")));
    assert!(send(gw.addr, "GET", "/v1/models", &[], b"").await.status() >= 500);
}

#[tokio::test]
async fn cors_answers_preflights_and_marks_replies_for_allowed_origins() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "client: {{allowed_origins: [\"https://app.example.com\", \"https://*.corp.example\"]}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let preflight = send(
        gw.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", "https://team.corp.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization, content-type"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some("https://team.corp.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers").as_deref(),
        Some("authorization, content-type")
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert_eq!(upstream.state.request_count(), 0, "a preflight never goes upstream");
    let refused = send(
        gw.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert!(refused.header("access-control-allow-origin").is_none());
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("origin", "https://app.example.com")],
        body,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        reply
            .header("access-control-expose-headers")
            .is_some_and(|h| h.contains("x-bifrost-provider"))
    );
    // Errors and other routes carry it too; another origin gets none.
    let error = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("origin", "https://app.example.com")],
        b"{",
    )
    .await;
    assert_eq!(error.status(), 400);
    assert_eq!(
        error.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let other = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("origin", "https://evil.example")],
        body,
    )
    .await;
    assert_eq!(other.status(), 200);
    assert!(other.header("access-control-allow-origin").is_none());
    // Without allowed_origins, no CORS at all: OPTIONS is simply not a route.
    let plain = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let options = send(
        plain.addr,
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    )
    .await;
    assert!(options.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn one_model_is_retrieved_with_its_provider_prefix() {
    let upstream = default_mock();
    let url = upstream.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{name: o, value: sk-o}}]\n    network_config: {{base_url: \"{url}\"}}\n  gemini:\n    keys: [{{name: g, value: gm-1}}]\n    network_config: {{base_url: \"{url}\"}}\n"
    ));
    let reply = send(gw.addr, "GET", "/v1/models/openai/mock-gpt", &[], b"").await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["id"], "openai/mock-gpt");
    assert_eq!(json["object"], "model");
    assert_eq!(json["owned_by"], "asbru-mock");
    for (path, why) in [
        ("/v1/models/openai/no-such-model", "not listed"),
        ("/v1/models/nobody/x", "provider not configured"),
        ("/v1/models/mock-gpt", "no provider prefix"),
    ] {
        let reply = send(gw.addr, "GET", path, &[], b"").await;
        assert_eq!(reply.status(), 404, "{why}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "model_not_found", "{why}");
    }
    // The OpenAI SDK encodes the slash.
    let reply = send(gw.addr, "GET", "/v1/models/openai%2Fmock-gpt", &[], b"").await;
    assert_eq!(reply.json()["id"], "openai/mock-gpt", "{}", reply.text());
    // Gemini has no OpenAI-style listing: the model is answered as configured.
    let reply = send(gw.addr, "GET", "/v1/models/gemini/gemini-2.0-flash", &[], b"").await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.json()["id"], "gemini/gemini-2.0-flash");
}
