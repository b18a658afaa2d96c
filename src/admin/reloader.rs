//! [`Reloader`]: the write and rebuild generations the live reload after management writes
//! coordinates on (see `reload`). Kept apart from the reload itself, which needs the gateway's
//! state, so the state can hold a `Reloader` without a module cycle.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

/// Write and rebuild generations.
#[derive(Debug, Default)]
pub struct Reloader {
    /// Writes committed so far.
    pub(super) committed: AtomicU64,
    /// The committed count the installed `Live` covers.
    pub(super) built: Mutex<u64>,
    /// Rebuilds done (for tests and logs).
    pub(super) rebuilds: AtomicU64,
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
