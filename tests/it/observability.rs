//! The request log end to end: rows written for every kind of request, content controls, the
//! query API, retention, drops, and the log database going away.

use std::net::SocketAddr;

const REPLY: &str = "Hello from the asbru mock provider.";
use serde_json::Value;

use crate::support::*;

/// A gateway logging to its own SQLite file (returned), with `extra` YAML appended.
fn logged(upstream_url: &str, extra: &str) -> (asbru::server::RunningGateway, std::path::PathBuf) {
    let dir = temp_dir("logs");
    let path = dir.join("logs.db");
    let gw = gateway(&format!(
        "providers:\n{}\nlogs_store: {{enabled: true, type: sqlite, config: {{path: {}}}}}\n{extra}",
        provider_yaml("openai", upstream_url, ""),
        path.display()
    ));
    (gw, path)
}

async fn api(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    send(
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// Waits until `/api/logs?query` lists `n` rows, and returns the reply.
async fn rows(addr: SocketAddr, query: &str, n: usize) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let reply = api(addr, "GET", &format!("/api/logs?{query}"), "").await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        last = reply.json();
        if last["logs"].as_array().map_or(0, Vec::len) >= n {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("expected {n} log rows for {query}, got {last}");
}

#[tokio::test]
async fn rows_for_success_error_stream_fallback_and_refusal() {
    let upstream = default_mock();
    let dead = dead_address();
    let dir = temp_dir("logs");
    let path = dir.join("logs.db");
    let gw = gateway(&format!(
        "providers:\n{}{}\nlogs_store: {{enabled: true, config: {{path: {}}}}}\nclient: {{logging_headers: [x-team-tag]}}\ngovernance:\n  virtual_keys:\n    - {{id: vk-a, name: Alpha, value: sk-bf-alpha, provider_configs: [{{provider: openai, weight: 1}}, {{provider: down, weight: 0}}]}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("down", &format!("http://{dead}"), ""),
        path.display()
    ));
    let addr = gw.addr;
    let vk = [
        ("x-bf-vk", "sk-bf-alpha"),
        ("x-team-tag", "blue"),
        ("x-request-id", "req-plain"),
    ];
    let plain = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &vk,
        br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"tell me about otters"}]}"#,
    )
    .await;
    assert_eq!(plain.status(), 200, "{}", plain.text());
    let stream = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "req-stream")],
        br#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#,
    )
    .await;
    assert_eq!(stream.status(), 200);
    let translated = send(
        addr,
        "POST",
        "/anthropic/v1/messages",
        &[("x-request-id", "req-anthropic")],
        br#"{"model":"openai/gpt-4o-mini","max_tokens":20,"stream":true,"system":"be kind","messages":[{"role":"user","content":"hello claude"}]}"#,
    )
    .await;
    assert_eq!(translated.status(), 200, "{}", translated.text());
    let fallback = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "req-fallback")],
        br#"{"model":"down/gpt-4o-mini","fallbacks":["openai/gpt-4o-mini"],"messages":[{"role":"user","content":"fall back"}]}"#,
    )
    .await;
    assert_eq!(fallback.status(), 200, "{}", fallback.text());
    let failed = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "req-failed")],
        br#"{"model":"down/gpt-4o-mini","messages":[{"role":"user","content":"nobody home"}]}"#,
    )
    .await;
    assert!(failed.status() >= 500, "{}", failed.text());
    let refused = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-unknown"), ("x-request-id", "req-refused")],
        br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"let me in"}]}"#,
    )
    .await;
    assert!(refused.status() >= 400 && refused.status() < 500, "{}", refused.text());

    let all = rows(addr, "limit=100", 6).await;
    assert_eq!(all["pagination"]["total_count"], 6, "{all}");
    let row = |id: &str| -> Value {
        all["logs"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no row {id} in {all}"))
    };
    let plain = row("req-plain");
    assert_eq!(plain["status"], "success");
    assert_eq!(plain["object"], "chat_completion");
    assert_eq!(plain["provider"], "openai");
    assert_eq!(plain["model"], "gpt-4o-mini");
    assert_eq!(plain["requested_model"], "openai/gpt-4o-mini");
    assert_eq!(plain["virtual_key_id"], "vk-a");
    assert_eq!(plain["virtual_key_name"], "Alpha");
    assert_eq!(plain["token_usage"]["prompt_tokens"], 12);
    assert_eq!(plain["token_usage"]["total_tokens"], 18);
    assert_eq!(plain["stream"], false);
    assert!(plain["latency"].as_f64().is_some_and(|l| l > 0.0));
    assert_eq!(plain["input_history"][0]["content"], "tell me about otters");
    assert_eq!(plain["output_message"]["content"], REPLY);
    assert_eq!(plain["stop_reason"], "stop");
    assert_eq!(plain["metadata"]["x-team-tag"], "blue");
    assert_eq!(
        plain["metadata"]["client_ip"], "127.0.0.1",
        "the client's address is logged"
    );
    assert!(
        plain["cost"].as_f64().is_some_and(|c| c > 0.0),
        "gpt-4o-mini is priced: {plain}"
    );

    let stream = row("req-stream");
    assert_eq!(stream["object"], "chat_completion_stream");
    assert_eq!(stream["stream"], true);
    assert!(stream["time_to_first_token"].as_f64().is_some_and(|t| t > 0.0));
    assert!(
        !stream["output_message"]["content"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "the stream folds into one message: {stream}"
    );

    let translated = row("req-anthropic");
    assert_eq!(translated["status"], "success");
    assert_eq!(
        translated["input_history"][0],
        serde_json::json!({"role": "system", "content": "be kind"})
    );
    assert!(
        !translated["output_message"]["content"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{translated}"
    );

    let fallback = row("req-fallback");
    assert_eq!(fallback["fallback_index"], 1);
    assert_eq!(fallback["provider"], "openai");
    assert_eq!(fallback["status"], "success");

    let failed = row("req-failed");
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["provider"], "down");
    assert!(
        failed["error_details"]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{failed}"
    );

    let refused = row("req-refused");
    assert_eq!(refused["status"], "error");
    assert!(refused["status_code"].as_i64().is_some_and(|s| (400..500).contains(&s)));

    // The single-row route, and a missing one.
    let one = api(addr, "GET", "/api/logs/req-plain", "").await;
    assert_eq!(one.status(), 200);
    assert_eq!(one.json()["id"], "req-plain");
    let missing = api(addr, "GET", "/api/logs/nope", "").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json()["error"]["message"], "log not found");
    // No virtual key value anywhere in the log database.
    drop(gw);
    let bytes = std::fs::read(&path).expect("log db");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("sk-bf-alpha") && !text.contains("sk-bf-unknown"),
        "no virtual key in the log file"
    );
}

#[tokio::test]
async fn content_logging_off_globally_per_key_and_per_request() {
    let upstream = default_mock();
    for (client, vk_flag, header) in [
        ("disable_content_logging: true", "", None),
        (
            "disable_content_logging: false",
            ", disable_content_logging: true",
            None,
        ),
        (
            "allow_per_request_content_storage_override: true",
            "",
            Some(("x-bf-disable-content-logging", "true")),
        ),
    ] {
        let (gw, path) = logged(
            &upstream.base_url(),
            &format!(
                "client: {{{client}}}\ngovernance:\n  virtual_keys:\n    - {{id: vk-q, name: Quiet, value: sk-bf-quiet{vk_flag}, provider_configs: [{{provider: openai, weight: 1}}]}}\n"
            ),
        );
        let mut headers = vec![("x-bf-vk", "sk-bf-quiet")];
        headers.extend(header);
        let reply = send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &headers,
            br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"a secret prompt about pelicans"}]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
        let listed = rows(gw.addr, "", 1).await;
        let row = &listed["logs"][0];
        assert!(
            row["input_history"].is_null() && row["output_message"].is_null(),
            "{client}: {row}"
        );
        assert_eq!(row["token_usage"]["total_tokens"], 18, "{client}: metadata kept");
        drop(gw);
        let bytes = std::fs::read(&path).expect("db");
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for file in [bytes, wal] {
            let text = String::from_utf8_lossy(&file);
            assert!(!text.contains("pelicans"), "{client}: prompt text in the database file");
            assert!(
                !text.contains("asbru mock provider"),
                "{client}: completion text in the database file"
            );
        }
    }
}

#[tokio::test]
async fn query_api_filters_pages_sorts_stats_and_histograms() {
    let upstream = default_mock();
    let (gw, _path) = logged(&upstream.base_url(), "");
    let addr = gw.addr;
    for i in 0..7 {
        let model = if i % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" };
        let body = format!(
            r#"{{"model":"openai/{model}","messages":[{{"role":"user","content":"item {i} about walruses"}}]}}"#
        );
        let id = format!("q-{i}");
        let reply = send(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("x-request-id", id.as_str())],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status(), 200);
    }
    let bad = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "q-bad")],
        br#"{"model":"nowhere/x","messages":[]}"#,
    )
    .await;
    assert!(bad.status() >= 400);
    rows(addr, "limit=100", 8).await;

    let page = rows(addr, "models=gpt-4o&limit=2&offset=0&sort_by=timestamp&order=asc", 2).await;
    assert_eq!(page["pagination"]["total_count"], 4);
    assert_eq!(page["pagination"]["limit"], 2);
    assert_eq!(page["logs"][0]["id"], "q-0");
    assert_eq!(page["logs"][1]["id"], "q-2");
    assert_eq!(page["stats"]["total_requests"], 4);
    assert_eq!(page["stats"]["success_rate"], 100.0);
    let second = rows(addr, "models=gpt-4o&limit=2&offset=2&order=asc", 2).await;
    assert_eq!(second["logs"][0]["id"], "q-4");
    let errors = rows(addr, "status=error", 1).await;
    assert_eq!(errors["pagination"]["total_count"], 1);
    assert_eq!(errors["logs"][0]["id"], "q-bad");
    let search = rows(addr, "content_search=item%203", 1).await;
    assert_eq!(search["pagination"]["total_count"], 1);
    assert_eq!(search["logs"][0]["id"], "q-3");
    let none = api(addr, "GET", "/api/logs?providers=anthropic", "").await.json();
    assert_eq!(none["pagination"]["total_count"], 0);
    assert_eq!(none["has_logs"], true);
    let bad_limit = api(addr, "GET", "/api/logs?limit=5000", "").await;
    assert_eq!(bad_limit.status(), 400);
    assert_eq!(bad_limit.json()["error"]["message"], "limit cannot exceed 1000");

    let stats = api(addr, "GET", "/api/logs/stats", "").await.json();
    assert_eq!(stats["total_requests"], 8);
    assert_eq!(stats["total_tokens"], 7 * 18);
    assert!((stats["success_rate"].as_f64().expect("rate") - 87.5).abs() < 1e-9);
    let now = chrono::Utc::now();
    let range = format!(
        "start_time={}&end_time={}",
        (now - chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
    .replace('+', "%2B");
    let hist = api(addr, "GET", &format!("/api/logs/histogram?{range}"), "")
        .await
        .json();
    assert_eq!(hist["bucket_size_seconds"], 60);
    let buckets = hist["buckets"].as_array().expect("buckets");
    assert!(buckets.len() >= 30, "empty buckets are filled: {}", buckets.len());
    assert_eq!(buckets.iter().map(|b| b["count"].as_i64().unwrap_or(0)).sum::<i64>(), 8);
    assert_eq!(buckets.iter().map(|b| b["error"].as_i64().unwrap_or(0)).sum::<i64>(), 1);
    let tokens = api(addr, "GET", &format!("/api/logs/histogram/tokens?{range}"), "")
        .await
        .json();
    assert_eq!(
        tokens["buckets"]
            .as_array()
            .expect("b")
            .iter()
            .map(|b| b["total_tokens"].as_i64().unwrap_or(0))
            .sum::<i64>(),
        126
    );
    let models = api(addr, "GET", "/api/logs/histogram/models", "").await.json();
    assert_eq!(models["models"], serde_json::json!(["gpt-4o", "gpt-4o-mini", "x"]));
    let cost = api(addr, "GET", "/api/logs/histogram/cost", "").await.json();
    assert!(
        cost["buckets"][0]["total_cost"].as_f64().is_some_and(|c| c > 0.0),
        "{cost}"
    );
    let latency = api(addr, "GET", "/api/logs/histogram/latency", "").await.json();
    let b = &latency["buckets"][0];
    assert!(
        b["p99_latency"].as_f64() >= b["p90_latency"].as_f64() && b["total_requests"] == 8,
        "{latency}"
    );
    let data = api(addr, "GET", "/api/logs/filterdata", "").await.json();
    assert_eq!(data["providers"], serde_json::json!(["nowhere", "openai"]), "{data}");
    let dropped = api(addr, "GET", "/api/logs/dropped", "").await.json();
    assert_eq!(dropped["dropped_requests"], 0);

    let deleted = api(addr, "DELETE", "/api/logs", r#"{"ids":["q-0","q-1"]}"#).await;
    assert_eq!(deleted.status(), 200, "{}", deleted.text());
    assert_eq!(deleted.json()["deleted"], 2);
    let by_filter = api(addr, "DELETE", "/api/logs?status=error", "").await;
    assert_eq!(by_filter.json()["deleted"], 1);
    let nothing = api(addr, "DELETE", "/api/logs", "").await;
    assert_eq!(nothing.status(), 400, "deleting everything needs a filter");
    assert_eq!(
        api(addr, "GET", "/api/logs/stats", "").await.json()["total_requests"],
        5
    );
}

#[tokio::test]
async fn retention_deletes_old_rows_at_start() {
    use asbru_store::logs::{LogRow, LogStore, SqliteLogStore};
    let upstream = default_mock();
    let dir = temp_dir("retention");
    let path = dir.join("logs.db");
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    {
        let store = SqliteLogStore::open(&path).expect("store");
        let row = |id: &str, age_days: i64| LogRow {
            id: id.into(),
            timestamp_ms: now - age_days * day,
            object_type: "chat_completion".into(),
            status: "success".into(),
            input_history: Some("[\"old words\"]".into()),
            content_summary: Some("old words".into()),
            ..Default::default()
        };
        store
            .insert(&[row("ancient", 40), row("middle", 10), row("fresh", 1)])
            .expect("insert");
    }
    let gw = gateway(&format!(
        "providers:\n{}\nlogs_store: {{enabled: true, config: {{path: {}}}, retention_days: 30, content_retention_days: 7}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        path.display()
    ));
    let mut listed = Value::Null;
    for _ in 0..200 {
        listed = api(gw.addr, "GET", "/api/logs?order=asc", "").await.json();
        if listed["pagination"]["total_count"] == 2 && listed["logs"][0]["input_history"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        listed["pagination"]["total_count"], 2,
        "the 40-day-old row is gone: {listed}"
    );
    assert_eq!(listed["logs"][0]["id"], "middle");
    assert!(
        listed["logs"][0]["input_history"].is_null(),
        "content older than 7 days is blanked"
    );
    assert_eq!(
        listed["logs"][1]["input_history"][0], "old words",
        "fresh content is kept"
    );
}

#[tokio::test]
async fn an_unwritable_log_database_never_fails_a_request() {
    let upstream = default_mock();
    // A path under a regular file can never be created.
    let dir = temp_dir("unwritable");
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("file");
    let gw = gateway(&format!(
        "providers:\n{}\nlogs_store: {{enabled: true, config: {{path: {}}}}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        blocker.join("logs.db").display()
    ));
    for _ in 0..5 {
        let reply = post(
            &gw,
            "/v1/chat/completions",
            r#"{"model":"openai/gpt-4o-mini","messages":[]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
    }
    let mut dropped = Value::Null;
    for _ in 0..200 {
        dropped = api(gw.addr, "GET", "/api/logs/dropped", "").await.json();
        if dropped["dropped_requests"] == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(dropped["dropped_requests"], 5, "{dropped}");
    let listed = api(gw.addr, "GET", "/api/logs", "").await;
    assert_eq!(listed.status(), 503, "{}", listed.text());
    let metrics = send(gw.addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("asbru_log_records_dropped_total 5"), "{metrics}");
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    use asbru_filters::logging::{LogRecord, LogSink};
    let dir = temp_dir("queue");
    let config = asbru_config::load_str(
        &format!(
            "logs_store: {{config: {{path: {}}}, queue_size: 2}}\n",
            dir.join("logs.db").display()
        ),
        "q.yaml",
    )
    .expect("config")
    .config;
    let metrics = std::sync::Arc::new(asbru_filters::telemetry::Metrics::new());
    let log = asbru::request_log::RequestLog::open(&config, metrics.clone())
        .expect("open")
        .expect("logging on");
    let started = std::time::Instant::now();
    for i in 0..5 {
        log.submit(LogRecord {
            id: format!("r{i}"),
            ..Default::default()
        });
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "submitting never waits"
    );
    assert_eq!(log.dropped(), 3);
    assert_eq!(log.queued(), 2);
    assert_eq!(metrics.logs_dropped.get(), 3);
    // What was queued is written by a final drain (as on shutdown).
    log.drain_blocking();
    assert_eq!(log.queued(), 0);
    assert!(log.store.get("r0").expect("read").is_some());
    assert!(log.store.get("r4").expect("read").is_none());
}

#[test]
fn postgres_as_the_log_store() {
    let Some(url) = postgres_url("logs") else {
        return;
    };
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}\nlogs_store: {{enabled: true, type: postgres, config: {{url: \"{url}\"}}}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    runtime.block_on(async {
        let reply = send(
            gw.addr,
            "POST",
            "/v1/chat/completions",
            &[("x-request-id", "pg-row")],
            br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"postgres otters"}]}"#,
        )
        .await;
        assert_eq!(reply.status(), 200);
        let listed = rows(gw.addr, "content_search=otters", 1).await;
        assert_eq!(listed["logs"][0]["id"], "pg-row");
        assert_eq!(listed["logs"][0]["token_usage"]["total_tokens"], 18);
    });
    drop(gw);
}

/// Bifrost's telemetry plugin's metric names (plugins/telemetry), as dashboards query them.
const BIFROST_METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "bifrost_upstream_requests_total",
    "bifrost_upstream_latency_seconds",
    "bifrost_success_requests_total",
    "bifrost_error_requests_total",
    "bifrost_input_tokens_total",
    "bifrost_output_tokens_total",
    "bifrost_cache_read_input_tokens_total",
    "bifrost_cost_total",
    "bifrost_stream_first_token_latency_seconds",
    "bifrost_stream_inter_token_latency_seconds",
    "bifrost_request_retries",
    "bifrost_active_requests",
];

/// Bifrost's base labels on its LLM metrics.
const BIFROST_LABELS: &[&str] = &[
    "provider",
    "model",
    "method",
    "virtual_key_id",
    "virtual_key_name",
    "selected_key_id",
    "selected_key_name",
    "fallback_index",
    "team_id",
    "team_name",
    "customer_id",
    "customer_name",
];

/// The label set of the first sample line of `metric` whose labels contain `needle`.
fn sample<'a>(text: &'a str, metric: &str, needle: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(needle))
}

#[tokio::test]
async fn prometheus_speaks_bifrost_names_and_labels() {
    let upstream = default_mock();
    let dead = dead_address();
    let gw = gateway(&format!(
        "providers:\n{}{}\nclient: {{prometheus_labels: [env]}}\ngovernance:\n  customers:\n    - {{id: cust-1, name: Acme}}\n  teams:\n    - {{id: team-1, name: Blue, customer_id: cust-1}}\n  virtual_keys:\n    - {{id: vk-a, name: Alpha, value: sk-bf-alpha, team_id: team-1, provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("down", &format!("http://{dead}"), ""),
    ));
    let addr = gw.addr;
    let headers = [("x-bf-vk", "sk-bf-alpha"), ("x-bf-prom-env", "prod")];
    let ok = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        br#"{"model":"openai/gpt-4o-mini","messages":[]}"#,
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", ok.text());
    let streamed = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        br#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[]}"#,
    )
    .await;
    assert_eq!(streamed.status(), 200);
    let failed = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        br#"{"model":"down/gpt-4o-mini","messages":[]}"#,
    )
    .await;
    assert!(failed.status() >= 500);
    let refused = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-bf-vk", "sk-bf-nope")],
        br#"{"model":"openai/gpt-4o-mini","messages":[]}"#,
    )
    .await;
    assert!(refused.status() >= 400 && refused.status() < 500);
    // Each line the test reads below, not just any line naming them: metrics are recorded in
    // Pingora's logging phase, after the reply.
    let text = metrics_when(addr, |t| {
        sample(t, "bifrost_error_requests_total", "policy_access_denied").is_some()
            && sample(t, "bifrost_error_requests_total", "provider=\"down\"").is_some()
            && sample(t, "bifrost_success_requests_total", "method=\"chat_completion_stream\"").is_some()
            && t.lines()
                .filter(|l| l.starts_with("bifrost_active_requests{"))
                .all(|l| l.ends_with(" 0"))
    })
    .await;
    for name in BIFROST_METRICS {
        assert!(text.contains(&format!("\n{name}")), "metric {name} missing:\n{text}");
    }
    let success = text
        .lines()
        .find(|l| {
            l.starts_with("bifrost_success_requests_total{")
                && l.contains("method=\"chat_completion\"")
                && l.contains("vk-a")
        })
        .expect("success sample");
    for label in BIFROST_LABELS {
        assert!(
            success.contains(&format!("{label}=\"")),
            "label {label} missing: {success}"
        );
    }
    for expected in [
        "provider=\"openai\"",
        "model=\"gpt-4o-mini\"",
        "virtual_key_id=\"vk-a\"",
        "virtual_key_name=\"Alpha\"",
        "team_id=\"team-1\"",
        "team_name=\"Blue\"",
        "customer_id=\"cust-1\"",
        "selected_key_name=\"k-openai\"",
        "fallback_index=\"0\"",
        "env=\"prod\"",
    ] {
        assert!(success.contains(expected), "{expected} not in {success}");
    }
    assert!(success.ends_with(" 1"), "{success}");
    assert!(
        sample(
            &text,
            "bifrost_success_requests_total",
            "method=\"chat_completion_stream\""
        )
        .is_some()
    );
    assert!(
        sample(
            &text,
            "bifrost_stream_first_token_latency_seconds_count",
            "chat_completion_stream"
        )
        .is_some_and(|l| l.ends_with(" 1"))
    );
    assert!(sample(&text, "bifrost_input_tokens_total", "method=\"chat_completion\",model=\"gpt-4o-mini\",provider=\"openai\",routing_rule_id=\"\",routing_rule_name=\"\",selected_key_id=\"k-openai\"").is_some_and(|l| l.ends_with(" 12")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("bifrost_cost_total{") && l.contains("vk-a") && !l.ends_with(" 0")),
        "a priced request adds to bifrost_cost_total"
    );
    let error = sample(&text, "bifrost_error_requests_total", "provider=\"down\"").expect("error sample");
    assert!(
        error.contains("error_type=\"provider_") && error.contains("status_code=\"5"),
        "{error}"
    );
    let denied = sample(&text, "bifrost_error_requests_total", "policy_access_denied").expect("refusal");
    assert!(denied.contains("status_code=\"401\""), "{denied}");
    let http = sample(
        &text,
        "http_requests_total",
        "path=\"/v1/chat/completions\",status=\"200\"",
    )
    .expect("http sample");
    assert!(
        http.contains("method=\"POST\"") && http.contains("env=\"prod\"") && http.ends_with(" 2"),
        "{http}"
    );
    assert!(sample(&text, "bifrost_active_requests", "chat_completion").is_some_and(|l| l.ends_with(" 0")));
    assert!(
        !text.contains("sk-bf-alpha") && !text.contains("sk-openai-key"),
        "no secret in /metrics"
    );
}

#[tokio::test]
async fn a_thousand_client_model_names_add_one_other_series() {
    let upstream = default_mock();
    let gw = gateway(&format!(
        "providers:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    ));
    for i in 0..1000 {
        let body = format!(r#"{{"model":"openai/made-up-{i}","messages":[]}}"#);
        let reply = post(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(reply.status(), 200);
    }
    let path_probe = send(gw.addr, "GET", "/no/such/path/12345", &[], b"").await;
    assert_eq!(path_probe.status(), 404);
    let text = metrics_when(gw.addr, |t| {
        t.contains("path=\"unmatched\"")
            && sample(t, "bifrost_success_requests_total", "model=\"other\"").is_some_and(|l| l.ends_with(" 1000"))
    })
    .await;
    let models: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("bifrost_success_requests_total{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(models.into_iter().collect::<Vec<_>>(), ["other"]);
    let other = sample(&text, "bifrost_success_requests_total", "model=\"other\"").expect("other");
    assert!(other.ends_with(" 1000"), "{other}");
    assert!(
        !text.contains("made-up") && !text.contains("12345"),
        "no client string becomes a label"
    );
    assert!(sample(&text, "http_requests_total", "path=\"unmatched\"").is_some());
}

#[tokio::test]
async fn the_live_tail_streams_each_finished_request_and_needs_admin_auth() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = default_mock();
    let dir = temp_dir("tail");
    let gw = gateway(&format!(
        "providers:\n{}\nlogs_store: {{enabled: true, config: {{path: {}}}}}\ngovernance:\n  auth_config: {{is_enabled: true, admin_username: admin, admin_password: s3cret, disable_auth_on_inference: true}}\n",
        provider_yaml("openai", &upstream.base_url(), ""),
        dir.join("logs.db").display()
    ));
    let basic = ("authorization", "Basic YWRtaW46czNjcmV0"); // admin:s3cret
    assert_eq!(api(gw.addr, "GET", "/api/logs", "").await.status(), 401);
    assert_eq!(api(gw.addr, "GET", "/api/logs/stream", "").await.status(), 401);
    let mut tail = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    tail.write_all(
        format!(
            "GET /api/logs/stream HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n\r\n",
            basic.1
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The subscription is live once the head and the first comment arrived.
    while !seen.contains(": connected") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tail.read(&mut buf))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n > 0, "closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.starts_with("HTTP/1.1 200") && seen.contains("text/event-stream"),
        "{seen}"
    );
    let reply = send(
        gw.addr,
        "POST",
        "/v1/chat/completions",
        &[("x-request-id", "tailed-1")],
        br#"{"model":"openai/gpt-4o-mini","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status(), 200);
    while !seen.contains("tailed-1") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tail.read(&mut buf))
            .await
            .expect("an event in time")
            .expect("read");
        assert!(n > 0, "closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let event = seen.split("event: log\n").nth(1).expect("a log event");
    let data = event.lines().find_map(|l| l.strip_prefix("data: ")).expect("data line");
    let row: Value = serde_json::from_str(data).expect("the event is a row as JSON");
    assert_eq!(row["id"], "tailed-1");
    assert_eq!(row["status"], "success");
    let listed = send(gw.addr, "GET", "/api/logs", &[basic], b"").await;
    assert_eq!(listed.status(), 200);
}
