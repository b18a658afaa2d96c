//! Live reload after a management write: the write commits (bumping `config_version`), then the
//! node rebuilds its `Live` from the store and installs it before replying, so the caller's next
//! request already sees the change. Rebuilds are coalesced: writers queue on one lock, and a
//! rebuild covers every write committed before it started, so a burst of writes causes a few
//! rebuilds, not one each. Other nodes see the change through the store sync (PostgreSQL
//! LISTEN/NOTIFY, else the version poll).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use asbru_filters::Live;
use asbru_store::backend::StoreError;
use tokio::sync::Mutex;

use crate::state::Gateway;

/// Write and rebuild generations.
#[derive(Debug, Default)]
pub struct Reloader {
    /// Writes committed so far.
    committed: AtomicU64,
    /// The committed count the installed `Live` covers.
    built: Mutex<u64>,
    /// Rebuilds done (for tests and logs).
    rebuilds: AtomicU64,
}

impl Reloader {
    /// Holds off management rebuilds while the caller (the store sync, on a blocking thread)
    /// builds a config: builds must not interleave, since each marks the meters it uses.
    pub fn exclusive(&self) -> tokio::sync::MutexGuard<'_, u64> {
        self.built.blocking_lock()
    }

    /// How many rebuilds writes have caused.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }
}

/// Called after a write committed: returns once the installed config includes it.
pub async fn after_write(state: &Arc<Gateway>) -> Result<(), StoreError> {
    let reloader = &state.reloader;
    let mine = reloader.committed.fetch_add(1, Ordering::AcqRel) + 1;
    let mut built = reloader.built.lock().await;
    if *built >= mine {
        return Ok(());
    }
    // Every write counted up to here committed before this rebuild reads the store.
    let covers = reloader.committed.load(Ordering::Acquire);
    let rebuild_state = state.clone();
    tokio::task::spawn_blocking(move || rebuild(&rebuild_state))
        .await
        .map_err(|e| StoreError::Unavailable(format!("config rebuild did not finish: {e}")))??;
    *built = covers;
    reloader.rebuilds.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Rebuilds `Live` from the store and the file's process settings, and installs it.
fn rebuild(state: &Gateway) -> Result<(), StoreError> {
    let store = state.store.as_ref().ok_or(StoreError::Disabled)?;
    // Read before the config: the view built below includes at least this version.
    let version = store.config_version()?;
    let config = crate::layers::effective(&state.file, store.as_ref())?;
    let (live, warnings) = Live::build(&config, &state.registry, crate::state::unix_now());
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    crate::dns::resolve_all(&live.snapshot);
    state.install(live, &config);
    state.installed_version.store(version, Ordering::Release);
    Ok(())
}
