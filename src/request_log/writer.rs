//! The log writer: a background service taking records off the queue in batches and inserting
//! each batch in one transaction, on a blocking thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use asbru_filters::logging::LogRecord;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::RequestLog;

/// Most records in one insert.
pub const BATCH: usize = 512;
/// How long a batch waits for more records after its first.
pub const LINGER: Duration = Duration::from_millis(100);

/// The background service.
pub struct LogWriter {
    /// The request log it drains.
    pub log: Arc<RequestLog>,
}

/// Converts and inserts one batch; a refused batch is counted as dropped.
pub fn write_batch(log: &RequestLog, records: Vec<LogRecord>) {
    let n = records.len() as u64;
    let rows: Vec<_> = records
        .into_iter()
        .map(|r| super::row::to_row(r, log.max_content_bytes))
        .collect();
    match log.store.insert(&rows) {
        Ok(()) => {
            log.metrics.logs_written.inc_by(n);
            log.publish(&rows);
        }
        Err(e) => {
            log.count_dropped(n);
            tracing::warn!(records = n, "request log rows dropped: {e}");
        }
    }
}

#[async_trait]
impl BackgroundService for LogWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut receiver) = self.log.take_receiver() else {
            return;
        };
        let mut batch: Vec<LogRecord> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                n = receiver.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                }
            }
            let deadline = Instant::now() + LINGER;
            while batch.len() < BATCH {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let room = BATCH - batch.len();
                match tokio::time::timeout(left, receiver.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.log.metrics.log_queue_depth.set(self.log.queued() as i64);
            let log = self.log.clone();
            let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if tokio::task::spawn_blocking(move || write_batch(&log, records))
                .await
                .is_err()
            {
                tracing::warn!("the request log writer's batch panicked");
            }
        }
        // Shutdown: what is queued now (requests finishing during the graceful stop) is written.
        while let Ok(record) = receiver.try_recv() {
            batch.push(record);
        }
        if !batch.is_empty() {
            let log = self.log.clone();
            let _ = tokio::task::spawn_blocking(move || write_batch(&log, batch)).await;
        }
        self.log.return_receiver(receiver);
    }
}
