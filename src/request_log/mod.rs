//! The request log: the logging filter's [`LogSink`] on one side, the log store on the other.
//!
//! - [`RequestLog::submit`] (the request path) is a `try_send` into a bounded queue; a full
//!   queue drops the record and counts it, nothing waits.
//! - [`writer::LogWriter`] (a background service) wakes every 500 ms and takes what queued up,
//!   in batches of up to [`writer::BATCH`] records, turns them into rows on a blocking thread
//!   and inserts each batch in one transaction. A batch the database refuses
//!   is counted as dropped; the store reconnects on the next batch. On shutdown the queue is
//!   drained.
//! - [`retention::Retention`] deletes old rows and blanks old content on an interval.
//! - Written rows go to live-tail subscribers (`GET /api/logs/stream`) through a broadcast
//!   channel, only when someone listens.

pub mod content;
pub mod retention;
pub mod row;
pub mod writer;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use asbru_config::Config;
use asbru_filters::logging::{LogRecord, LogSink};
use asbru_filters::snapshot::DEFAULT_MAX_CONTENT_BYTES;
use asbru_filters::telemetry::Metrics;
use asbru_store::logs::{self, LogStore};
use tokio::sync::{broadcast, mpsc};

/// Records waiting to be written when `logs_store.queue_size` is not set.
pub const DEFAULT_QUEUE: usize = 10_000;

/// The request log of a running gateway.
pub struct RequestLog {
    /// The database.
    pub store: Arc<dyn LogStore>,
    queue: mpsc::Sender<LogRecord>,
    /// The receiving end, held by the writer while it runs (and taken back for a final drain).
    receiver: Mutex<Option<mpsc::Receiver<LogRecord>>>,
    dropped: AtomicU64,
    /// Written rows, as JSON text, for live tails.
    pub tail: broadcast::Sender<Arc<str>>,
    /// Largest stored content field, bytes.
    pub max_content_bytes: usize,
    metrics: Arc<Metrics>,
}

impl RequestLog {
    /// The request log `config` asks for; `None` when logging is off. A database that cannot be
    /// reached yet is not an error: the writer retries.
    pub fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Option<Arc<RequestLog>>, logs::LogStoreError> {
        let Some(store) = logs::open(config)? else {
            return Ok(None);
        };
        let section = logs::section(config);
        let (queue, receiver) = mpsc::channel(section.queue_size.unwrap_or(DEFAULT_QUEUE).max(1));
        let (tail, _) = broadcast::channel(256);
        Ok(Some(Arc::new(RequestLog {
            store: Arc::from(store),
            queue,
            receiver: Mutex::new(Some(receiver)),
            dropped: AtomicU64::new(0),
            tail,
            max_content_bytes: section.max_content_bytes.unwrap_or(DEFAULT_MAX_CONTENT_BYTES).max(256),
            metrics,
        })))
    }

    /// Records lost so far (queue full, or the database refused them).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts lost records.
    pub fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.metrics.logs_dropped.inc_by(n);
    }

    /// Records waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Takes the queue's receiving end (the writer holds it while it runs).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<LogRecord>> {
        self.receiver.lock().ok().and_then(|mut r| r.take())
    }

    /// Gives the receiving end back (the writer stopped).
    pub fn return_receiver(&self, receiver: mpsc::Receiver<LogRecord>) {
        if let Ok(mut slot) = self.receiver.lock() {
            *slot = Some(receiver);
        }
    }

    /// Writes everything still queued, on this thread (after the server stopped).
    pub fn drain_blocking(&self) {
        let Some(mut receiver) = self.take_receiver() else {
            return;
        };
        let mut batch = Vec::new();
        while let Ok(record) = receiver.try_recv() {
            batch.push(record);
        }
        if !batch.is_empty() {
            writer::write_batch(self, batch);
        }
        self.return_receiver(receiver);
    }

    /// The rows just written, to live-tail subscribers.
    fn publish(&self, rows: &[asbru_store::logs::LogRow]) {
        if self.tail.receiver_count() == 0 {
            return;
        }
        for r in rows {
            let _ = self.tail.send(Arc::from(row::to_json(r).to_string()));
        }
    }
}

impl LogSink for RequestLog {
    fn submit(&self, record: LogRecord) {
        if self.queue.try_send(record).is_err() {
            self.count_dropped(1);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
