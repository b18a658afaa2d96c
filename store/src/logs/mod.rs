//! The request log store: one row per request in a database of its own (`logs.db` beside
//! `config.db` by default, or PostgreSQL), as Bifrost keeps its `logs` table. Blocking, like the
//! config store: async code calls it through `spawn_blocking`.
//!
//! - [`LogRow`] is a row, [`LogFilter`] the filters every query shares, [`query`] renders them
//!   to SQL once for both backends.
//! - Connections are made lazily and remade after a failure, so a log database that is down at
//!   start, or goes away, never stops the gateway: writes fail, the writer counts what it drops,
//!   and the next batch tries again.

mod aggregate;
mod migrate;
mod postgres;
pub mod query;
mod row;
mod sqlite;

use std::path::PathBuf;

use asbru_config::model::{Config, LogsStoreConfig, StoreKind};

pub use postgres::PostgresLogStore;
pub use query::{LogFilter, LogQuery, Order, SortBy};
pub use row::{COLUMNS, LogRow, SqlRef, SqlValue};
pub use sqlite::SqliteLogStore;

/// Why a log store call failed.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The database cannot be reached or opened.
    #[error("log store unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("log store error: {0}")]
    Database(String),
    /// The database's schema is newer than this binary knows.
    #[error("the log store's schema is at version {found}, newer than this asbru knows ({known})")]
    SchemaTooNew {
        /// Version found.
        found: u32,
        /// Latest version known.
        known: u32,
    },
}

/// Totals over the rows a filter selects (Bifrost's `SearchStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogStats {
    /// Rows selected.
    pub total_requests: i64,
    /// Rows with status `success`.
    pub success_count: i64,
    /// Rows with status `error`.
    pub error_count: i64,
    /// Mean latency in milliseconds.
    pub average_latency: f64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// All tokens.
    pub total_tokens: i64,
    /// Dollars.
    pub total_cost: f64,
}

impl LogStats {
    /// Successes over finished requests, in percent (0 with none).
    pub fn success_rate(&self) -> f64 {
        let finished = self.success_count + self.error_count;
        if finished == 0 {
            0.0
        } else {
            self.success_count as f64 * 100.0 / finished as f64
        }
    }
}

/// One page of rows with the total the filter selects and its stats.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// The rows of this page.
    pub rows: Vec<LogRow>,
    /// Rows the filter selects, over all pages.
    pub total: i64,
    /// Totals over the rows the filter selects.
    pub stats: LogStats,
}

/// Aggregates of one time bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Bucket start, Unix milliseconds.
    pub start_ms: i64,
    /// Requests.
    pub count: i64,
    /// Successes.
    pub success: i64,
    /// Errors.
    pub error: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// All tokens.
    pub total_tokens: i64,
    /// Cached prompt tokens read.
    pub cached_read_tokens: i64,
    /// Dollars.
    pub cost: f64,
    /// Mean latency, ms.
    pub avg_latency: f64,
    /// Latency percentiles, ms (90th, 95th, 99th), over the bucket's rows.
    pub latency_percentiles: [f64; 3],
}

/// Aggregates of one model in one time bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelBucket {
    /// Bucket start, Unix milliseconds.
    pub start_ms: i64,
    /// Model.
    pub model: String,
    /// Requests.
    pub total: i64,
    /// Successes.
    pub success: i64,
    /// Errors.
    pub error: i64,
    /// Dollars.
    pub cost: f64,
}

/// Distinct values for the dashboard's filter lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterData {
    /// Providers seen.
    pub providers: Vec<String>,
    /// Models seen.
    pub models: Vec<String>,
    /// Request types seen.
    pub objects: Vec<String>,
    /// Provider keys seen, `(id, name)`.
    pub selected_keys: Vec<(String, String)>,
    /// Virtual keys seen, `(id, name)`.
    pub virtual_keys: Vec<(String, String)>,
    /// Routing rules seen, `(id, name)`.
    pub routing_rules: Vec<(String, String)>,
    /// Teams seen, `(id, name)`.
    pub teams: Vec<(String, String)>,
    /// Customers seen, `(id, name)`.
    pub customers: Vec<(String, String)>,
}

/// What the retention job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Rows deleted (too old, or over the row cap).
    pub deleted: u64,
    /// Rows whose content was blanked.
    pub blanked: u64,
}

/// The retention rules.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Rows older than this (Unix ms) are deleted.
    pub delete_before_ms: i64,
    /// Content of rows older than this (Unix ms) is blanked.
    pub blank_content_before_ms: i64,
    /// Most rows kept.
    pub max_rows: u64,
}

/// A request log database.
pub trait LogStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Inserts rows in one transaction (a row whose id exists is replaced).
    fn insert(&self, rows: &[LogRow]) -> Result<(), LogStoreError>;
    /// One page of rows, with the total and the stats of everything the filter selects.
    fn search(&self, query: &LogQuery) -> Result<LogPage, LogStoreError>;
    /// One row by id.
    fn get(&self, id: &str) -> Result<Option<LogRow>, LogStoreError>;
    /// Totals over what the filter selects.
    fn stats(&self, filter: &LogFilter) -> Result<LogStats, LogStoreError>;
    /// Aggregates per time bucket of `bucket_ms`, oldest first.
    fn histogram(&self, filter: &LogFilter, bucket_ms: i64, percentiles: bool) -> Result<Vec<Bucket>, LogStoreError>;
    /// Aggregates per time bucket and model, oldest first.
    fn model_histogram(&self, filter: &LogFilter, bucket_ms: i64) -> Result<Vec<ModelBucket>, LogStoreError>;
    /// Distinct providers, models, keys, ... for filter lists.
    fn filter_data(&self) -> Result<FilterData, LogStoreError>;
    /// Deletes the rows with these ids; returns how many went.
    fn delete_ids(&self, ids: &[String]) -> Result<u64, LogStoreError>;
    /// Deletes the rows a filter selects; returns how many went.
    fn delete_matching(&self, filter: &LogFilter) -> Result<u64, LogStoreError>;
    /// Applies the retention rules.
    fn retain(&self, rules: &Retention) -> Result<Retained, LogStoreError>;
    /// Whether any row exists.
    fn has_rows(&self) -> Result<bool, LogStoreError>;
}

/// The `logs_store` section that applies: the file's, or the default (SQLite, enabled).
pub fn section(config: &Config) -> LogsStoreConfig {
    config.logs_store.clone().unwrap_or_default()
}

/// Opens the configured log store (lazily connected, migrated on first use); `None` when the
/// section is disabled or `client.enable_logging` is false.
pub fn open(config: &Config) -> Result<Option<Box<dyn LogStore>>, LogStoreError> {
    let section = section(config);
    if !section.enabled || config.client.enable_logging == Some(false) {
        return Ok(None);
    }
    match section.kind {
        StoreKind::Sqlite => {
            let path = section
                .config
                .path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(&config.server.data_dir).join("logs.db"));
            Ok(Some(Box::new(SqliteLogStore::open(&path)?)))
        }
        StoreKind::Postgres => {
            let url = crate::backend::open::postgres_connection_string(&section.config, "logs_store.config")
                .map_err(|e| LogStoreError::Unavailable(e.to_string()))?;
            let conn = &section.config;
            Ok(Some(Box::new(PostgresLogStore::open(
                &url,
                conn.max_open_conns.unwrap_or(10),
            )?)))
        }
    }
}

/// Fills each bucket's latency percentiles from `(bucket start, latency)` pairs sorted by
/// bucket, then latency.
fn fill_percentiles(buckets: &mut [Bucket], pairs: &[(i64, f64)]) {
    let mut start = 0;
    while start < pairs.len() {
        let bucket = pairs[start].0;
        let end = pairs[start..]
            .iter()
            .position(|(b, _)| *b != bucket)
            .map_or(pairs.len(), |n| start + n);
        let values: Vec<f64> = pairs[start..end].iter().map(|(_, l)| *l).collect();
        if let Some(b) = buckets.iter_mut().find(|b| b.start_ms == bucket) {
            b.latency_percentiles = [
                query::quantile(&values, 0.90),
                query::quantile(&values, 0.95),
                query::quantile(&values, 0.99),
            ];
        }
        start = end;
    }
}
