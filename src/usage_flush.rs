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

use std::sync::atomic::{AtomicBool, Ordering};

use crate::spend_journal::Journal;
use crate::state::Gateway;
use crate::usage_reconcile::Reconciler;

/// How often the journal is added to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Seeds `registry` with the usage persisted in `store`; the reconciler starts from it.
pub fn restore(registry: &Registry, store: &dyn ConfigStore) -> Result<Reconciler, asbru_store::backend::StoreError> {
    let records = store.load_usage()?;
    let reconciler = Reconciler::new(&records);
    registry.restore(records);
    Ok(reconciler)
}

/// One flush tick: this process's journal added to the store (the reconciler following it),
/// then, while another journal owner is alive (`watching`, or found alive now), the journals
/// of processes gone applied and the others' spend read back into the live meters. Returns
/// whether another owner is alive.
pub fn flush_and_reconcile(
    journal: &Journal,
    store: &dyn ConfigStore,
    registry: &Registry,
    reconciler: &Reconciler,
    watching: bool,
) -> bool {
    let alive = journal.others_alive();
    let outcome = journal.flush_observed(store, &mut |entries| reconciler.applied(entries), || {
        if !(watching || alive) {
            return Ok(0);
        }
        if let Err(e) = journal.replay_dead(store) {
            tracing::warn!("spend journal of a stopped process not applied yet: {e}");
        }
        store.load_usage().map(|stored| reconciler.absorb(registry, stored))
    });
    match outcome {
        Ok((_, Ok(0))) => {}
        Ok((_, Ok(added))) => tracing::debug!(added, "usage settled by another process counted here"),
        Ok((_, Err(e))) => tracing::warn!("usage of other processes not read back yet: {e}"),
        Err(e) => tracing::warn!("governance usage could not be saved, kept in the spend journal: {e}"),
    }
    alive
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
    /// The live meters.
    pub registry: Arc<Registry>,
    /// What this process expects the store to hold.
    pub reconciler: Arc<Reconciler>,
    /// Another journal owner was alive at the last tick.
    pub watching: AtomicBool,
}

impl UsageFlush {
    async fn flush_now(&self) {
        let (journal, store) = (self.journal.clone(), self.store.clone());
        let (registry, reconciler) = (self.registry.clone(), self.reconciler.clone());
        let watching = self.watching.load(Ordering::Acquire);
        let alive = tokio::task::spawn_blocking(move || {
            flush_and_reconcile(&journal, store.as_ref(), &registry, &reconciler, watching)
        })
        .await
        .unwrap_or(watching);
        if watching && !alive {
            tracing::info!("the other asbru process sharing this data dir has stopped; its usage is counted");
        }
        self.watching.store(alive, Ordering::Release);
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
