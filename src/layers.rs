//! The two config layers: the file and the config store. Three modes:
//! - file-only (`config_store.enabled: false`): the file is the config; nothing is persisted;
//! - bootstrap: the file's providers and governance seed the store once, and the store records
//!   it (`seeded_from_file`); afterwards the store wins, even when it was emptied on purpose, and
//!   the file's copies are ignored with one log line saying so (`asbru serve --reseed` replaces
//!   them from the file). A store that holds data but no marker (written by another tool) is
//!   kept as it is and marked;
//! - store as source of truth: a minimal file with `config_store` and no providers.
//!
//! Listener, client and other process settings always come from the file.

use std::sync::Arc;

use asbru_config::Config;
use asbru_store::backend::entities::{replace_governance, store_has_data};
use asbru_store::backend::{self, ConfigStore, StoreError};

/// Settings key recording the last seeding from the file.
const SEEDED: &str = "seeded_from_file";

/// The effective config and the store behind it.
pub struct Layers {
    /// The config the snapshot is built from.
    pub config: Config,
    /// The store, unless in file-only mode.
    pub store: Option<Arc<dyn ConfigStore>>,
}

impl Layers {
    /// The store to write to; in file-only mode, [`StoreError::Disabled`] for every write.
    pub fn writable(&self) -> Result<&Arc<dyn ConfigStore>, StoreError> {
        self.store.as_ref().ok_or(StoreError::Disabled)
    }
}

/// Opens the store the file names and settles which layer wins. `reseed` replaces the store's
/// providers and governance with the file's.
pub fn settle(file: &Config, reseed: bool) -> Result<Layers, StoreError> {
    let Some(store) = backend::open(file)? else {
        tracing::info!("config store disabled: running from the file only; admin writes are refused");
        return Ok(Layers {
            config: file.clone(),
            store: None,
        });
    };
    let store: Arc<dyn ConfigStore> = Arc::from(store);
    let seeded = store.setting(SEEDED)?.is_some();
    let has_data = !seeded && store_has_data(store.as_ref())?;
    if !seeded && has_data {
        if store.providers()?.is_empty() && !file.providers.is_empty() {
            tracing::warn!(
                "config store holds governance data but no providers, and was not seeded from a file: it is kept as the source of truth, so the file's providers are not loaded (run `asbru serve --reseed` to load them)"
            );
        } else {
            tracing::info!("config store holds data it was not seeded with: it is kept as the source of truth");
        }
        store.put_setting(SEEDED, &serde_json::json!({"adopted": true}))?;
    }
    if reseed || (!seeded && !has_data) {
        seed(store.as_ref(), file)?;
        let seeded = asbru_store::backend::AuditEntry {
            at_unix: crate::state::unix_now(),
            actor: if reseed { "cli" } else { "file" }.to_string(),
            kind: "config".to_string(),
            entity_id: None,
            action: "seed".to_string(),
            doc_sha256: None,
        };
        if let Err(e) = store.append_audit(&seeded) {
            tracing::warn!("the seeding is done, but its audit entry could not be recorded: {e}");
        }
        if reseed {
            tracing::info!(
                "config store re-seeded from the file (--reseed): its providers and governance were replaced"
            );
        } else {
            tracing::info!("config store was empty: seeded with the file's providers and governance");
        }
    }
    match file.source_of_truth.as_deref() {
        Some(mode @ ("split" | "config.json")) if !reseed => {
            let written = crate::source_of_truth::apply(store.as_ref(), file, mode)?;
            if !written.is_empty() {
                tracing::info!(
                    "source_of_truth {mode:?}: applied from the file: {}",
                    written.join(", ")
                );
            }
        }
        _ if seeded && !reseed && (!file.providers.is_empty() || file.governance.is_some()) => {
            let differing = crate::source_of_truth::differing(store.as_ref(), file)?;
            if differing.is_empty() {
                tracing::info!("config store was seeded from the file before and is the source of truth");
            } else {
                tracing::warn!(
                    "config store was seeded from the file before and is the source of truth; these file entities differ from the store and are not applied: {}. Run `asbru serve --reseed` to replace the store's from the file, or set source_of_truth: split (apply changed entities) or config.json (the file's sections win)",
                    differing.join(", ")
                );
            }
        }
        _ => {}
    }
    let config = effective(file, store.as_ref())?;
    Ok(Layers {
        config,
        store: Some(store),
    })
}

/// The file's process settings with the store's providers.
pub fn effective(file: &Config, store: &dyn ConfigStore) -> Result<Config, StoreError> {
    asbru_store::effective::effective_config(file, store)
}

/// Replaces the store's providers and governance with the file's, in one transaction.
fn seed(store: &dyn ConfigStore, file: &Config) -> Result<(), StoreError> {
    let governance = file.governance.clone().unwrap_or_default();
    store.transaction(&mut |tx| {
        for name in tx.providers()?.keys() {
            if !file.providers.contains_key(name) {
                tx.delete_provider(name)?;
            }
        }
        for (name, provider) in &file.providers {
            tx.put_provider(name, provider)?;
        }
        replace_governance(tx, &governance)?;
        if let Some(auth) = &governance.auth_config {
            // The admin password is stored as its Argon2id hash, never as given.
            tx.put_setting("auth_config", &crate::admin::auth::AdminAuth::stored_form(auth.clone()))?;
        }
        tx.put_setting(SEEDED, &serde_json::json!({"providers": file.providers.len()}))
    })
}
