//! Failure paths: every bad input gets a clear Bifrost-shaped error with the right status.

use std::time::Duration;

use asbru_bench::mock::MockOptions;

use crate::support::*;

fn assert_bifrost_error(reply: &Reply, status: u16, message_part: &str) -> serde_json::Value {
    assert_eq!(reply.status(), status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status_code"], status);
    assert!(body["is_bifrost_error"].is_boolean());
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "message {message:?} lacks {message_part:?}"
    );
    body
}

#[tokio::test]
async fn bad_requests_are_400() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let cases = [
        (r#"{"model":"openai/gpt-4o","#, "invalid JSON"),
        ("", "invalid JSON"),
        ("[]", "invalid JSON"),
        (r#"{"messages":[]}"#, "model is required"),
        (r#"{"model":42}"#, "must be a string"),
        (r#"{"model":"gpt-4o"}"#, "provider is required"),
        (r#"{"model":"groq/llama"}"#, "not configured"),
        (r#"{"model":"openai/"}"#, "model name is missing"),
        (r#"{"model":"openai/gpt-4o","fallbacks":"groq/x"}"#, "fallbacks"),
    ];
    for (body, part) in cases {
        let reply = post(&gw, "/v1/chat/completions", body).await;
        let json = assert_bifrost_error(&reply, 400, part);
        assert_eq!(json["is_bifrost_error"], false);
        assert_eq!(json["extra_fields"]["request_type"], "chat_completion");
    }
    assert_eq!(upstream.state.request_count(), 0, "no bad request reached the provider");
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let gw = gateway("");
    let reply = send(gw.addr, "GET", "/v2/everything", &[], b"").await;
    assert_bifrost_error(&reply, 404, "Route not found: /v2/everything");
    let reply = send(gw.addr, "GET", "/v1/chat/completions", &[], b"").await;
    assert_bifrost_error(&reply, 405, "POST");
}

/// An early reply on a connection that then closes (a 404 to an upload the gateway never
/// needs) reaches a client still sending its body: the gateway reads and drops what the client
/// sends before closing (bounded), instead of closing on unread bytes, which resets the
/// connection and fails the client's upload before it reads the reply.
#[tokio::test]
async fn an_early_reply_reaches_a_client_still_uploading_its_body() {
    use std::io::{Read, Write};
    let gw = gateway("");
    let body = vec![b' '; 12 << 20];
    let mut stream = std::net::TcpStream::connect(gw.addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let head = format!(
        "POST /v2/uploads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().expect("clone");
    let upload = std::thread::spawn(move || {
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)
    });
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let uploaded = upload.join().expect("upload thread");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(text.contains("Route not found: /v2/uploads"), "{text}");
    assert!(uploaded.is_ok(), "the upload was cut: {uploaded:?}");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "server: {{max_request_body_size_mb: 1}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    // Declared too large: refused before the body is read.
    let reply = raw_exchange(
        gw.addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2097152\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("\"status_code\":413") && reply.contains("1 MB limit"),
        "{reply}"
    );

    // Chunked, no length: refused once the limit is crossed.
    let mut request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let piece = vec![b'a'; 64 * 1024];
    for _ in 0..17 {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(&piece);
        request.extend_from_slice(b"\r\n");
    }
    let reply = raw_exchange(gw.addr, &request);
    assert!(reply.starts_with("HTTP/1.1 413"), "{}", &reply[..reply.len().min(200)]);
    assert_eq!(upstream.state.request_count(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_502_without_the_address() {
    let dead = dead_address();
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &format!("http://{dead}"), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    let body = assert_bifrost_error(&reply, 502, "could not connect to provider openai");
    assert_eq!(body["is_bifrost_error"], true);
    assert_eq!(body["extra_fields"]["provider"], "openai");
    assert_eq!(body["extra_fields"]["model_requested"], "openai/gpt-4o");
    let text = reply.text();
    assert!(
        !text.contains(&dead.port().to_string()),
        "error leaks the upstream address: {text}"
    );
    assert!(!text.contains("sk-openai-key"));
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let upstream = mock(MockOptions {
        latency: Duration::from_secs(3),
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml(
            "openai",
            &upstream.base_url(),
            ", default_request_timeout_in_seconds: 1"
        )
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_bifrost_error(&reply, 504, "did not answer within 1s");
}

#[tokio::test]
async fn missing_env_key_is_left_out_never_sent_empty() {
    let upstream = default_mock();
    let base = upstream.base_url();
    let only_missing = format!(
        "providers:\n  openai:\n    keys: [{{name: ghost, value: env.ASBRU_TEST_SURELY_UNSET_VAR}}]\n    network_config: {{base_url: \"{base}\"}}\n"
    );
    let gw = gateway(&only_missing);
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    let body = assert_bifrost_error(&reply, 500, "no usable keys are configured for provider openai");
    assert_eq!(body["is_bifrost_error"], true);
    assert_eq!(upstream.state.request_count(), 0);
    drop(gw);

    let mixed = format!(
        "providers:\n  openai:\n    keys:\n      - {{name: ghost, value: env.ASBRU_TEST_SURELY_UNSET_VAR, weight: 100}}\n      - {{name: real, value: sk-real}}\n    network_config: {{base_url: \"{base}\"}}\n"
    );
    let gw = gateway(&mixed);
    for _ in 0..20 {
        let reply = post(
            &gw,
            "/v1/chat/completions",
            r#"{"model":"openai/gpt-4o","messages":[]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
    }
    for seen in upstream.state.recorded() {
        assert_eq!(seen.header("authorization"), Some("Bearer sk-real"));
    }
}

#[tokio::test]
async fn no_key_for_the_model_is_400() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{value: sk-x, models: [gpt-4o]}}]\n    network_config: {{base_url: \"{}\"}}\n",
        upstream.base_url()
    ));
    let reply = post(&gw, "/v1/chat/completions", r#"{"model":"openai/o1","messages":[]}"#).await;
    assert_bifrost_error(&reply, 400, "no keys found for provider: openai and model: o1");
}

#[tokio::test]
async fn upstream_errors_keep_their_status_and_body() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 401,
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 401);
    assert_eq!(reply.json()["error"]["type"], "server_error");
    assert_eq!(reply.json()["error"]["message"], "mock provider failure");
}
