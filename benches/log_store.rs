//! The request log's queries at scale: a SQLite log store with 1,000,000 rows (seeded once into
//! `target/bench-logs/logs.db`, kept between runs), and the queries the log view makes:
//! a filtered page with its total and stats, and a content search.
//!
//! Also the writer's side: one batch of 2,500 rows (500 ms of traffic at 5,000 requests/s)
//! inserted into a growing store, with time-ordered ids (the gateway's UUIDv7) and with random
//! ones (client-supplied ids). Divide by 2,500 for the cost per row.
//!
//! `batch_2500_bare_table_floor` inserts the same batches into a bare table (no key, no index):
//! the floor any row-per-request SQLite log pays on the machine.
//!
//! Run: `cargo bench --bench log_store` (set `ASBRU_BENCH_LOG_ROWS` for another size).

use std::hint::black_box;
use std::path::PathBuf;

use asbru_store::logs::{LogFilter, LogQuery, LogRow, LogStore, SqliteLogStore};
use criterion::{Criterion, criterion_group, criterion_main};

const WORDS: &[&str] = &[
    "otter", "harbor", "quantum", "ledger", "violet", "compile", "river", "summit", "invoice", "garden", "neutron",
    "pepper", "archive", "falcon", "meadow", "socket", "lantern", "cipher", "glacier", "mosaic",
];

fn row(i: u64, now: i64) -> LogRow {
    // A small deterministic generator: no RNG crate needed, same data every run.
    let mut x = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 29;
        x % n
    };
    let provider = match next(10) {
        0..=4 => "openai",
        5..=7 => "anthropic",
        _ => "azure",
    };
    let status = if next(20) == 0 { "error" } else { "success" };
    let words: Vec<&str> = (0..30).map(|_| WORDS[next(WORDS.len() as u64) as usize]).collect();
    let prompt = format!("request {i}: {}", words.join(" "));
    let tokens = 50 + next(2000) as i64;
    LogRow {
        id: format!("bench-{i:08}"),
        timestamp_ms: now - (i as i64) * 2_500,
        object_type: "chat_completion".into(),
        provider: provider.into(),
        model: ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"][next(3) as usize].into(),
        requested_model: "gpt-4o".into(),
        status: status.into(),
        status_code: if status == "success" { 200 } else { 502 },
        latency_ms: Some(100.0 + next(5000) as f64),
        prompt_tokens: tokens / 2,
        completion_tokens: tokens / 2,
        total_tokens: tokens,
        cost: Some(tokens as f64 * 0.000002),
        virtual_key_id: Some(format!("vk-{}", next(50))),
        input_history: Some(format!(r#"[{{"role":"user","content":"{prompt}"}}]"#)),
        output_message: Some(r#"{"role":"assistant","content":"a reply"}"#.into()),
        content_summary: Some(format!("{prompt}\na reply")),
        created_at_ms: now,
        ..Default::default()
    }
}

fn seeded(rows: u64) -> SqliteLogStore {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-logs");
    let path = dir.join(format!("logs-{rows}.db"));
    let store = SqliteLogStore::open(&path).expect("store");
    let have = store.stats(&LogFilter::default()).expect("count").total_requests as u64;
    if have < rows {
        let now = 1_800_000_000_000;
        let started = std::time::Instant::now();
        let mut batch = Vec::with_capacity(5000);
        for i in have..rows {
            batch.push(row(i, now));
            if batch.len() == 5000 {
                store.insert(&batch).expect("insert");
                batch.clear();
            }
        }
        store.insert(&batch).expect("insert");
        eprintln!("seeded {} rows in {:.1?}", rows - have, started.elapsed());
    }
    store
}

fn queries(c: &mut Criterion) {
    let rows = std::env::var("ASBRU_BENCH_LOG_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let store = seeded(rows);
    let mut group = c.benchmark_group(format!("log_store_{rows}_rows"));
    group.sample_size(10);
    let page = LogQuery {
        filter: LogFilter {
            providers: vec!["openai".into()],
            statuses: vec!["success".into()],
            ..Default::default()
        },
        limit: 50,
        ..Default::default()
    };
    group.bench_function("page_provider_status_with_total_and_stats", |b| {
        b.iter(|| black_box(store.search(&page).expect("search")))
    });
    let search = LogQuery {
        filter: LogFilter {
            content_search: Some("falcon glacier".into()),
            ..Default::default()
        },
        limit: 50,
        ..Default::default()
    };
    group.bench_function("content_search_with_total_and_stats", |b| {
        b.iter(|| black_box(store.search(&search).expect("search")))
    });
    let rare = LogQuery {
        filter: LogFilter {
            content_search: Some("request 123456:".into()),
            ..Default::default()
        },
        limit: 50,
        ..Default::default()
    };
    group.bench_function("content_search_rare_term", |b| {
        b.iter(|| black_box(store.search(&rare).expect("search")))
    });
    group.finish();
}

/// `count` rows from row `from` on, 200 ms apart, with time-ordered ids (the gateway's UUIDv7)
/// or random ones (client-supplied ids).
fn batch(from: u64, count: u64, ordered: bool) -> Vec<LogRow> {
    (from..from + count)
        .map(|i| {
            let mut r = row(i, 1_800_000_000_000 + i as i64 * 200);
            r.id = if ordered {
                format!("{i:016x}-7000-8000-000000000000")
            } else {
                format!("{:016x}-4000-8000-000000000000", i.wrapping_mul(0x9e3779b97f4a7c15))
            };
            r
        })
        .collect()
}

/// The writer's batch insert, per batch of [`BATCH`] rows.
fn inserts(c: &mut Criterion) {
    const BATCH: u64 = 2_500;
    let mut group = c.benchmark_group("log_store_insert");
    group.sample_size(20);
    for ordered in [true, false] {
        let dir = std::env::temp_dir().join(format!("asbru-bench-insert-{}-{ordered}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteLogStore::open(&dir.join("logs.db")).expect("store");
        let mut next = 0u64;
        let name = if ordered {
            "batch_2500_time_ordered_ids"
        } else {
            "batch_2500_random_ids"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let batch = batch(next, BATCH, ordered);
                    next += BATCH;
                    let started = std::time::Instant::now();
                    store.insert(&batch).expect("insert");
                    spent += started.elapsed();
                }
                spent
            })
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

/// The floor under the writer: the same batches inserted the same way (one transaction,
/// 256-row statements) into a table with the same 40 columns and nothing else (no key, no index,
/// no rollup), then with only the cheapest text index FTS5 offers (words, `detail=none`), filled
/// per batch as the writer fills its own. What a row costs SQLite on this machine before the
/// log's other features.
fn insert_floor(c: &mut Criterion) {
    use r2d2_sqlite::rusqlite::{Connection, params_from_iter};
    const BATCH: u64 = 2_500;
    const PER_STATEMENT: usize = 256;
    const WORD_INDEX: &str = "CREATE VIRTUAL TABLE logs_fts USING fts5 (content_summary, content = 'logs', \
        content_rowid = 'rowid', tokenize = 'unicode61', detail = none);";
    let statement = |rows: usize| {
        let one = format!("({})", vec!["?"; asbru_store::logs::COLUMNS.len()].join(", "));
        format!("INSERT INTO logs VALUES {}", vec![one; rows].join(", "))
    };
    let mut group = c.benchmark_group("log_store_insert");
    group.sample_size(20);
    for (name, index) in [
        ("batch_2500_bare_table_floor", None),
        ("batch_2500_bare_table_with_word_index", Some(WORD_INDEX)),
    ] {
        let dir = std::env::temp_dir().join(format!("asbru-bench-floor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut conn = Connection::open(dir.join("floor.db")).expect("open");
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE logs ({}); {}",
            asbru_store::logs::COLUMNS.join(", "),
            index.unwrap_or("")
        ))
        .expect("schema");
        let mut next = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let batch = batch(next, BATCH, true);
                    next += BATCH;
                    let started = std::time::Instant::now();
                    let tx = conn.transaction().expect("tx");
                    let before: i64 = tx
                        .query_row("SELECT COALESCE(MAX(rowid), 0) FROM logs", [], |r| r.get(0))
                        .expect("rowid");
                    for chunk in batch.chunks(PER_STATEMENT) {
                        let values: Vec<_> = chunk.iter().flat_map(LogRow::refs).collect();
                        tx.prepare_cached(&statement(chunk.len()))
                            .and_then(|mut s| s.execute(params_from_iter(values.iter())))
                            .expect("insert");
                    }
                    if index.is_some() {
                        tx.execute(
                            "INSERT INTO logs_fts (rowid, content_summary) \
                             SELECT rowid, content_summary FROM logs WHERE rowid > ?1",
                            [before],
                        )
                        .expect("index");
                    }
                    tx.commit().expect("commit");
                    spent += started.elapsed();
                }
                spent
            })
        });
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, inserts, insert_floor, queries);
criterion_main!(benches);
