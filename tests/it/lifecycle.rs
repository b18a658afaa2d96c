//! The request lifecycle: optional filters placed by `plugins`, built-ins that cannot be
//! removed, completion hooks run from Pingora's `logging` phase, and the provider health window
//! the forwarder keeps.

use asbru_bench::mock::MockOptions;

use crate::support::*;

fn with_plugins(upstream: &str, plugins: &str, governance: &str) -> String {
    format!(
        "plugins:\n{plugins}providers:\n  openai:\n    keys: [{{name: k1, value: sk-one}}]\n    network_config: {{base_url: \"{upstream}\", max_retries: 1, retry_backoff_initial: 1, retry_backoff_max: 2}}\n{governance}"
    )
}

const CHAT: &str = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn an_optional_filter_adds_its_header_to_every_reply() {
    let upstream = default_mock();
    let plugins = "  - {name: response_headers, placement: pre_builtin, config: {headers: {x-served-by: edge-1}}}\n";
    let gw = gateway(&with_plugins(&upstream.base_url(), plugins, ""));
    let ok = post(&gw, "/v1/chat/completions", CHAT).await;
    assert_eq!(ok.status(), 200, "{}", ok.text());
    assert_eq!(ok.header("x-served-by").as_deref(), Some("edge-1"));
    let streamed = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed.header("x-served-by").as_deref(), Some("edge-1"));
    // A refusal written by the gateway carries it too.
    let refused = post(&gw, "/v1/chat/completions", r#"{"model":"groq/x","messages":[]}"#).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.header("x-served-by").as_deref(), Some("edge-1"));
}

#[tokio::test]
async fn without_the_plugin_no_header_is_added() {
    let upstream = default_mock();
    let gw = gateway(&with_plugins(&upstream.base_url(), "  - {name: logging}\n", ""));
    let ok = post(&gw, "/v1/chat/completions", CHAT).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.header("x-served-by"), None);
}

#[tokio::test]
async fn a_plugins_list_never_turns_governance_off() {
    let upstream = default_mock();
    let governance =
        "governance:\n  virtual_keys:\n    - {id: vk-off, name: Off, value: sk-bf-off, is_active: false}\n";
    let plugins = "  - {name: governance, enabled: false}\n  - {name: semantic_cache, enabled: true}\n";
    let gw = gateway(&with_plugins(&upstream.base_url(), plugins, governance));
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-off")],
        CHAT.as_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 403, "{}", reply.text());
    assert_eq!(reply.json()["type"], "virtual_key_blocked");
    assert_eq!(upstream.state.request_count(), 0);
    // The completion hook ran from the logging phase and counted the refusal.
    let metrics = metrics_when(gw.addr, |t| {
        t.contains("asbru_governance_rejections_total{decision=\"virtual_key_blocked\"} 1")
    })
    .await;
    assert!(
        metrics.contains("asbru_governance_rejections_total{decision=\"virtual_key_blocked\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_plugin_with_a_bad_config_stops_the_start_with_its_reason() {
    let yaml = "plugins:\n  - {name: response_headers, config: {headers: {\"bad header\": x}}}\n";
    let mut config = asbru_config::load_str(yaml, "t.yaml").expect("valid").config;
    config.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
    let err = asbru::server::spawn(&config).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("response_headers") && text.contains("not a header name"),
        "{text}"
    );
}

#[tokio::test]
async fn the_forwarder_records_each_providers_health() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 503,
        ..MockOptions::default()
    });
    let gw = gateway(&with_plugins(&upstream.base_url(), "  []\n", ""));
    let reply = post(&gw, "/v1/chat/completions", CHAT).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let live = gw.state.live.load();
    let health = live.provider_health("openai", asbru::state::unix_now());
    assert_eq!((health.successes, health.failures), (1, 1));
}
