//! The retention job: every few minutes, rows older than the retention are deleted, rows over
//! the row cap go oldest first, and content older than its own retention is blanked.

use std::sync::Arc;
use std::time::Duration;

use asbru_config::Config;
use asbru_store::logs::{self, Retention as Rules};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::RequestLog;

/// Days rows are kept when neither `logs_store.retention_days` nor `client.log_retention_days`
/// is set (Bifrost's default).
pub const DEFAULT_RETENTION_DAYS: u64 = 365;
/// Rows kept at most when `logs_store.max_rows` is not set.
pub const DEFAULT_MAX_ROWS: u64 = 10_000_000;
/// How often the job runs.
pub const INTERVAL: Duration = Duration::from_secs(300);

const DAY_MS: i64 = 86_400_000;

/// The retention settings of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rows older than this many days are deleted.
    pub days: u64,
    /// Content older than this many days is blanked.
    pub content_days: u64,
    /// Most rows kept.
    pub max_rows: u64,
}

impl Policy {
    /// The policy of `config`.
    pub fn of(config: &Config) -> Policy {
        let section = logs::section(config);
        let days = section
            .retention_days
            .or(config.client.log_retention_days)
            .unwrap_or(DEFAULT_RETENTION_DAYS)
            .max(1);
        Policy {
            days,
            content_days: section.content_retention_days.unwrap_or(days).min(days),
            max_rows: section.max_rows.unwrap_or(DEFAULT_MAX_ROWS).max(1),
        }
    }

    /// The rules as of `now_ms`.
    pub fn rules(&self, now_ms: i64) -> Rules {
        let days = |d: u64| i64::try_from(d).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        Rules {
            delete_before_ms: now_ms.saturating_sub(days(self.days)),
            blank_content_before_ms: now_ms.saturating_sub(days(self.content_days)),
            max_rows: self.max_rows,
        }
    }
}

/// Runs the retention rules once.
pub fn run_once(log: &RequestLog, policy: Policy) {
    match log.store.retain(&policy.rules(super::unix_millis())) {
        Ok(done) if done.deleted > 0 || done.blanked > 0 => {
            tracing::info!(
                deleted = done.deleted,
                blanked = done.blanked,
                "request log retention applied"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("request log retention failed: {e}"),
    }
}

/// The background service.
pub struct Retention {
    /// The request log.
    pub log: Arc<RequestLog>,
    /// Its rules.
    pub policy: Policy,
}

#[async_trait]
impl BackgroundService for Retention {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let log = self.log.clone();
            let policy = self.policy;
            let _ = tokio::task::spawn_blocking(move || run_once(&log, policy)).await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }
}
