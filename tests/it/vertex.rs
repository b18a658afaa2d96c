//! Vertex AI end to end against the mock: Gemini models in Gemini's body and Claude models
//! through `rawPredict`, authorised by a service account whose signed JWT the mock's OAuth2
//! endpoint exchanges for a token (cached, refreshed ahead of expiry), or by an API key.
//!
//! The RSA key under `tests/it/fixtures/` was generated for these tests only; it signs nothing
//! outside them.

use asbru_bench::mock::MockOptions;
use serde_json::{Value, json};

use crate::support::*;

const PRIVATE_KEY: &str = include_str!("fixtures/vertex-test-service-account.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/vertex-test-service-account.pub.pem");
const CLIENT_EMAIL: &str = "asbru-test@p-1.iam.gserviceaccount.com";

fn service_account(token_uri: &str, private_key: &str) -> String {
    json!({"type": "service_account", "project_id": "p-1", "private_key_id": "kid-1",
        "private_key": private_key, "client_email": CLIENT_EMAIL, "token_uri": token_uri})
    .to_string()
}

/// A gateway whose `vertex` provider points at the mock, with one service-account key (the
/// config is JSON, which YAML reads as is).
fn vertex_gateway(base_url: &str, credentials: &str) -> asbru::server::RunningGateway {
    let config = json!({"providers": {"vertex": {
        "keys": [{"name": "sa", "value": "", "models": ["*"],
            "vertex_key_config": {"project_id": "p-1", "region": "europe-west4", "auth_credentials": credentials}}],
        "network_config": {"base_url": base_url}}}});
    gateway(&config.to_string())
}

/// A one-turn chat to `vertex/gemini-2.0-flash`.
async fn ask_gemini(gw: &asbru::server::RunningGateway) -> Reply {
    post(
        gw,
        "/v1/chat/completions",
        r#"{"model":"vertex/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await
}

fn sent_body(upstream: &asbru_bench::mock::MockHandle, at: usize) -> Value {
    serde_json::from_slice(&upstream.state.recorded()[at].body).expect("json body")
}

#[tokio::test]
async fn gemini_and_claude_models_with_a_service_account() {
    let upstream = default_mock();
    let base = upstream.base_url();
    let gw = vertex_gateway(&base, &service_account(&format!("{base}/token"), PRIVATE_KEY));

    let reply = ask_gemini(&gw).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        seen.path,
        "/v1/projects/p-1/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer ya29.mock-token-1"));
    assert_eq!(seen.header("x-goog-api-key"), None);
    assert!(sent_body(&upstream, 0)["contents"].is_array(), "Gemini's body");
    assert_eq!(upstream.state.token_requests(), 1);

    // The assertion: RS256 over the account's key, issued by the account, for its token URI.
    let assertion = upstream.state.last_assertion().expect("an assertion was exchanged");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("{base}/token")]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("public key");
    let decoded = jsonwebtoken::decode::<Value>(&assertion, &key, &validation).expect("a valid signature");
    assert_eq!(
        decoded.claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(decoded.header.kid.as_deref(), Some("kid-1"));

    // Streamed, on the cached token.
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"vertex/gemini-2.0-flash","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let text: String = sse_data(&reply.text())
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert!(text.starts_with("Hello from the asbru"), "{text}");
    assert!(
        upstream.state.recorded()[1]
            .path
            .ends_with(":streamGenerateContent?alt=sse")
    );
    assert_eq!(upstream.state.token_requests(), 1, "the token is cached");

    // Claude: rawPredict with the Anthropic body, Vertex's version, no model.
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"vertex/claude-sonnet-4@20250514","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from the asbru mock provider."
    );
    let seen = &upstream.state.recorded()[2];
    assert_eq!(
        seen.path,
        "/v1/projects/p-1/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    );
    assert_eq!(seen.header("anthropic-version"), None);
    let sent = sent_body(&upstream, 2);
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none());
    assert_eq!(sent["messages"][0]["content"], "hi");

    // An Anthropic client streaming from Claude on Vertex.
    let body = r#"{"model":"vertex/claude-sonnet-4@20250514","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(gw.addr, "POST", "/anthropic/v1/messages", &[], body.as_bytes()).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let text = reply.text();
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(upstream.state.recorded()[3].path.ends_with(":streamRawPredict"));
    assert_eq!(upstream.state.token_requests(), 1);

    // Vertex has no OpenAI-style embeddings here.
    let reply = post(
        &gw,
        "/v1/embeddings",
        r#"{"model":"vertex/text-embedding-005","input":"hi"}"#,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_in_the_background() {
    // 200 s tokens are inside the refresh window from the start.
    let upstream = mock(MockOptions {
        record: true,
        token_ttl_secs: 200,
        ..MockOptions::default()
    });
    let base = upstream.base_url();
    let gw = vertex_gateway(&base, &service_account(&format!("{base}/token"), PRIVATE_KEY));
    let body = r#"{"model":"vertex/gemini-2.0-flash","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(upstream.state.token_requests(), 1);
    // The next request goes on with the current token and starts a refresh beside it.
    let reply = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(
        upstream.state.recorded()[1].header("authorization"),
        Some("Bearer ya29.mock-token-1")
    );
    assert!(
        eventually(|| upstream.state.token_requests() == 2),
        "a background refresh ran"
    );
    // Once the refresh is stored, requests carry the new token (bounded wait).
    let mut used = None;
    for _ in 0..50 {
        let reply = post(&gw, "/v1/chat/completions", body).await;
        assert_eq!(reply.status(), 200);
        used = upstream
            .state
            .recorded()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_string));
        if used.as_deref() == Some("Bearer ya29.mock-token-2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        used.as_deref(),
        Some("Bearer ya29.mock-token-2"),
        "the refreshed token is used"
    );
    // The new token is as short-lived, so one more background refresh may follow; never more
    // than one at a time.
    assert!(upstream.state.token_requests() <= 3);
}

#[tokio::test]
async fn credential_failures_are_clear_and_keep_the_key_secret() {
    let upstream = default_mock();
    let base = upstream.base_url();
    // A token endpoint that cannot be reached.
    let dead = format!("http://{}/token", dead_address());
    let gw = vertex_gateway(&base, &service_account(&dead, PRIVATE_KEY));
    let reply = ask_gemini(&gw).await;
    assert_eq!(reply.status(), 502, "{}", reply.text());
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("token endpoint"), "{message}");
    assert!(!reply.text().contains("PRIVATE KEY"));
    assert!(upstream.state.recorded().is_empty(), "no call without a token");

    // A key that is not a PEM RSA key.
    let gw = vertex_gateway(&base, &service_account(&format!("{base}/token"), "not a key"));
    let reply = ask_gemini(&gw).await;
    assert_eq!(reply.status(), 502, "{}", reply.text());
    assert!(reply.text().contains("not a PEM RSA key"), "{}", reply.text());
    assert!(!reply.text().contains("not a key\""));

    // A token the endpoint refuses (the mock wants the cloud-platform scope and a signature).
    let upstream_refusing = default_mock();
    let refusing_base = upstream_refusing.base_url();
    let gw = vertex_gateway(
        &refusing_base,
        &service_account(&format!("{refusing_base}/token?fail=1"), PRIVATE_KEY),
    );
    let reply = ask_gemini(&gw).await;
    assert_eq!(reply.status(), 502, "{}", reply.text());

    // Unparseable credentials leave the key out, with a warning, rather than failing at load.
    let config = json!({"providers": {"vertex": {
        "keys": [{"name": "sa", "value": "", "vertex_key_config": {"project_id": "p-1", "auth_credentials": "{nope"}}],
        "network_config": {"base_url": base}}}});
    let gw = gateway(&config.to_string());
    let reply = ask_gemini(&gw).await;
    assert!(reply.status() >= 400, "{}", reply.text());
}

/// Vertex behind a private CA (`network_config.ca_cert_pem`): the service account's token
/// endpoint is reached through the same trust as the provider's own calls, so a TLS-intercepting
/// proxy's CA covers both; a gateway trusting another CA fetches no token and calls nothing.
#[tokio::test]
async fn the_token_endpoint_is_trusted_as_the_provider_is() {
    let dir = temp_dir("vertex-private-ca");
    let ca = asbru_bench::upstream_tls::make(&dir).expect("CA");
    let upstream = mock(MockOptions {
        tls: Some(ca.server.clone()),
        ..MockOptions::default()
    });
    let base = format!("https://localhost:{}", upstream.addr.port());
    let gateway_trusting = |pem: &str| {
        let config = json!({"providers": {"vertex": {
            "keys": [{"name": "sa", "value": "", "models": ["*"],
                "vertex_key_config": {"project_id": "p-1", "region": "europe-west4",
                    "auth_credentials": service_account(&format!("{base}/token"), PRIVATE_KEY)}}],
            "network_config": {"base_url": base, "ca_cert_pem": pem}}}});
        gateway(&config.to_string())
    };

    std::fs::create_dir_all(dir.join("other")).expect("dir");
    let other = asbru_bench::upstream_tls::make(&dir.join("other")).expect("another CA");
    let refusing = gateway_trusting(&other.ca_pem);
    let reply = ask_gemini(&refusing).await;
    assert_eq!(reply.status(), 502, "{}", reply.text());
    assert!(reply.text().contains("token endpoint"), "{}", reply.text());
    assert_eq!(
        upstream.state.token_requests(),
        0,
        "no token over an untrusted connection"
    );

    let trusting = gateway_trusting(&ca.ca_pem);
    let reply = ask_gemini(&trusting).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(upstream.state.token_requests(), 1);
    let seen = upstream.state.recorded();
    assert!(
        seen.iter().any(|r| r.path.contains(":generateContent")),
        "the model was called over TLS: {:?}",
        seen.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_api_key_reaches_gemini_models_in_express_mode() {
    let upstream = default_mock();
    let config = json!({"providers": {"vertex": {
        "keys": [{"name": "express", "value": "vx-api-key", "models": ["*"], "vertex_key_config": {"region": "global"}}],
        "network_config": {"base_url": upstream.base_url()}}}});
    let gw = gateway(&config.to_string());
    let reply = ask_gemini(&gw).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = &upstream.state.recorded()[0];
    assert_eq!(
        seen.path,
        "/v1/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(seen.header("x-goog-api-key"), Some("vx-api-key"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(upstream.state.token_requests(), 0);
}
