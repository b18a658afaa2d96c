//! Live reload after a management write: the write commits (bumping `config_version`), then the
//! node rebuilds its `Live` from the store and installs it before replying, so the caller's next
//! request already sees the change. Rebuilds are coalesced: writers queue on one lock, and a
//! rebuild covers every write committed before it started, so a burst of writes causes a few
//! rebuilds, not one each. Other nodes see the change through the store sync (PostgreSQL
//! LISTEN/NOTIFY, else the version poll).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use asbru_filters::Live;
use asbru_store::backend::StoreError;

pub use super::reloader::Reloader;
use crate::state::Gateway;

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
