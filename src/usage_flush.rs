//! Persists governance usage: every second, the meters that changed are written to the config
//! store (`governance_usage`), and once more on shutdown. At start the gateway reads them back
//! ([`restore`]), so a restart — even a crash, up to the last second — loses no settled usage.

use std::sync::Arc;
use std::time::Duration;

use asbru_filters::governance::Registry;
use asbru_store::backend::ConfigStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// How often changed meters are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Seeds `registry` with the usage persisted in `store`.
pub fn restore(registry: &Registry, store: &dyn ConfigStore) -> Result<usize, asbru_store::backend::StoreError> {
    let records = store.load_usage()?;
    let count = records.len();
    registry.restore(records);
    Ok(count)
}

/// Writes the meters that changed since the last flush; on failure they stay marked for the
/// next one. Returns how many were written.
pub fn flush(registry: &Registry, store: &dyn ConfigStore, all: bool) -> usize {
    let records = registry.dirty_records(all);
    if records.is_empty() {
        return 0;
    }
    match store.save_usage(&records) {
        Ok(()) => records.len(),
        Err(e) => {
            tracing::warn!("governance usage could not be saved, will retry: {e}");
            let ids: Vec<String> = records.into_iter().map(|r| r.counter_id).collect();
            registry.mark_dirty(&ids);
            0
        }
    }
}

/// The background service.
pub struct UsageFlush {
    /// The meters.
    pub registry: Arc<Registry>,
    /// Where usage is written.
    pub store: Arc<dyn ConfigStore>,
}

impl UsageFlush {
    async fn flush_now(&self) {
        let (registry, store) = (self.registry.clone(), self.store.clone());
        let _ = tokio::task::spawn_blocking(move || flush(&registry, store.as_ref(), false)).await;
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
