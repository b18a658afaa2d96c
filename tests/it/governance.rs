//! Governance end to end: virtual keys, every rejection with its status and body, budgets over
//! the hierarchy, rate limits, windows, usage from replies and streams, the no-overspend storm,
//! and usage surviving a crash.
//!
//! Prices are pinned with `pricing_overrides` so costs are exact: `gpt-4o` costs nothing per
//! input token and 100 µ$ per output token. The mock reports 6 output tokens for a chat reply
//! and one per content chunk in a stream, so with `max_tokens: 6` a request reserves exactly
//! what it will be charged, 600 µ$.

use std::time::Duration;

use asbru::server::RunningGateway;
use asbru_bench::mock::{MockHandle, MockOptions};
use serde_json::Value;

use crate::support::*;

/// µ$ one non-stream `gpt-4o` request costs.
const REQUEST_MICROS: i64 = 600;

const PRICES: &str = "  pricing_overrides:\n    - {provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n    - {provider: anthropic, model: claude-x, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n    - {provider: groq, model: llama, input_cost_per_token: 0, output_cost_per_token: 0.0001}\n";

fn governed(upstream: &MockHandle, client: &str, governance: &str) -> RunningGateway {
    let base = upstream.base_url();
    gateway(&format!(
        "{client}providers:\n  openai:\n    keys: [{{name: k1, value: sk-one}}, {{name: k2, value: sk-two}}]\n    network_config: {{base_url: \"{base}\"}}\n  anthropic:\n    keys: [{{name: a1, value: sk-ant}}]\n    network_config: {{base_url: \"{base}\"}}\ngovernance:\n{PRICES}{governance}"
    ))
}

async fn chat(gw: &RunningGateway, headers: &[(&str, &str)], model: &str) -> Reply {
    let body = format!(r#"{{"model":"{model}","max_tokens":6,"messages":[{{"role":"user","content":"hi"}}]}}"#);
    send(gw.addr, "POST", "/v1/chat/completions", headers, body.as_bytes()).await
}

async fn chat_vk(gw: &RunningGateway, vk: &str, model: &str) -> Reply {
    chat(gw, &[("x-bf-vk", vk)], model).await
}

/// Asserts a governance refusal: status, top-level `type`, Bifrost's shape, and a message part.
fn assert_refused(reply: &Reply, status: u16, decision: &str, message_part: &str) {
    assert_eq!(reply.status(), status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["type"], decision, "{body}");
    assert_eq!(body["status_code"], status);
    assert_eq!(body["is_bifrost_error"], false);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "{message:?} should contain {message_part:?}"
    );
}

/// Settled usage of a meter, by id.
fn settled(gw: &RunningGateway, meter: &str) -> i64 {
    gw.state
        .registry
        .get(meter)
        .unwrap_or_else(|| panic!("no meter {meter}"))
        .settled()
}

#[tokio::test]
async fn missing_and_unknown_virtual_keys() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "client: {enforce_auth_on_inference: true}\n",
        "  virtual_keys:\n    - {id: vk-a, name: A, value: sk-bf-alpha, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    assert_refused(
        &chat(&gw, &[], "openai/gpt-4o").await,
        401,
        "virtual_key_required",
        "virtual key is required",
    );
    // A provider-style key that is not a virtual key does not count as one.
    assert_refused(
        &chat(&gw, &[("authorization", "Bearer sk-proj-something")], "openai/gpt-4o").await,
        401,
        "virtual_key_required",
        "x-bf-vk",
    );
    assert_refused(
        &chat_vk(&gw, "no-such-key", "openai/gpt-4o").await,
        401,
        "virtual_key_not_found",
        "does not exist",
    );
    assert_refused(
        &chat(&gw, &[("authorization", "Bearer sk-bf-unknown")], "openai/gpt-4o").await,
        401,
        "virtual_key_not_found",
        "virtual key not found",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-alpha", "openai/gpt-4o").await.status(), 200);
    assert_eq!(
        upstream.state.request_count(),
        1,
        "refused requests never reach the provider"
    );
}

#[tokio::test]
async fn blocked_keys_providers_and_models() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - {id: vk-off, name: Off, value: sk-bf-off, is_active: false, provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-old, name: Old, value: sk-bf-old, expires_at: \"2020-01-01T00:00:00Z\", provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-narrow, name: Narrow, value: sk-bf-narrow, provider_configs: [{provider: openai, weight: 1, allowed_models: [gpt-4o]}]}\n    - {id: vk-none, name: None, value: sk-bf-none}\n",
    );
    assert_refused(
        &chat_vk(&gw, "sk-bf-off", "openai/gpt-4o").await,
        403,
        "virtual_key_blocked",
        "Virtual key is inactive",
    );
    assert_refused(
        &chat_vk(&gw, "sk-bf-old", "openai/gpt-4o").await,
        403,
        "virtual_key_blocked",
        "Virtual key has expired",
    );
    assert_refused(
        &chat_vk(&gw, "sk-bf-narrow", "anthropic/claude-x").await,
        403,
        "provider_blocked",
        "Provider 'anthropic' is not allowed for virtual key 'vk-narrow'",
    );
    assert_refused(
        &chat_vk(&gw, "sk-bf-narrow", "openai/gpt-4o-mini").await,
        403,
        "model_blocked",
        "Model 'gpt-4o-mini' is not allowed for virtual key 'vk-narrow'",
    );
    // No provider configs: deny by default.
    assert_refused(
        &chat_vk(&gw, "sk-bf-none", "openai/gpt-4o").await,
        403,
        "provider_blocked",
        "not allowed",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-narrow", "openai/gpt-4o").await.status(), 200);
    assert_eq!(upstream.state.request_count(), 1);
}

#[tokio::test]
async fn request_token_and_combined_rate_limits() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        // Helm's camelCase section names work as well as the snake_case ones.
        "  rateLimits:\n    - {id: rl-req, request_max_limit: 2, request_reset_duration: 1h}\n    - {id: rl-tok, token_max_limit: 10, token_reset_duration: 1h}\n    - {id: rl-both, token_max_limit: 10, token_reset_duration: 1h, request_max_limit: 1, request_reset_duration: 1h}\n  virtualKeys:\n    - {id: vk-r, name: R, value: sk-bf-r, rate_limit_id: rl-req, provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-t, name: T, value: sk-bf-t, rate_limit_id: rl-tok, provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-b, name: B, value: sk-bf-b, rate_limit_id: rl-both, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    for _ in 0..2 {
        assert_eq!(chat_vk(&gw, "sk-bf-r", "openai/gpt-4o").await.status(), 200);
    }
    assert_refused(
        &chat_vk(&gw, "sk-bf-r", "openai/gpt-4o").await,
        429,
        "request_limited",
        "Rate limit exceeded: virtual key 'vk-r' rate limit 'rl-req' [request limit exceeded (2/2, resets every 1h)]",
    );
    // Tokens count from actual usage: the first reply uses 18 tokens of the 10 allowed.
    assert_eq!(chat_vk(&gw, "sk-bf-t", "openai/gpt-4o").await.status(), 200);
    assert_eq!(settled(&gw, "rate_limit:rl-tok:tokens"), 18);
    assert_refused(
        &chat_vk(&gw, "sk-bf-t", "openai/gpt-4o").await,
        429,
        "token_limited",
        "token limit exceeded (18/10, resets every 1h)",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-b", "openai/gpt-4o").await.status(), 200);
    assert_refused(
        &chat_vk(&gw, "sk-bf-b", "openai/gpt-4o").await,
        429,
        "rate_limited",
        "token limit exceeded (18/10, resets every 1h); request limit exceeded (1/1",
    );
    // Refused requests were not counted.
    assert_eq!(settled(&gw, "rate_limit:rl-req:requests"), 2);
    assert_eq!(upstream.state.request_count(), 4);
}

#[tokio::test]
async fn a_budget_refusal_is_final_and_never_falls_back() {
    let upstream = default_mock();
    let fallback = default_mock();
    let base = upstream.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{base}\"}}\n  anthropic:\n    keys: [{{value: sk-ant}}]\n    network_config: {{base_url: \"{base}\"}}\n{}governance:\n{PRICES}  virtual_keys:\n    - id: vk-small\n      name: Small\n      value: sk-bf-small\n      budgets: [{{max_limit: 0.0012, reset_duration: 1d}}]\n      provider_configs: [{{provider: openai, weight: 1}}, {{provider: groq, weight: 1}}, {{provider: anthropic, weight: 1}}]\n",
        provider_yaml("groq", &fallback.base_url(), "")
    ));
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"fallbacks":["groq/llama"],"messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..2 {
        let reply = send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("x-bf-vk", "sk-bf-small")],
            body,
        )
        .await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
    }
    assert_eq!(settled(&gw, "vk:vk-small:budget:0"), 2 * REQUEST_MICROS);
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-small")],
        body,
    )
    .await;
    assert_refused(
        &reply,
        402,
        "budget_exceeded",
        "Budget exceeded: virtual key 'vk-small' budget #1 (resets every 1d) exceeded: 0.0012 >= 0.0012 dollars",
    );
    assert_eq!(
        fallback.state.request_count(),
        0,
        "a refusal is never retried on a fallback"
    );
    // On the Anthropic route the same refusal comes in Anthropic's shape, same status.
    let anthropic = br#"{"model":"anthropic/claude-x","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/anthropic/v1/messages",
        &[("x-api-key", "sk-bf-small")],
        anthropic,
    )
    .await;
    assert_eq!(reply.status(), 402, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Budget exceeded: virtual key 'vk-small'")),
        "{body}"
    );
    assert_eq!(upstream.state.request_count(), 2);
}

#[tokio::test]
async fn team_and_customer_budgets_are_inherited() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  budgets:\n    - {id: b-acme, max_limit: 0.0012, reset_duration: 1M}\n  customers:\n    - {id: acme, name: Acme, budget_id: b-acme}\n  teams:\n    - {id: ml, name: ML, customer_id: acme, budgets: [{max_limit: 0.0018, reset_duration: 1w}]}\n    - {id: ops, name: Ops, budgets: [{max_limit: 0.0006, reset_duration: 1d}]}\n  virtual_keys:\n    - {id: vk-a, name: A, value: sk-bf-a, team_id: ml, provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-b, name: B, value: sk-bf-b, team_id: ml, provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-c, name: C, value: sk-bf-c, team_id: ops, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-a", "openai/gpt-4o").await.status(), 200);
    assert_eq!(chat_vk(&gw, "sk-bf-b", "openai/gpt-4o").await.status(), 200);
    // Both keys spent through the team into the customer, which is now full.
    assert_eq!(settled(&gw, "team:ml:budget:0"), 2 * REQUEST_MICROS);
    assert_eq!(settled(&gw, "budget:b-acme"), 2 * REQUEST_MICROS);
    assert_refused(
        &chat_vk(&gw, "sk-bf-a", "openai/gpt-4o").await,
        402,
        "budget_exceeded",
        "customer 'acme' budget 'b-acme' (resets every 1M)",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-c", "openai/gpt-4o").await.status(), 200);
    assert_refused(
        &chat_vk(&gw, "sk-bf-c", "openai/gpt-4o").await,
        402,
        "budget_exceeded",
        "team 'ops' budget #1",
    );
}

#[tokio::test]
async fn a_provider_config_cap_limits_one_provider_only() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - id: vk-p\n      name: P\n      value: sk-bf-p\n      budgets: [{max_limit: 1, reset_duration: 1M}]\n      provider_configs:\n        - {provider: openai, weight: 1, budgets: [{max_limit: 0.0006, reset_duration: 1h}]}\n        - {provider: anthropic, weight: 1}\n",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-p", "openai/gpt-4o").await.status(), 200);
    assert_refused(
        &chat_vk(&gw, "sk-bf-p", "openai/gpt-4o").await,
        402,
        "budget_exceeded",
        "provider config 'openai' of virtual key 'vk-p' budget #1 (resets every 1h)",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-p", "anthropic/claude-x").await.status(), 200);
    assert_eq!(settled(&gw, "vk:vk-p:budget:0"), 2 * REQUEST_MICROS);
}

#[tokio::test]
async fn two_budgets_with_different_windows_and_a_window_reset() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - id: vk-w\n      name: W\n      value: sk-bf-w\n      budgets: [{max_limit: 0.0018, reset_duration: 1d}, {max_limit: 0.0006, reset_duration: 2s}]\n      provider_configs: [{provider: openai, weight: 1}]\n",
    );
    let mut admitted = 0;
    assert_eq!(chat_vk(&gw, "sk-bf-w", "openai/gpt-4o").await.status(), 200);
    admitted += 1;
    assert_refused(
        &chat_vk(&gw, "sk-bf-w", "openai/gpt-4o").await,
        402,
        "budget_exceeded",
        "virtual key 'vk-w' budget #2 (resets every 2s)",
    );
    // The 2-second window resets; the daily one keeps counting until it is full too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while admitted < 3 && std::time::Instant::now() < deadline {
        let reply = chat_vk(&gw, "sk-bf-w", "openai/gpt-4o").await;
        match reply.status() {
            200 => admitted += 1,
            402 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(admitted, 3, "the short window reset twice within 10 s");
    assert_eq!(settled(&gw, "vk:vk-w:budget:0"), 3 * REQUEST_MICROS);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = chat_vk(&gw, "sk-bf-w", "openai/gpt-4o").await;
        assert_eq!(reply.status(), 402);
        if reply.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("budget #1 (resets every 1d)"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the daily budget never tripped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sdk_style_headers_carry_the_key_and_are_never_forwarded() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "client: {enforce_auth_on_inference: true}\n",
        "  virtual_keys:\n    - {id: vk-sdk, name: SDK, value: sk-bf-sdk-secret, provider_configs: [{provider: openai, weight: 1}, {provider: anthropic, weight: 1}]}\n    - {id: vk-plain, name: Plain, value: plain-secret-value, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    for header in [
        ("authorization", "Bearer sk-bf-sdk-secret"),
        ("x-api-key", "sk-bf-sdk-secret"),
        ("x-goog-api-key", "sk-bf-sdk-secret"),
        ("api-key", "sk-bf-sdk-secret"),
        // A known key works without the sk-bf- prefix too.
        ("authorization", "Bearer plain-secret-value"),
    ] {
        let reply = chat(&gw, &[header], "openai/gpt-4o").await;
        assert_eq!(reply.status(), 200, "{header:?}: {}", reply.text());
    }
    let messages = br#"{"model":"anthropic/claude-x","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/anthropic/v1/messages",
        &[("x-api-key", "sk-bf-sdk-secret")],
        messages,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let recorded = upstream.state.recorded();
    assert_eq!(recorded.len(), 6);
    for request in &recorded {
        for (name, value) in &request.headers {
            assert!(
                !value.contains("sk-bf-sdk-secret") && !value.contains("plain-secret-value"),
                "the virtual key went upstream in {name}"
            );
            assert_ne!(name.as_str(), "x-bf-vk");
        }
    }
    let auth: Vec<String> = recorded
        .iter()
        .filter_map(|r| r.header("authorization").or_else(|| r.header("x-api-key")))
        .map(str::to_string)
        .collect();
    assert!(
        auth.iter()
            .all(|a| a.contains("sk-one") || a.contains("sk-two") || a == "sk-ant"),
        "{auth:?}"
    );
}

#[tokio::test]
async fn usage_is_charged_from_replies_and_streams() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - {id: vk-u, name: U, value: sk-bf-u, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}, {provider: anthropic, weight: 1}]}\n",
    );
    let meter = "vk:vk-u:budget:0";
    assert_eq!(chat_vk(&gw, "sk-bf-u", "openai/gpt-4o").await.status(), 200);
    assert_eq!(settled(&gw, meter), REQUEST_MICROS);

    // A stream whose client did not ask for usage: the gateway asks upstream, counts it, and
    // drops the usage chunk from what the client sees.
    let stream =
        br#"{"model":"openai/gpt-4o","stream":true,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-u")],
        stream,
    )
    .await;
    assert_eq!(reply.status(), 200);
    let events = sse_data(&reply.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(!reply.text().contains("\"usage\""), "{}", reply.text());
    let sent: Value = serde_json::from_slice(&upstream.state.recorded()[1].body).expect("json");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(settled(&gw, meter), REQUEST_MICROS + 500, "five streamed tokens");

    // A client that asked for usage gets the chunk.
    let asked = br#"{"model":"openai/gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":6,"messages":[]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-u")],
        asked,
    )
    .await;
    assert!(reply.text().contains("\"completion_tokens\":5"), "{}", reply.text());
    assert_eq!(settled(&gw, meter), REQUEST_MICROS + 1000);

    // An Anthropic upstream, translated for an OpenAI client, stream and not.
    assert_eq!(chat_vk(&gw, "sk-bf-u", "anthropic/claude-x").await.status(), 200);
    assert_eq!(settled(&gw, meter), 2 * REQUEST_MICROS + 1000);
    let stream =
        br#"{"model":"anthropic/claude-x","stream":true,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-u")],
        stream,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(settled(&gw, meter), 2 * REQUEST_MICROS + 1500);

    // Counting tokens is free: allowed for the key, nothing reserved or charged.
    let before = settled(&gw, meter);
    let count = br#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/anthropic/v1/messages/count_tokens",
        &[("x-api-key", "sk-bf-u")],
        count,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["input_tokens"], 42);
    assert_eq!(settled(&gw, meter), before);

    let total = gw.state.registry.get(meter).expect("meter").total();
    assert_eq!(total, settled(&gw, meter), "no reservation is left behind");
}

#[tokio::test]
async fn failures_release_and_cut_streams_charge_the_reservation() {
    let failing = mock(MockOptions {
        fail_first: 1,
        fail_status: 500,
        ..MockOptions::default()
    });
    let gw = governed(
        &failing,
        "",
        "  virtual_keys:\n    - {id: vk-f, name: F, value: sk-bf-f, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    let meter = "vk:vk-f:budget:0";
    assert_eq!(chat_vk(&gw, "sk-bf-f", "openai/gpt-4o").await.status(), 500);
    let m = gw.state.registry.get(meter).expect("meter");
    assert_eq!((m.settled(), m.total()), (0, 0), "an error reply costs nothing");

    let cut = mock(MockOptions {
        chunks: 5,
        abort_after_chunks: Some(2),
        ..MockOptions::default()
    });
    let gw = governed(
        &cut,
        "",
        "  virtual_keys:\n    - {id: vk-f, name: F, value: sk-bf-f, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    let stream = br#"{"model":"openai/gpt-4o","stream":true,"max_tokens":6,"messages":[]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-f")],
        stream,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert!(reply.text().contains("\"error\""), "the cut is reported in the stream");
    let m = gw.state.registry.get(meter).expect("meter");
    assert_eq!(
        (m.settled(), m.total()),
        (REQUEST_MICROS, REQUEST_MICROS),
        "a stream cut before its usage is charged its reservation"
    );
}

#[tokio::test]
async fn storm_of_concurrent_requests_never_overspends() {
    // Every request stays in flight for 300 ms, so all 200 are admitted or refused while the
    // others still hold their reservations.
    let upstream = mock(MockOptions {
        latency: Duration::from_millis(300),
        record: false,
        ..MockOptions::default()
    });
    let budget_micros = 50 * REQUEST_MICROS;
    let gw = governed(
        &upstream,
        "",
        &format!(
            "  virtual_keys:\n    - {{id: vk-storm, name: Storm, value: sk-bf-storm, budgets: [{{max_limit: {}, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
            budget_micros as f64 / 1e6
        ),
    );
    let addr = gw.addr;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(async move {
                let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"go"}]}"#;
                send(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("x-bf-vk", "sk-bf-storm")],
                    body,
                )
                .await
                .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((ok, refused), (50, 150), "{statuses:?}");
    assert_eq!(upstream.state.request_count(), 50);
    let meter = gw.state.registry.get("vk:vk-storm:budget:0").expect("meter");
    assert!(meter.settled() <= budget_micros);
    assert_eq!((meter.settled(), meter.total()), (budget_micros, budget_micros));
}

#[tokio::test]
async fn unpriced_models_cost_nothing_but_are_counted() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - {id: vk-x, name: X, value: sk-bf-x, budgets: [{max_limit: 1, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    assert_eq!(chat_vk(&gw, "sk-bf-x", "openai/house-model").await.status(), 200);
    assert_eq!(settled(&gw, "vk:vk-x:budget:0"), 0);
    let unpriced = "asbru_unpriced_requests_total{model=\"other\",provider=\"openai\"} 1";
    let metrics = metrics_when(gw.addr, |t| t.contains(unpriced)).await;
    assert!(metrics.contains(unpriced), "{metrics}");
    // A priced model shows up in the cost metric, never a key.
    assert_eq!(chat_vk(&gw, "sk-bf-x", "openai/gpt-4o").await.status(), 200);
    let text = metrics_when(gw.addr, |t| {
        t.contains("asbru_cost_micro_dollars_total{model=\"gpt-4o\",provider=\"openai\"} 600")
    })
    .await;
    assert!(
        text.contains("asbru_cost_micro_dollars_total{model=\"gpt-4o\",provider=\"openai\"} 600"),
        "{text}"
    );
    assert!(!text.contains("sk-bf-x") && !text.contains("sk-one"));
}

#[tokio::test]
async fn a_bare_model_is_routed_by_the_keys_weights_and_key_ids_pin_provider_keys() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  virtual_keys:\n    - {id: vk-r, name: R, value: sk-bf-r, provider_configs: [{provider: openai, weight: 1, allowed_models: [gpt-4o], key_ids: [k2]}, {provider: anthropic, allowed_models: [gpt-4o]}]}\n",
    );
    for _ in 0..5 {
        let reply = chat_vk(&gw, "sk-bf-r", "gpt-4o").await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
    }
    let keys: Vec<String> = upstream
        .state
        .recorded()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        keys,
        vec!["Bearer sk-two".to_string(); 5],
        "only the pinned key is used"
    );
}

fn crash_config(dir: &std::path::Path, upstream: &str) -> String {
    format!(
        "server: {{data_dir: \"{}\", grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 2}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{upstream}\"}}\ngovernance:\n{PRICES}  virtual_keys:\n    - {{id: vk-c, name: C, value: sk-bf-crash, budgets: [{{max_limit: 0.003, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        dir.display()
    )
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(config: &std::path::Path) -> (KillOnDrop, std::net::SocketAddr) {
    let addr = dead_address();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn asbru");
    let child = KillOnDrop(child);
    asbru::server::wait_ready(addr).expect("gateway ready");
    (child, addr)
}

async fn crash_chat(addr: std::net::SocketAddr) -> u16 {
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-crash")],
        body,
    )
    .await
    .status()
}

#[tokio::test]
async fn settled_usage_survives_a_crash() {
    use asbru_store::backend::ConfigStore;
    let upstream = default_mock();
    let dir = std::env::temp_dir().join(format!("asbru-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("asbru.yaml");
    std::fs::write(&config, crash_config(&dir, &upstream.base_url())).expect("write config");

    // The budget fits five requests. Spend three, let the flush run, then kill -9.
    let (mut first, addr) = start_binary(&config);
    for _ in 0..3 {
        assert_eq!(crash_chat(addr).await, 200);
    }
    let store = asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open store");
    let persisted = |store: &asbru_store::backend::sqlite::SqliteStore| {
        store
            .load_usage()
            .expect("usage")
            .into_iter()
            .find(|r| r.counter_id == "vk:vk-c:budget:0")
            .map(|r| r.value)
    };
    assert!(
        eventually(|| persisted(&store) == Some(3 * REQUEST_MICROS)),
        "usage flushed within the interval: {:?}",
        persisted(&store)
    );
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();

    // Restarted, it remembers the three: one more fits, then a graceful stop right after.
    let (mut second, addr) = start_binary(&config);
    assert_eq!(crash_chat(addr).await, 200);
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(stopped.success());
    let _ = second.0.wait();
    assert_eq!(
        persisted(&store),
        Some(4 * REQUEST_MICROS),
        "a graceful stop saves the last usage"
    );

    let (_third, addr) = start_binary(&config);
    assert_eq!(crash_chat(addr).await, 200);
    assert_eq!(
        crash_chat(addr).await,
        402,
        "the restarted gateway remembered the spend"
    );
    assert!(eventually(|| persisted(&store) == Some(5 * REQUEST_MICROS)));
    drop(_third);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The usage persisted in `dir`'s config store for the crash test's key.
fn persisted_spend(dir: &std::path::Path) -> Option<i64> {
    use asbru_store::backend::ConfigStore;
    let store = asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open store");
    store
        .load_usage()
        .expect("usage")
        .into_iter()
        .find(|r| r.counter_id == "vk:vk-c:budget:0")
        .map(|r| r.value)
}

/// `kill -9` right after replies, before any flush can run: the spend journal already holds
/// every settlement, and the next start adds it to the store.
#[tokio::test]
async fn kill_9_right_after_the_replies_loses_no_settled_spend() {
    let upstream = default_mock();
    let dir = temp_dir("kill9");
    let config = dir.join("asbru.yaml");
    std::fs::write(&config, crash_config(&dir, &upstream.base_url())).expect("write config");
    let (mut first, addr) = start_binary(&config);
    for _ in 0..3 {
        assert_eq!(crash_chat(addr).await, 200);
    }
    // No wait for the flush: killed at once.
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();
    let journaled: Vec<_> = std::fs::read_dir(dir.join("spend-journal"))
        .expect("journal dir")
        .filter_map(|e| e.ok())
        .collect();
    assert!(!journaled.is_empty(), "the killed process left its journal");

    let (_second, addr) = start_binary(&config);
    assert_eq!(
        persisted_spend(&dir),
        Some(3 * REQUEST_MICROS),
        "the stopped process's journal was added at start"
    );
    // The budget fits five: two more, then refused.
    assert_eq!(crash_chat(addr).await, 200);
    assert_eq!(crash_chat(addr).await, 200);
    assert_eq!(
        crash_chat(addr).await,
        402,
        "the restarted gateway counted all the spend"
    );
}

/// Two processes on one store (an upgrade overlap): each adds its own spend, neither
/// overwrites the other's.
#[tokio::test]
async fn two_processes_spend_adds_up_in_the_store() {
    let upstream = default_mock();
    let dir = temp_dir("two-procs");
    let config = dir.join("asbru.yaml");
    std::fs::write(&config, crash_config(&dir, &upstream.base_url())).expect("write config");
    let (mut a, addr_a) = start_binary(&config);
    let (mut b, addr_b) = start_binary(&config);
    assert_eq!(crash_chat(addr_a).await, 200);
    assert_eq!(crash_chat(addr_b).await, 200);
    assert_eq!(crash_chat(addr_a).await, 200);
    // Each process flushes every second; under a loaded test run that can take a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while persisted_spend(&dir) != Some(3 * REQUEST_MICROS) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        persisted_spend(&dir),
        Some(3 * REQUEST_MICROS),
        "both processes' spend is in the store"
    );
    for child in [&mut a, &mut b] {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status();
        let _ = child.0.wait();
    }
    assert_eq!(persisted_spend(&dir), Some(3 * REQUEST_MICROS));
}

#[tokio::test]
async fn keys_written_to_the_store_are_enforced_live_and_usage_survives_the_rebuild() {
    use asbru_config::governance::{Budget, VirtualKey, VirtualKeyProvider};
    let upstream = default_mock();
    let dir = std::env::temp_dir().join(format!("asbru-gov-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let yaml = format!(
        "server: {{data_dir: \"{}\"}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n{PRICES}  virtual_keys:\n    - {{id: vk-1, name: One, value: sk-bf-one, budgets: [{{max_limit: 1, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        dir.display(),
        upstream.base_url()
    );
    let config = asbru_config::load_str(&yaml, "store.yaml").expect("valid").config;
    let gw = asbru::server::spawn(&config).expect("start");
    assert_eq!(chat_vk(&gw, "sk-bf-one", "openai/gpt-4o").await.status(), 200);
    assert_eq!(chat_vk(&gw, "sk-bf-two", "openai/gpt-4o").await.status(), 401);
    let store = gw.state.store.clone().expect("a config store");
    let second = VirtualKey {
        id: "vk-2".into(),
        name: "Two".into(),
        value: "sk-bf-two".into(),
        budgets: vec![Budget {
            max_limit: 1.0,
            reset_duration: "1d".into(),
            ..Default::default()
        }],
        provider_configs: vec![VirtualKeyProvider {
            provider: "openai".into(),
            weight: Some(1.0),
            ..Default::default()
        }],
        ..Default::default()
    };
    // A price row synced into the store (a datasheet) prices a model the bundled table lacks.
    let price = asbru_config::governance::ModelPrice {
        provider: "openai".into(),
        model: "house-model".into(),
        input_cost_per_token: Some(0.0),
        output_cost_per_token: Some(0.0001),
        ..Default::default()
    };
    tokio::task::spawn_blocking(move || {
        store.transaction(&mut |tx| {
            tx.put(&second)?;
            tx.put(&price)
        })
    })
    .await
    .expect("join")
    .expect("write the key and the price");
    let mut status = 0;
    for _ in 0..100 {
        status = chat_vk(&gw, "sk-bf-two", "openai/gpt-4o").await.status();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the new key is served after the store sync");
    assert_eq!(
        settled(&gw, "vk:vk-1:budget:0"),
        REQUEST_MICROS,
        "the rebuild kept vk-1's usage"
    );
    assert_eq!(chat_vk(&gw, "sk-bf-two", "openai/house-model").await.status(), 200);
    assert_eq!(
        settled(&gw, "vk:vk-2:budget:0"),
        2 * REQUEST_MICROS,
        "the stored price was used"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_fallback_is_admitted_and_charged_on_its_own_caps_once() {
    let failing = mock(MockOptions {
        fail_rate: 1.0,
        fail_status: 500,
        ..MockOptions::default()
    });
    let fallback = default_mock();
    let base = failing.base_url();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{base}\"}}\n{}governance:\n{PRICES}  virtual_keys:\n    - id: vk-fb\n      name: FB\n      value: sk-bf-fb\n      budgets: [{{max_limit: 1, reset_duration: 1d}}]\n      provider_configs:\n        - {{provider: openai, weight: 1, budgets: [{{max_limit: 1, reset_duration: 1d}}]}}\n        - {{provider: groq, weight: 1, budgets: [{{max_limit: 1, reset_duration: 1d}}]}}\n",
        provider_yaml("groq", &fallback.base_url(), "")
    ));
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"fallbacks":["groq/llama"],"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-fb")],
        body,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("groq"));
    let meter = |id: &str| {
        let m = gw.state.registry.get(id).expect("meter");
        (m.settled(), m.total())
    };
    assert_eq!(
        meter("vk:vk-fb:provider:openai:budget:0"),
        (0, 0),
        "the failed primary costs nothing"
    );
    assert_eq!(
        meter("vk:vk-fb:provider:groq:budget:0"),
        (REQUEST_MICROS, REQUEST_MICROS)
    );
    assert_eq!(
        meter("vk:vk-fb:budget:0"),
        (REQUEST_MICROS, REQUEST_MICROS),
        "charged once"
    );
}

#[tokio::test]
async fn provider_and_model_caps_apply_without_a_virtual_key() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "",
        "  model_configs:\n    - {id: mc-4o, model_name: gpt-4o, provider: openai, budgets: [{max_limit: 0.0006, reset_duration: 1d}]}\n  providers:\n    - {name: anthropic, rate_limit: {request_max_limit: 1, request_reset_duration: 1h}}\n",
    );
    assert_eq!(chat(&gw, &[], "openai/gpt-4o").await.status(), 200);
    assert_refused(
        &chat(&gw, &[], "openai/gpt-4o").await,
        402,
        "budget_exceeded",
        "model config 'mc-4o' (gpt-4o) budget #1",
    );
    assert_eq!(chat(&gw, &[], "anthropic/claude-x").await.status(), 200);
    assert_refused(
        &chat(&gw, &[], "anthropic/claude-x").await,
        429,
        "request_limited",
        "provider 'anthropic' rate limit (inline)",
    );
}

/// A budget near its edge reserves a prompt's exact token count (OpenAI's tokenizer) instead of
/// its byte length: a 200-way storm on a budget that fits 50 requests spends the budget to the
/// last request with no overspend, and a sequential run on a budget that fits 5 admits all 5.
/// The mock bills 12 prompt and 6 completion tokens, which is exactly what this request counts
/// (12 prompt tokens; `max_tokens: 6`), at one micro-dollar a token.
#[tokio::test]
async fn near_the_edge_the_reservation_is_the_exact_prompt() {
    const TIGHT_PRICES: &str = "  pricing_overrides:\n    - {provider: openai, model: gpt-4o-mini, input_cost_per_token: 0.000001, output_cost_per_token: 0.000001}\n";
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n{TIGHT_PRICES}  virtual_keys:\n    - {{id: vk-storm, name: Storm, value: sk-bf-storm, budgets: [{{max_limit: 0.0009, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n    - {{id: vk-five, name: Five, value: sk-bf-five, budgets: [{{max_limit: 0.00009, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        upstream.base_url()
    ));
    let body = br#"{"model":"openai/gpt-4o-mini","max_tokens":6,"messages":[{"role":"user","content":"Say hello to everyone."}]}"#;
    let addr = gw.addr;
    let storm: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(async move {
                send(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("x-bf-vk", "sk-bf-storm")],
                    body,
                )
                .await
                .status()
            })
        })
        .collect();
    let mut admitted = 0;
    for task in storm {
        match task.await.expect("request") {
            200 => admitted += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let spent = settled(&gw, "vk:vk-storm:budget:0");
    assert!(spent <= 900, "no overspend: {spent} of 900 micro-dollars");
    assert!(
        spent * 10 >= 900 * 9,
        "the budget is spent to at least 90%: {spent} of 900 ({admitted} admitted)"
    );
    let mut sequential = Vec::new();
    for _ in 0..6 {
        sequential.push(
            send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-five")], body)
                .await
                .status(),
        );
    }
    assert_eq!(
        sequential,
        [200, 200, 200, 200, 200, 402],
        "a budget that fits five admits five"
    );
    assert_eq!(settled(&gw, "vk:vk-five:budget:0"), 90);
}

/// A gateway process that has not built the tokenizer's tables yet: the first request near a
/// budget's edge, which only its exact prompt count fits, waits (without holding a thread) for
/// the tables being built in the background, and is admitted, as it would be with them built.
/// (In-process test gateways build them up front; this one is a process of its own.)
#[tokio::test]
async fn the_first_request_near_the_edge_waits_for_the_tokenizer_instead_of_a_refusal() {
    let upstream = default_mock();
    let dir = temp_dir("tokenizer-cold");
    let config = dir.join("asbru.yaml");
    // 18 µ$ a request counted exactly (12 prompt and 6 completion tokens at 1 µ$), about 110
    // on the byte bound: 40 µ$ fits two exactly and none on the byte bound.
    std::fs::write(
        &config,
        format!(
            "server: {{data_dir: \"{}\"}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n  pricing_overrides:\n    - {{provider: openai, model: gpt-4o-mini, input_cost_per_token: 0.000001, output_cost_per_token: 0.000001}}\n  virtual_keys:\n    - {{id: vk-cold, name: Cold, value: sk-bf-cold, budgets: [{{max_limit: 0.00004, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
            dir.display(),
            upstream.base_url()
        ),
    )
    .expect("write config");
    let (_gateway, addr) = start_binary(&config);
    let body = br#"{"model":"openai/gpt-4o-mini","max_tokens":6,"messages":[{"role":"user","content":"Say hello to everyone."}]}"#;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-cold")], body)
                .await
                .status(),
        );
    }
    assert_eq!(statuses, [200, 200, 402], "counted exactly from the first request");
    assert_eq!(upstream.state.request_count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A budgeted request that sets no output limit is sent upstream with the limit its reservation
/// assumed (`client.default_max_output_tokens`), so the provider cannot bill past it; a request
/// that sets one, or one no budget counts, goes as sent.
#[tokio::test]
async fn the_reserved_output_limit_is_sent_upstream() {
    let upstream = default_mock();
    let gw = governed(
        &upstream,
        "client: {default_max_output_tokens: 512}\n",
        "  virtual_keys:\n    - {id: vk-cap, name: Cap, value: sk-bf-cap, budgets: [{max_limit: 10, reset_duration: 1d}], provider_configs: [{provider: openai, weight: 1}]}\n    - {id: vk-free, name: Free, value: sk-bf-free, provider_configs: [{provider: openai, weight: 1}]}\n",
    );
    let send_body = |vk: &'static str, body: &'static str| {
        let addr = gw.addr;
        async move {
            send(
                addr,
                "POST",
                "/v1/chat/completions",
                &[("x-bf-vk", vk)],
                body.as_bytes(),
            )
            .await
        }
    };
    let last_body = || -> serde_json::Value {
        let recorded = upstream.state.recorded();
        serde_json::from_slice(&recorded.last().expect("a request went upstream").body).expect("json")
    };
    let open = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(send_body("sk-bf-cap", open).await.status(), 200);
    assert_eq!(last_body()["max_completion_tokens"], 512, "{}", last_body());
    let limited = r#"{"model":"openai/gpt-4o","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(send_body("sk-bf-cap", limited).await.status(), 200);
    let sent = last_body();
    assert_eq!(sent["max_tokens"], 7);
    assert!(sent.get("max_completion_tokens").is_none(), "{sent}");
    assert_eq!(send_body("sk-bf-free", open).await.status(), 200);
    assert!(last_body().get("max_completion_tokens").is_none(), "no budget, no cap");
}

#[tokio::test]
async fn the_governance_plugins_is_vk_mandatory_is_enforced() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}plugins:\n  - {{name: governance, enabled: true, config: {{is_vk_mandatory: true}}}}\ngovernance:\n  virtual_keys: [{{id: vk1, name: k, value: sk-bf-mandatory-0001, allow_all_providers: true}}]\n",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let body = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let without = send(gw.addr, "POST", "/v1/chat/completions", &[], body.as_bytes()).await;
    assert_eq!(without.status(), 401, "{}", without.text());
    let with = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-mandatory-0001")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(with.status(), 200, "{}", with.text());
    // A disabled entry does not turn it on.
    let gw = gateway(&format!(
        "providers:\n{}plugins:\n  - {{name: governance, enabled: false, config: {{is_vk_mandatory: true}}}}\n",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    assert_eq!(
        send(gw.addr, "POST", "/v1/chat/completions", &[], body.as_bytes())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn required_headers_are_enforced_from_client_and_the_governance_plugin() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "client: {{required_headers: [X-Team]}}\nproviders:\n{}plugins:\n  - {{name: governance, config: {{required_headers: [x-env]}}}}\n",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let missing = send(gw.addr, "POST", "/v1/chat/completions", &[("x-team", "ml")], body).await;
    assert_eq!(missing.status(), 400, "{}", missing.text());
    assert!(
        missing.text().contains("missing required header: x-env"),
        "{}",
        missing.text()
    );
    let both = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-team", "ml"), ("x-env", "prod")],
        body,
    )
    .await;
    assert_eq!(both.status(), 200, "{}", both.text());
    assert_eq!(
        upstream.state.request_count(),
        1,
        "the refused request never went upstream"
    );
}
