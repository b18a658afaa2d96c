//! The request log store against SQLite and PostgreSQL: writes, filters, pages, sorts, stats,
//! histograms, content search, deletes and retention.
//!
//! PostgreSQL runs when `ASBRU_TEST_POSTGRES_URL` is set; with `ASBRU_REQUIRE_POSTGRES=1` a
//! missing server fails instead of skipping.

use std::sync::atomic::{AtomicU32, Ordering};

use asbru_store::logs::{
    LogFilter, LogQuery, LogRow, LogStore, Order, PostgresLogStore, Retention, SortBy, SqliteLogStore,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn stores() -> Vec<Box<dyn LogStore>> {
    let path = std::env::temp_dir().join(unique("asbru_logs")).join("logs.db");
    let mut out: Vec<Box<dyn LogStore>> = vec![Box::new(SqliteLogStore::open(&path).expect("sqlite"))];
    let required = std::env::var("ASBRU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    match std::env::var("ASBRU_TEST_POSTGRES_URL") {
        Ok(base) => match asbru_store::backend::postgres::scratch_database(&base, &unique("asbru_logs")) {
            Ok(url) => out.push(Box::new(PostgresLogStore::open(&url, 4).expect("postgres"))),
            Err(e) => assert!(!required, "PostgreSQL unusable: {e}"),
        },
        Err(_) => assert!(
            !required,
            "ASBRU_REQUIRE_POSTGRES=1 but ASBRU_TEST_POSTGRES_URL is not set"
        ),
    }
    out
}

/// Sums of floats in another order differ in their last bits.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn row(i: i64, provider: &str, status: &str) -> LogRow {
    LogRow {
        id: format!("req-{i}"),
        timestamp_ms: 1_700_000_100_000 + i * 60_000,
        object_type: "chat_completion".into(),
        provider: provider.into(),
        model: if i % 2 == 0 {
            "gpt-4o".into()
        } else {
            "gpt-4o-mini".into()
        },
        requested_model: format!("{provider}/gpt-4o"),
        status: status.into(),
        status_code: if status == "success" { 200 } else { 502 },
        latency_ms: Some(10.0 * i as f64),
        prompt_tokens: i,
        completion_tokens: 2 * i,
        total_tokens: 3 * i,
        cost: (i % 5 != 0).then_some(0.001 * i as f64),
        virtual_key_id: Some(format!("vk-{}", i % 3)),
        virtual_key_name: Some(format!("key {}", i % 3)),
        selected_key_id: Some("k1".into()),
        selected_key_name: Some("main".into()),
        input_history: Some(format!(r#"[{{"role":"user","content":"question number {i}"}}]"#)),
        content_summary: Some(format!(
            "question number {i} about zebras{}",
            if i == 7 { " and narwhals" } else { "" }
        )),
        created_at_ms: 1,
        ..Default::default()
    }
}

fn seed(store: &dyn LogStore) {
    let rows: Vec<LogRow> = (1..=20)
        .map(|i| {
            let provider = if i % 4 == 0 { "anthropic" } else { "openai" };
            let status = if i % 6 == 0 { "error" } else { "success" };
            row(i, provider, status)
        })
        .collect();
    store.insert(&rows).expect("insert");
}

#[test]
fn filters_pages_sorts_and_stats() {
    for store in stores() {
        let store = store.as_ref();
        assert!(!store.has_rows().expect("empty"), "{}", store.kind());
        seed(store);
        let kind = store.kind();
        let filter = LogFilter {
            providers: vec!["openai".into()],
            statuses: vec!["success".into()],
            ..Default::default()
        };
        // openai: i not divisible by 4 (15 rows); success: not divisible by 6 -> drop 6, 18.
        let page = store
            .search(&LogQuery {
                filter: filter.clone(),
                limit: 5,
                ..Default::default()
            })
            .expect("search");
        assert_eq!(page.total, 13, "{kind}");
        assert_eq!(page.rows.len(), 5);
        let ids: Vec<&str> = page.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["req-19", "req-17", "req-15", "req-14", "req-13"],
            "{kind}: newest first"
        );
        assert_eq!(page.stats.success_count, 13);
        assert!((page.stats.success_rate() - 100.0).abs() < 1e-9);
        let second = store
            .search(&LogQuery {
                filter: filter.clone(),
                limit: 5,
                offset: 10,
                ..Default::default()
            })
            .expect("page 3");
        assert_eq!(second.rows.len(), 3, "{kind}: the last page holds the rest");
        let by_cost = store
            .search(&LogQuery {
                sort_by: SortBy::Cost,
                order: Order::Asc,
                limit: 100,
                ..Default::default()
            })
            .expect("by cost");
        assert_eq!(by_cost.rows[0].id, "req-1", "{kind}");
        assert!(
            by_cost.rows.last().expect("rows").cost.is_none(),
            "{kind}: rows without a cost sort last"
        );
        let stats = store.stats(&LogFilter::default()).expect("stats");
        assert_eq!(stats.total_requests, 20);
        assert_eq!(stats.error_count, 3);
        assert_eq!(stats.total_tokens, 3 * 210);
        assert!(
            (stats.average_latency - 105.0).abs() < 1e-9,
            "{kind}: {}",
            stats.average_latency
        );
        let missing = store
            .stats(&LogFilter {
                missing_cost_only: true,
                ..Default::default()
            })
            .expect("missing cost");
        assert_eq!(missing.total_requests, 4);
        let ranges = store
            .stats(&LogFilter {
                min_latency: Some(50.0),
                max_tokens: Some(30),
                models: vec!["gpt-4o".into()],
                virtual_key_ids: vec!["vk-0".into(), "vk-2".into()],
                ..Default::default()
            })
            .expect("ranges");
        // latency >= 50 -> i >= 5; tokens <= 30 -> i <= 10; even i: 6, 8, 10; vk 0 or 2: 6, 8.
        assert_eq!(ranges.total_requests, 2, "{kind}");
        // The rollup (whole minutes) and the raw rows (partial minutes) agree with a raw-only
        // reading (a latency bound forces it) for ranges cut anywhere.
        for (start, end) in [
            (0, i64::MAX),
            (90_000, 250_000),
            (61_000, 61_500),
            (60_000, 1_199_999),
            (30_000, 900_001),
        ] {
            let base: i64 = 1_700_000_100_000;
            let ranged = LogFilter {
                providers: vec!["openai".into()],
                start_ms: Some(base.saturating_add(start)),
                end_ms: Some(base.saturating_add(end)),
                ..Default::default()
            };
            let raw_only = LogFilter {
                min_latency: Some(-1.0),
                ..ranged.clone()
            };
            let (a, b) = (
                store.stats(&ranged).expect("stats"),
                store.stats(&raw_only).expect("raw"),
            );
            assert_eq!(a, b, "{kind}: range {start}..{end}");
            let (ha, hb) = (
                store.histogram(&ranged, 120_000, false).expect("h"),
                store.histogram(&raw_only, 120_000, false).expect("h"),
            );
            assert_eq!(ha, hb, "{kind}: histogram over {start}..{end}");
        }
        // A content search finds its page in one pass: same pages and totals as the other path.
        for (sort_by, order) in [
            (SortBy::Timestamp, Order::Desc),
            (SortBy::Cost, Order::Asc),
            (SortBy::Latency, Order::Desc),
        ] {
            let plain = LogQuery {
                filter: LogFilter {
                    providers: vec!["openai".into()],
                    ..Default::default()
                },
                limit: 4,
                offset: 2,
                sort_by,
                order,
            };
            let searched = LogQuery {
                filter: LogFilter {
                    content_search: Some("zebras".into()),
                    ..plain.filter.clone()
                },
                ..plain.clone()
            };
            let (a, b) = (
                store.search(&plain).expect("plain"),
                store.search(&searched).expect("searched"),
            );
            let ids = |p: &asbru_store::logs::LogPage| p.rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&a), ids(&b), "{kind}: {sort_by:?} {order:?}");
            assert_eq!(a.total, b.total);
            assert_eq!(a.stats.total_tokens, b.stats.total_tokens);
        }
        let got = store.get("req-7").expect("get").expect("row");
        assert_eq!(got, row(7, "openai", "success"), "{kind}: a row reads back as written");
        assert!(store.get("nope").expect("get").is_none());
    }
}

#[test]
fn content_search_histograms_deletes_and_retention() {
    for store in stores() {
        let store = store.as_ref();
        let kind = store.kind();
        seed(store);
        let search = |term: &str| {
            store
                .stats(&LogFilter {
                    content_search: Some(term.into()),
                    ..Default::default()
                })
                .expect("search")
                .total_requests
        };
        assert_eq!(search("narwhal"), 1, "{kind}");
        assert_eq!(search("zebras"), 20, "{kind}");
        assert_eq!(search("number 1"), 11, "{kind}: 1 and 10..=19");
        assert_eq!(search("50%"), 0, "{kind}: LIKE wildcards are literal");
        assert_eq!(search("s"), 20, "{kind}: a short term still works (by scanning)");
        let buckets = store
            .histogram(&LogFilter::default(), 5 * 60_000, true)
            .expect("histogram");
        assert_eq!(buckets.iter().map(|b| b.count).sum::<i64>(), 20, "{kind}");
        assert!(buckets.iter().all(|b| b.start_ms % (5 * 60_000) == 0));
        let first = &buckets[0];
        assert_eq!(
            first.latency_percentiles[2], 40.0,
            "{kind}: the first bucket holds i = 1..=4"
        );
        let models = store.model_histogram(&LogFilter::default(), 3_600_000).expect("models");
        assert_eq!(models.iter().map(|m| m.total).sum::<i64>(), 20);
        assert!(models.iter().any(|m| m.model == "gpt-4o-mini"));
        let data = store.filter_data().expect("filter data");
        assert_eq!(data.providers, ["anthropic", "openai"], "{kind}");
        assert_eq!(data.virtual_keys.len(), 3);
        assert_eq!(data.selected_keys, [("k1".to_string(), "main".to_string())]);

        assert_eq!(
            store
                .delete_ids(&["req-1".into(), "req-2".into(), "missing".into()])
                .expect("delete"),
            2
        );
        let gone = store
            .delete_matching(&LogFilter {
                providers: vec!["anthropic".into()],
                ..Default::default()
            })
            .expect("delete matching");
        assert_eq!(gone, 5, "{kind}");
        // 13 rows left: i in 3..=19 without multiples of 4.
        let cut = 1_700_000_100_000 + 11 * 60_000;
        let done = store
            .retain(&Retention {
                delete_before_ms: 1_700_000_100_000 + 5 * 60_000,
                blank_content_before_ms: cut,
                max_rows: 8,
            })
            .expect("retain");
        // Older than i=5: 3 goes; 12 left; over the cap of 8 by 4: 5, 6, 7, 9 go.
        assert_eq!(done.deleted, 5, "{kind}");
        assert_eq!(store.stats(&LogFilter::default()).expect("stats").total_requests, 8);
        let oldest = store.get("req-10").expect("get").expect("kept");
        assert!(
            oldest.input_history.is_none() && oldest.content_summary.is_none(),
            "{kind}: content blanked"
        );
        assert_eq!(oldest.total_tokens, 30, "{kind}: metadata kept");
        assert_eq!(done.blanked, 1, "{kind}: only req-10 is older than the content cut");
        assert!(
            store
                .get("req-11")
                .expect("get")
                .expect("kept")
                .content_summary
                .is_some(),
            "{kind}"
        );
        assert_eq!(
            search("zebras"),
            7,
            "{kind}: the search index follows updates and deletes"
        );
    }
}

#[test]
fn the_hourly_rollup_agrees_with_the_rows_across_hours() {
    for store in stores() {
        let store = store.as_ref();
        let kind = store.kind();
        let base: i64 = 1_700_000_100_000;
        let rows: Vec<LogRow> = (0..200)
            .map(|i| LogRow {
                latency_ms: (i % 7 != 0).then_some(i as f64),
                cost: (i % 5 != 0).then_some(0.01),
                timestamp_ms: base + i * 7 * 60_000 + i,
                ..row(
                    i,
                    if i % 3 == 0 { "anthropic" } else { "openai" },
                    if i % 4 == 0 { "error" } else { "success" },
                )
            })
            .collect();
        store.insert(&rows).expect("insert");
        let check = |label: &str| {
            for (start, end) in [
                (None, None),
                (Some(base + 1), None),
                (None, Some(base + 10 * 3_600_000 + 17)),
                (Some(base + 3_599_999), Some(base + 14 * 3_600_000)),
                (Some(base + 30 * 60_000), Some(base + 31 * 60_000)),
            ] {
                for providers in [vec![], vec!["openai".to_string()]] {
                    let filter = LogFilter {
                        providers: providers.clone(),
                        start_ms: start,
                        end_ms: end,
                        ..Default::default()
                    };
                    // A `parent_request_id`-free raw reading: a key filter on every key forces it.
                    let raw = LogFilter {
                        virtual_key_ids: vec!["vk-0".into(), "vk-1".into(), "vk-2".into()],
                        ..filter.clone()
                    };
                    let (a, b) = (store.stats(&filter).expect("stats"), store.stats(&raw).expect("raw"));
                    let what = format!("{kind} {label}: {start:?}..{end:?} {providers:?}");
                    assert_eq!(
                        (
                            a.total_requests,
                            a.success_count,
                            a.error_count,
                            a.prompt_tokens,
                            a.total_tokens
                        ),
                        (
                            b.total_requests,
                            b.success_count,
                            b.error_count,
                            b.prompt_tokens,
                            b.total_tokens
                        ),
                        "{what}"
                    );
                    assert!(
                        close(a.total_cost, b.total_cost) && close(a.average_latency, b.average_latency),
                        "{what}"
                    );
                    for bucket in [3_600_000, 7_200_000] {
                        let (x, y) = (
                            store.histogram(&filter, bucket, false).expect("h"),
                            store.histogram(&raw, bucket, false).expect("h"),
                        );
                        assert_eq!(x.len(), y.len(), "{what} {bucket}");
                        for (p, q) in x.iter().zip(&y) {
                            assert_eq!(
                                (p.start_ms, p.count, p.success, p.error, p.total_tokens),
                                (q.start_ms, q.count, q.success, q.error, q.total_tokens),
                                "{what} {bucket}"
                            );
                            assert!(close(p.cost, q.cost) && close(p.avg_latency, q.avg_latency), "{what}");
                        }
                        let (x, y) = (
                            store.model_histogram(&filter, bucket).expect("m"),
                            store.model_histogram(&raw, bucket).expect("m"),
                        );
                        assert_eq!(x.len(), y.len(), "{what} {bucket}");
                        for (p, q) in x.iter().zip(&y) {
                            assert_eq!(
                                (p.start_ms, &p.model, p.total, p.error),
                                (q.start_ms, &q.model, q.total, q.error)
                            );
                            assert!(close(p.cost, q.cost), "{what}");
                        }
                    }
                }
            }
        };
        check("as written");
        let ids: Vec<String> = (0..200).step_by(9).map(|i| format!("req-{i}")).collect();
        store.delete_ids(&ids).expect("delete");
        let mut rewritten = store.get("req-10").expect("get").expect("row");
        rewritten.status = "error".into();
        rewritten.total_tokens = 999;
        store.insert(&[rewritten]).expect("rewrite");
        check("after deletes and a rewrite");

        // One batch holding a new id twice (the last one wins) and a rewrite of an older row:
        // the index and the rollup see each id once, with its final values.
        let mut first = store.get("req-11").expect("get").expect("row");
        first.id = "req-new".into();
        first.total_tokens = 5;
        first.content_summary = Some("first draft".into());
        let mut second = first.clone();
        second.total_tokens = 7;
        second.content_summary = Some("final answer quokka".into());
        let mut older = store.get("req-12").expect("get").expect("row");
        older.total_tokens = 1234;
        older.content_summary = Some("rewritten axolotl".into());
        store.insert(&[first, older, second]).expect("batch");
        check("after a batch with a repeated id");
        let found = |term: &str| -> Vec<String> {
            let q = LogQuery {
                filter: LogFilter {
                    content_search: Some(term.into()),
                    ..Default::default()
                },
                limit: 10,
                ..Default::default()
            };
            store
                .search(&q)
                .expect("search")
                .rows
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(found("quokka"), ["req-new"], "{}", store.kind());
        assert_eq!(found("axolotl"), ["req-12"], "{}", store.kind());
        assert!(found("first draft").is_empty(), "{}", store.kind());
        assert_eq!(store.get("req-new").expect("get").expect("row").total_tokens, 7);

        // The newest row deleted, its rowid is handed out again: the next row is still indexed.
        store.delete_ids(&["req-new".to_string()]).expect("delete");
        let mut reused = store.get("req-13").expect("get").expect("row");
        reused.id = "req-reused".into();
        reused.content_summary = Some("pangolin".into());
        store.insert(&[reused]).expect("insert");
        check("after the newest row was deleted and another written");
        assert_eq!(found("pangolin"), ["req-reused"], "{}", store.kind());
    }
}
