//! The bundled bench tools run and report (figures are never asserted; speed is for benches).

use std::process::Command;
use std::time::Duration;

use asbru_bench::load::{self, LoadError, LoadOptions};
use asbru_bench::mock::MockOptions;
use bytes::Bytes;

use crate::support::*;

#[tokio::test]
async fn load_reports_every_scheduled_request() {
    let upstream = mock(MockOptions {
        chunks: 3,
        ..MockOptions::default()
    });
    let options = LoadOptions {
        url: format!("{}/v1/chat/completions", upstream.base_url()),
        rate: 200.0,
        duration: Duration::from_millis(500),
        body: Some(Bytes::from_static(br#"{"model":"m","stream":true,"messages":[]}"#)),
        stream: true,
        ..LoadOptions::default()
    };
    let report = load::run(&options).await.expect("load runs");
    assert_eq!(report.scheduled, 100);
    assert_eq!(report.completed, 100);
    assert_eq!(report.status_counts.get(&200), Some(&100));
    assert_eq!(upstream.state.request_count(), 100);
    assert_eq!(report.latency_us.count, 100);
    let first_content = report.first_content_us.expect("stream figures");
    assert_eq!(first_content.count, 100, "every stream had a content chunk");
    assert!(report.chunk_gap_us.is_some());
}

#[tokio::test]
async fn load_counts_failures_and_refuses_remote_targets() {
    let dead = dead_address();
    let options = LoadOptions {
        url: format!("http://{dead}/v1/models"),
        rate: 50.0,
        duration: Duration::from_millis(200),
        ..LoadOptions::default()
    };
    let report = load::run(&options).await.expect("load runs");
    assert_eq!(report.completed, 0);
    assert_eq!(report.errors.get("connect"), Some(&10));

    let remote = LoadOptions {
        url: "http://192.0.2.1:80/".into(),
        ..LoadOptions::default()
    };
    assert!(matches!(load::run(&remote).await, Err(LoadError::Remote(_))));
    let unbounded = LoadOptions {
        url: format!("http://{dead}/"),
        duration: Duration::from_secs(100_000),
        ..LoadOptions::default()
    };
    assert!(matches!(load::run(&unbounded).await, Err(LoadError::Bounds(_))));
}

#[tokio::test]
async fn closed_loop_keeps_each_connection_busy_for_the_duration() {
    let upstream = mock(MockOptions::default());
    let options = LoadOptions {
        url: format!("{}/v1/chat/completions", upstream.base_url()),
        duration: Duration::from_millis(400),
        body: Some(Bytes::from_static(br#"{"model":"m","messages":[]}"#)),
        connections: Some(4),
        ..LoadOptions::default()
    };
    let report = load::run(&options).await.expect("load runs");
    assert_eq!(report.connections, Some(4));
    assert!(
        report.completed > 40,
        "a closed loop on loopback sends far more than the rate: {report:?}"
    );
    assert_eq!(report.scheduled, report.completed, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(upstream.state.request_count(), report.completed);
    assert_eq!(report.latency_us.count, report.completed);
    assert!(report.table().contains("closed loop, 4 connections"));

    let too_many = LoadOptions {
        connections: Some(0),
        ..options.clone()
    };
    assert!(matches!(load::run(&too_many).await, Err(LoadError::Bounds(_))));
    let mixed = LoadOptions {
        fresh_connections: 0.5,
        ..options
    };
    assert!(matches!(load::run(&mixed).await, Err(LoadError::Bounds(_))));
}

/// A one-second `bench compare` of a bundled scenario at 50/s, as JSON.
fn compare_json(scenario: &str) -> serde_json::Value {
    compare_json_with(scenario, &[])
}

fn compare_json_with(scenario: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.extend(["--rate", "50"]);
    one_second_compare(scenario, &args)
}

/// A one-second `bench compare` of `scenario` with no warm-up and a 0 ms mock, as JSON.
fn one_second_compare(scenario: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["bench", "compare", "--scenario", scenario])
        .args(extra)
        .args(["--duration", "1", "--warmup", "0", "--latency-ms", "0", "--json"])
        .output()
        .expect("run compare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON report: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn compare_smoke_produces_the_json_fields() {
    let report = compare_json("passthrough");
    assert_eq!(report["scenario"], "passthrough");
    let run = &report["runs"][0];
    assert_eq!(run["mock_latency_ms"], 0);
    assert_eq!(run["gateway"]["completed"], 50);
    assert_eq!(run["direct"]["completed"], 50);
    assert_eq!(run["gateway"]["status_counts"]["200"], 50);
    for field in ["p50", "p90", "p99", "p999", "max"] {
        assert!(run["added_latency_us"][field].is_i64(), "added_latency_us.{field}");
        assert!(run["gateway"]["latency_us"][field].is_u64(), "latency_us.{field}");
    }
    assert!(run["gateway_cpu_us_per_request"].is_number());
    assert!(run["gateway_peak_rss_mb"].as_f64().is_some_and(|mb| mb > 0.0));

    // The governance scenario: every request carries the virtual key and is admitted.
    let report = compare_json("governance");
    assert_eq!(report["scenario"], "governance");
    assert!(report["skipped"].is_null());
    assert_eq!(report["runs"][0]["gateway"]["status_counts"]["200"], 50);

    // An OpenAI client streaming from Bedrock: signed requests, event-stream frames translated.
    let report = compare_json("bedrock-stream");
    let gateway = &report["runs"][0]["gateway"];
    assert_eq!(gateway["status_counts"]["200"], 50, "{report}");
    assert_eq!(report["runs"][0]["direct"]["status_counts"]["200"], 50, "{report}");
    assert!(
        gateway["first_content_us"]["p50"].as_u64().is_some_and(|us| us > 0),
        "{report}"
    );

    // A Responses client streaming through the translation: every stream shows its content.
    let report = compare_json("responses-stream");
    let gateway = &report["runs"][0]["gateway"];
    assert_eq!(gateway["status_counts"]["200"], 50, "{report}");
    assert!(
        gateway["first_content_us"]["p50"].as_u64().is_some_and(|us| us > 0),
        "{report}"
    );
}

#[test]
fn compare_reference_nginx_runs_the_direct_load_through_nginx() {
    let report = compare_json_with("passthrough", &["--reference", "nginx", "--body-size", "16384"]);
    let run = &report["runs"][0];
    assert_eq!(
        run["gateway"]["status_counts"]["200"], 50,
        "16 KiB bodies through the gateway: {report}"
    );
    if nginx_installed() {
        let reference = &run["reference"];
        assert_eq!(reference["name"], "nginx", "{report}");
        assert_eq!(reference["report"]["status_counts"]["200"], 50, "{report}");
        // CPU time is read in 10 ms ticks: 50 requests through nginx may read as zero.
        assert!(
            reference["cpu_us_per_request"].as_f64().is_some_and(|us| us >= 0.0),
            "{report}"
        );
        assert!(
            reference["gateway_cpu_ratio"].as_f64().is_some_and(|r| r >= 0.0),
            "{report}"
        );
        assert!(reference["added_latency_us"]["p50"].is_i64(), "{report}");
    } else {
        assert_eq!(run["reference_skipped"], "nginx is not installed");
    }
    // Without --reference, nothing is said about it.
    let plain = compare_json("passthrough");
    assert!(plain["runs"][0]["reference"].is_null() && plain["runs"][0]["reference_skipped"].is_null());
}

#[test]
fn compare_closed_loop_runs_each_proxy_at_saturation() {
    let report = one_second_compare("passthrough", &["--connections", "4", "--reference", "nginx"]);
    let run = &report["runs"][0];
    for side in [&run["direct"], &run["gateway"]] {
        assert_eq!(side["connections"], 4, "{report}");
        let completed = side["completed"].as_u64().unwrap_or(0);
        assert!(completed > 50, "saturation sends more than a trickle: {report}");
        assert_eq!(side["status_counts"]["200"].as_u64(), Some(completed), "{report}");
    }
    if nginx_installed() {
        let reference = &run["reference"]["report"];
        assert_eq!(reference["connections"], 4, "{report}");
        assert_eq!(reference["status_counts"]["200"], reference["completed"], "{report}");
    }
    assert!(
        run["wake_ups"].is_null(),
        "priced only at one request in flight: {report}"
    );

    // One request in flight with the gateway pinned: the report prices a cross-core round trip
    // with a mock pinned to the gateway's core.
    let report = one_second_compare("passthrough", &["--connections", "1", "--gateway-cpu", "0"]);
    let wake_ups = &report["runs"][0]["wake_ups"];
    assert!(
        wake_ups["cross_core"]["count"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    // A cross-core round trip is measured against the same-core direct run's p50.
    let cross_p50 = wake_ups["cross_core"]["p50"].as_i64().expect("cross-core p50");
    let direct_p50 = report["runs"][0]["direct"]["latency_us"]["p50"]
        .as_i64()
        .expect("direct p50");
    assert_eq!(
        wake_ups["round_trip_us"].as_i64(),
        Some(cross_p50 - direct_p50),
        "{report}"
    );

    // A rate and a closed loop are two different loads: asking for both is refused.
    let both = Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["bench", "compare", "--connections", "4", "--rate", "100"])
        .output()
        .expect("run compare");
    assert!(!both.status.success());
}

#[test]
fn compare_upstream_tls_verifies_an_https_mock_through_the_gateway_and_nginx() {
    let report = compare_json_with("upstream-tls", &["--reference", "nginx"]);
    let run = &report["runs"][0];
    assert!(
        run["direct"]["url"].as_str().is_some_and(|u| u.starts_with("https://")),
        "{report}"
    );
    assert_eq!(run["direct"]["status_counts"]["200"], 50, "{report}");
    assert_eq!(
        run["gateway"]["status_counts"]["200"], 50,
        "the gateway trusted the bench CA: {report}"
    );
    if nginx_installed() {
        assert_eq!(
            run["reference"]["report"]["status_counts"]["200"], 50,
            "nginx verified the mock too: {report}"
        );
    }
}

fn nginx_installed() -> bool {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
        "/usr/bin/nginx",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

#[test]
fn compare_tls_smoke_measures_plaintext_tls_and_handshakes() {
    let report = compare_json("tls");
    assert_eq!(report["scenario"], "tls");
    let run = &report["tls"][0];
    let asbru = &run["asbru"];
    assert_eq!(asbru["failed"], 0, "{report}");
    for field in ["plain_cpu_us", "tls_cpu_us", "new_connection_cpu_us"] {
        assert!(asbru[field].as_f64().is_some_and(|us| us > 0.0), "{field}: {report}");
    }
    // nginx is measured beside it when installed, and says why not otherwise.
    if nginx_installed() {
        assert_eq!(run["nginx"]["failed"], 0, "{report}");
    } else {
        assert_eq!(run["nginx_skipped"], "nginx is not installed");
    }
}

#[test]
fn load_cli_refuses_non_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["bench", "load", "--url", "http://192.0.2.1/", "--duration", "1"])
        .output()
        .expect("run load");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}

#[test]
fn compare_cluster_leases_from_postgres_and_names_what_it_needs() {
    // Without a database the scenario says what it needs.
    let out = Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["bench", "compare", "--scenario", "cluster", "--duration", "1"])
        .env_remove("ASBRU_BENCH_POSTGRES_URL")
        .output()
        .expect("run compare");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ASBRU_BENCH_POSTGRES_URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(url) = postgres_url("bench_cluster") else {
        return;
    };
    // Twice on one database: the second run's gateway serves its own mock, not the one the
    // first run seeded the store with.
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_asbru"))
            .args(["bench", "compare", "--scenario", "cluster", "--rate", "50"])
            .args(["--duration", "1", "--warmup", "0", "--latency-ms", "0", "--json"])
            .env("ASBRU_BENCH_POSTGRES_URL", &url)
            .output()
            .expect("run compare");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        let run = &report["runs"][0];
        assert_eq!(run["gateway"]["status_counts"]["200"], 50, "{report}");
        // Leases are fetched ahead: a handful of fetches, not one per request.
        let fetches = run["lease_fetches"].as_u64().expect("lease fetches reported");
        assert!(fetches < 25, "{fetches} lease fetches for 50 requests");
    }
}
