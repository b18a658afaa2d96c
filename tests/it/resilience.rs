//! Keys, retries and fallbacks.

use std::collections::HashMap;
use std::time::Duration;

use asbru_bench::mock::MockOptions;

use crate::support::*;

const FAST_RETRIES: &str = ", max_retries: 2, retry_backoff_initial: 5, retry_backoff_max: 20";

#[tokio::test]
async fn keys_are_chosen_by_weight() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n  openai:\n    keys:\n      - {{name: heavy, value: sk-heavy, weight: 3}}\n      - {{name: light, value: sk-light, weight: 1}}\n      - {{name: other-model, value: sk-other, weight: 100, models: [not-this-one]}}\n    network_config: {{base_url: \"{}\"}}\n",
        upstream.base_url()
    ));
    let total = 400;
    for _ in 0..total {
        let reply = post(
            &gw,
            "/v1/chat/completions",
            r#"{"model":"openai/gpt-4o","messages":[]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
    }
    let mut counts: HashMap<String, u32> = HashMap::new();
    for seen in upstream.state.recorded() {
        *counts
            .entry(seen.header("authorization").unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        counts.get("Bearer sk-other"),
        None,
        "a key that does not serve the model was used"
    );
    let heavy = f64::from(counts.get("Bearer sk-heavy").copied().unwrap_or(0)) / f64::from(total);
    // 3:1 weights: expect 0.75; the bound is over 6 standard deviations wide (sd ~ 0.022).
    assert!(
        (0.62..=0.88).contains(&heavy),
        "heavy key share {heavy}, counts {counts:?}"
    );
}

#[tokio::test]
async fn retries_a_503_then_succeeds() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 503,
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), FAST_RETRIES)
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(upstream.state.request_count(), 2);
}

#[tokio::test]
async fn no_retry_without_max_retries_and_none_on_a_400() {
    let upstream = mock(MockOptions {
        fail_first: 1,
        fail_status: 503,
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
    assert_eq!(reply.status(), 503);
    assert_eq!(upstream.state.request_count(), 1);

    let bad_request = mock(MockOptions {
        fail_first: 10,
        fail_status: 400,
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &bad_request.base_url(), FAST_RETRIES)
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 400);
    assert_eq!(bad_request.state.request_count(), 1, "a 400 must not be retried");
}

#[tokio::test]
async fn falls_back_after_the_primary_exhausts_its_retries() {
    let primary = mock(MockOptions {
        fail_first: u64::MAX,
        fail_status: 503,
        ..MockOptions::default()
    });
    let secondary = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &primary.base_url(), FAST_RETRIES),
        provider_yaml("groq", &secondary.base_url(), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[],"fallbacks":["nobody/x","groq/llama-3.1-8b"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(primary.state.request_count(), 3, "1 try + 2 retries");
    assert_eq!(secondary.state.request_count(), 1);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("groq"));
    assert_eq!(reply.header("x-bifrost-fallback-index").as_deref(), Some("1"));
    assert_eq!(reply.json()["model"], "llama-3.1-8b");
    assert_eq!(
        String::from_utf8_lossy(&secondary.state.recorded()[0].body),
        r#"{"model":"llama-3.1-8b","messages":[]}"#
    );
}

#[tokio::test]
async fn when_everything_fails_the_primary_error_is_returned() {
    let primary = mock(MockOptions {
        fail_first: u64::MAX,
        fail_status: 503,
        ..MockOptions::default()
    });
    let secondary = mock(MockOptions {
        fail_first: u64::MAX,
        fail_status: 500,
        ..MockOptions::default()
    });
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &primary.base_url(), ""),
        provider_yaml("groq", &secondary.base_url(), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","messages":[],"fallbacks":["groq/x"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.json()["error"]["message"], "mock provider failure");
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("openai"));
    assert_eq!(secondary.state.request_count(), 1);
}

#[tokio::test]
async fn no_fallback_once_the_stream_started() {
    let primary = mock(MockOptions {
        chunks: 5,
        abort_after_chunks: Some(2),
        ..MockOptions::default()
    });
    let secondary = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &primary.base_url(), FAST_RETRIES),
        provider_yaml("groq", &secondary.base_url(), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","stream":true,"messages":[],"fallbacks":["groq/x"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);
    let events = sse_data(&reply.text());
    assert!(events.iter().any(|e| e.contains("\"Hello\"")), "{events:?}");
    let last: serde_json::Value = serde_json::from_str(events.last().expect("events")).expect("json");
    assert_eq!(
        last["error"]["type"], "api_error",
        "stream ends with an error event: {events:?}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert_eq!(primary.state.request_count(), 1, "no retry after bytes went out");
    assert_eq!(secondary.state.request_count(), 0, "no fallback after bytes went out");
}

#[tokio::test]
async fn stream_falls_back_before_it_starts() {
    let primary = mock(MockOptions {
        fail_first: u64::MAX,
        fail_status: 429,
        ..MockOptions::default()
    });
    let secondary = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml("openai", &primary.base_url(), ""),
        provider_yaml("groq", &secondary.base_url(), "")
    ));
    let reply = post(
        &gw,
        "/v1/chat/completions",
        r#"{"model":"openai/gpt-4o","stream":true,"messages":[],"fallbacks":["groq/x"]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("x-bifrost-provider").as_deref(), Some("groq"));
    assert!(reply.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn dead_primary_falls_back_and_pooled_connections_are_reused() {
    let secondary = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}{}",
        provider_yaml(
            "openai",
            &format!("http://{}", dead_address()),
            ", max_retries: 1, retry_backoff_initial: 1, retry_backoff_max: 2"
        ),
        provider_yaml("groq", &secondary.base_url(), "")
    ));
    for _ in 0..3 {
        let reply = post(
            &gw,
            "/v1/chat/completions",
            r#"{"model":"openai/gpt-4o","messages":[],"fallbacks":["groq/x"]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(secondary.state.request_count(), 3);
}
