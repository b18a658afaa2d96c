//! Persists governance usage through the spend journal (`crate::spend_journal`): settlements are
//! journaled as they happen, and every second (and once more on shutdown) the journal's
//! entries are added to the config store (`governance_usage`). At start the gateway applies
//! what stopped processes journaled and reads usage back ([`restore`]), so neither a restart
//! nor `kill -9` loses settled usage.

use std::sync::Arc;
use std::time::Duration;

use asbru_filters::governance::Registry;
use asbru_store::backend::ConfigStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::spend_journal::Journal;
use crate::state::Gateway;

/// How often the journal is added to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Seeds `registry` with the usage persisted in `store`.
pub fn restore(registry: &Registry, store: &dyn ConfigStore) -> Result<usize, asbru_store::backend::StoreError> {
    let records = store.load_usage()?;
    let count = records.len();
    registry.restore(records);
    Ok(count)
}

/// Adds what was journaled to the store; on failure the journal keeps it for the next flush.
/// Returns how many entries were added.
pub fn flush(journal: &Journal, store: &dyn ConfigStore) -> usize {
    match journal.flush(store) {
        Ok(applied) => applied,
        Err(e) => {
            tracing::warn!("governance usage could not be saved, kept in the spend journal: {e}");
            0
        }
    }
}

/// The final flush of a stopping gateway.
pub fn flush_gateway(state: &Gateway) {
    if let (Some(journal), Some(store)) = (&state.spend_journal, &state.store) {
        flush(journal, store.as_ref());
    }
}

/// The background service.
pub struct UsageFlush {
    /// The journal.
    pub journal: Arc<Journal>,
    /// Where usage is added.
    pub store: Arc<dyn ConfigStore>,
}

impl UsageFlush {
    async fn flush_now(&self) {
        let (journal, store) = (self.journal.clone(), self.store.clone());
        let _ = tokio::task::spawn_blocking(move || flush(&journal, store.as_ref())).await;
    }
}

#[async_trait]
impl BackgroundService for UsageFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush_now().await,
                _ = shutdown.changed() => {
                    self.flush_now().await;
                    tracing::info!("governance usage saved");
                    return;
                }
            }
        }
    }
}
