//! Keeps the snapshot in step with the config store: polls `config_version` every 500 ms (woken
//! earlier by PostgreSQL LISTEN/NOTIFY) and, when it moved (a write by the admin API, another process or another node), rebuilds the snapshot
//! from the store and swaps it. A rebuild that fails keeps the old snapshot and logs why.

use std::sync::Arc;
use std::time::Duration;

use asbru_config::Config;
use asbru_filters::Live;
use asbru_store::backend::ConfigStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::Gateway;

/// How often the store's version is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The background service.
pub struct StoreSync {
    /// Shared state whose snapshot is swapped.
    pub state: Arc<Gateway>,
    /// The store.
    pub store: Arc<dyn ConfigStore>,
    /// The file's config (process settings and everything not in the store).
    pub file: Config,
}

impl StoreSync {
    /// Rebuilds the snapshot if the store moved past `seen`; returns the version now served.
    fn refresh(&self, seen: Option<u64>) -> Option<u64> {
        let version = match self.store.config_version() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("config store unreachable, still serving the last snapshot: {e}");
                return seen;
            }
        };
        if seen == Some(version) {
            return seen;
        }
        if self.state.installed_version.load(std::sync::atomic::Ordering::Acquire) == version {
            // A management write on this node already installed this version.
            return Some(version);
        }
        // Management rebuilds wait while this one runs (builds must not interleave).
        let _exclusive = self.state.reloader.exclusive();
        match crate::layers::effective(&self.file, self.store.as_ref()) {
            Ok(config) => {
                let (live, warnings) = Live::build(&config, &self.state.registry, crate::state::unix_now());
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                crate::dns::resolve_all(&live.snapshot);
                self.state.install(live, &config);
                self.state
                    .installed_version
                    .store(version, std::sync::atomic::Ordering::Release);
                if seen.is_some() {
                    tracing::info!(version, "config store changed: snapshot rebuilt");
                }
                Some(version)
            }
            Err(e) => {
                tracing::warn!("config store changed but could not be read, keeping the old snapshot: {e}");
                seen
            }
        }
    }
}

#[async_trait]
impl BackgroundService for StoreSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The snapshot at start-up was built from the store already; remember its version.
        let store = self.store.clone();
        let mut seen = tokio::task::spawn_blocking(move || store.config_version().ok())
            .await
            .ok()
            .flatten();
        let sync = Arc::new(StoreSync {
            state: self.state.clone(),
            store: self.store.clone(),
            file: self.file.clone(),
        });
        loop {
            // PostgreSQL wakes this early on a NOTIFY from any node; otherwise it is a poll.
            let store = self.store.clone();
            tokio::select! {
                _ = tokio::task::spawn_blocking(move || store.wait_for_change(POLL_INTERVAL)) => {}
                _ = shutdown.changed() => return,
            }
            let sync = sync.clone();
            seen = tokio::task::spawn_blocking(move || sync.refresh(seen))
                .await
                .unwrap_or(seen);
        }
    }
}
