//! The `ConfigStore`: one blocking API over SQLite and PostgreSQL for the persisted config.
//!
//! Every read and write goes through a [`Tx`], so several writes can be made atomic with
//! [`ConfigStore::transaction`]; the single-operation helpers on `dyn ConfigStore` are one
//! transaction each. Every committed transaction that wrote bumps the `config_version` counter,
//! which running gateways poll to rebuild their snapshot. Async code must reach a store through
//! `spawn_blocking` or a dedicated thread.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::secrets::{self, Cipher, EncryptionStatus};
use asbru_config::model::ProviderConfig;
use entities::EntityKind;

pub mod entities;
pub mod leases;
pub(crate) mod migrate;
pub(crate) mod open;
mod pg_shared;
pub mod postgres;
pub mod sqlite;
pub mod tables;

pub use migrate::{Migration, latest_version};
pub use open::open;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or opened.
    #[error("config store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint: the name is taken (an admin API answers 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database's schema is newer than this binary knows.
    #[error(
        "the config store's schema is at version {found}, newer than this asbru knows ({known}); upgrade asbru instead of using this database with an older version"
    )]
    SchemaTooNew {
        /// Version in the database.
        found: u32,
        /// Latest version this binary has.
        known: u32,
    },
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        /// Version.
        version: u32,
        /// Name.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// Stored data could not be decoded.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The transaction body panicked; everything was rolled back.
    #[error("the transaction panicked and was rolled back: {0}")]
    Panicked(String),
    /// File-only mode: there is no store to write to.
    #[error(
        "config store disabled: this gateway runs from its config file only (config_store.enabled: false); change the file instead"
    )]
    Disabled,
    /// Any other database error.
    #[error("config store error: {0}")]
    Database(String),
}

/// The operations available inside a transaction.
pub trait Tx {
    /// Every provider, with its keys, by name.
    fn providers(&mut self) -> Result<BTreeMap<String, ProviderConfig>, StoreError>;
    /// One provider.
    fn provider(&mut self, name: &str) -> Result<Option<ProviderConfig>, StoreError>;
    /// Creates or replaces a provider and all its keys.
    fn put_provider(&mut self, name: &str, config: &ProviderConfig) -> Result<(), StoreError>;
    /// Deletes a provider and its keys; `false` if it did not exist.
    fn delete_provider(&mut self, name: &str) -> Result<bool, StoreError>;
    /// A settings document (`client`, `auth_config`, `plugins`, `logs_store`, ...).
    fn setting(&mut self, key: &str) -> Result<Option<Value>, StoreError>;
    /// Creates or replaces a settings document.
    fn put_setting(&mut self, key: &str, value: &Value) -> Result<(), StoreError>;
    /// All documents of a kind, ordered by id.
    fn entities(&mut self, kind: EntityKind) -> Result<Vec<StoredDoc>, StoreError>;
    /// One document.
    fn entity(&mut self, kind: EntityKind, id: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// The document of a kind whose lookup hash is `hash`.
    fn entity_by_hash(&mut self, kind: EntityKind, hash: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// Creates or replaces a document (with its lookup hash, for virtual keys, and whether its
    /// secret is encrypted).
    fn put_entity(
        &mut self,
        kind: EntityKind,
        id: &str,
        doc: &Value,
        lookup_hash: Option<&str>,
        status: EncryptionStatus,
    ) -> Result<(), StoreError>;
    /// The cipher for secrets at rest, when `encryption_key` is set.
    fn cipher(&self) -> Option<&Cipher>;
    /// Deletes a document; `false` if it did not exist.
    fn delete_entity(&mut self, kind: EntityKind, id: &str) -> Result<bool, StoreError>;
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at_unix: i64,
    /// Who: the admin user, `file` (seeded from the config file), `cli`, or `unauthenticated`.
    pub actor: String,
    /// Entity kind (`virtual_key`, `provider`, `team`, ...).
    pub kind: String,
    /// Entity id, when the change is about one.
    pub entity_id: Option<String>,
    /// `create`, `update`, `delete`, `rotate`, `seed`.
    pub action: String,
    /// SHA-256 (hex) of the new document as the API shows it (secrets redacted).
    pub doc_sha256: Option<String>,
}

/// A transaction body.
pub type TxBody<'a> = dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + 'a;

/// A persisted config store.
pub trait ConfigStore: Send + Sync {
    /// Runs `body` in one transaction: committed if it returns `Ok`, rolled back on an error or
    /// a panic. A committed transaction that wrote anything bumps the config version.
    fn transaction(&self, body: &mut TxBody<'_>) -> Result<(), StoreError>;
    /// The config version: bumped by every committed write.
    fn config_version(&self) -> Result<u64, StoreError>;
    /// The schema version (the last migration applied).
    fn schema_version(&self) -> Result<u32, StoreError>;
    /// Checks the database answers.
    fn ping(&self) -> Result<(), StoreError>;
    /// Every persisted governance counter (see [`asbru_config::usage`]).
    fn load_usage(&self) -> Result<Vec<asbru_config::usage::UsageRecord>, StoreError>;
    /// Creates or replaces these counters, in one transaction. Usage is not config: this does not
    /// bump the config version.
    fn save_usage(&self, records: &[asbru_config::usage::UsageRecord]) -> Result<(), StoreError>;
    /// Adds a spend journal segment's entries to the persisted meters (see
    /// [`asbru_config::usage::combine`]), in one transaction that also records the segment as
    /// applied. Returns `false`, changing nothing, when the segment was applied before.
    fn apply_spend(&self, segment: &str, entries: &[asbru_config::usage::SpendEntry]) -> Result<bool, StoreError>;
    /// Appends to the audit trail (not config: no version bump).
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The audit trail, newest first.
    fn audit_log(&self, limit: usize, offset: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Grants `node` a lease on a meter (cluster metering; PostgreSQL only).
    fn lease_grant(&self, _node: &str, _ask: &leases::LeaseAsk<'_>) -> Result<leases::LeaseGrant, StoreError> {
        Err(cluster_needs_postgres())
    }
    /// Hands back `amount` of `node`'s lease on a meter's window.
    fn lease_return(&self, _node: &str, _counter_id: &str, _window_start: i64, _amount: i64) -> Result<(), StoreError> {
        Err(cluster_needs_postgres())
    }
    /// Renews every lease `node` holds.
    fn lease_renew(&self, _node: &str, _ttl_seconds: i64) -> Result<(), StoreError> {
        Err(cluster_needs_postgres())
    }
    /// Drops every lease of `node`, whose spend is all in the usage (see [`leases`]).
    fn lease_release_node(&self, _node: &str) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Every meter's leases over all nodes.
    fn lease_totals(&self) -> Result<Vec<leases::LeaseTotals>, StoreError> {
        Err(cluster_needs_postgres())
    }
    /// Blocks until another writer may have changed the config, or `timeout` passes. The default
    /// just waits; PostgreSQL returns early on a NOTIFY from any node's committed write.
    fn wait_for_change(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }
}

fn cluster_needs_postgres() -> StoreError {
    StoreError::Unavailable("cluster metering needs a PostgreSQL config store".into())
}

impl dyn ConfigStore + '_ {
    /// Every provider.
    pub fn providers(&self) -> Result<BTreeMap<String, ProviderConfig>, StoreError> {
        let mut out = BTreeMap::new();
        self.transaction(&mut |tx| {
            out = tx.providers()?;
            Ok(())
        })?;
        Ok(out)
    }

    /// One provider.
    pub fn provider(&self, name: &str) -> Result<Option<ProviderConfig>, StoreError> {
        let mut out = None;
        self.transaction(&mut |tx| {
            out = tx.provider(name)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Creates or replaces a provider.
    pub fn put_provider(&self, name: &str, config: &ProviderConfig) -> Result<(), StoreError> {
        self.transaction(&mut |tx| tx.put_provider(name, config))
    }

    /// Deletes a provider.
    pub fn delete_provider(&self, name: &str) -> Result<bool, StoreError> {
        let mut deleted = false;
        self.transaction(&mut |tx| {
            deleted = tx.delete_provider(name)?;
            Ok(())
        })?;
        Ok(deleted)
    }

    /// A settings document.
    pub fn setting(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let mut out = None;
        self.transaction(&mut |tx| {
            out = tx.setting(key)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Creates or replaces a settings document.
    pub fn put_setting(&self, key: &str, value: &Value) -> Result<(), StoreError> {
        self.transaction(&mut |tx| tx.put_setting(key, value))
    }
}

/// A stored document and how its secret is kept.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// The document.
    pub doc: Value,
    /// `plaintext` or `encrypted`.
    pub status: String,
}

impl From<secrets::SecretError> for StoreError {
    fn from(e: secrets::SecretError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Splits a provider into its row (keys removed) and its key rows, sealing literal key values.
pub(crate) fn split_provider(
    config: &ProviderConfig,
    cipher: Option<&Cipher>,
) -> Result<(String, Vec<KeyRow>), StoreError> {
    let mut without_keys = config.clone();
    let keys = std::mem::take(&mut without_keys.keys);
    let config_json = serde_json::to_string(&without_keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rows = keys
        .into_iter()
        .map(|mut key| {
            // The secret lives only in the `value` column (sealed when a cipher is set).
            let (value, status) = secrets::seal(cipher, &key.value)?;
            key.value = String::new();
            let name = key.name.clone();
            let config_json = serde_json::to_string(&key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(KeyRow {
                name,
                value,
                config_json,
                status: status.as_str().to_string(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((config_json, rows))
}

/// Rebuilds a provider from its row and key rows (in position order).
pub(crate) fn join_provider(
    config_json: &str,
    keys: Vec<KeyRow>,
    cipher: Option<&Cipher>,
) -> Result<ProviderConfig, StoreError> {
    let mut config: ProviderConfig =
        serde_json::from_str(config_json).map_err(|e| StoreError::Corrupt(format!("provider row: {e}")))?;
    for row in keys {
        let mut key: asbru_config::model::KeyConfig =
            serde_json::from_str(&row.config_json).map_err(|e| StoreError::Corrupt(format!("key row: {e}")))?;
        key.value = secrets::open(cipher, &row.value, &row.status)?;
        config.keys.push(key);
    }
    Ok(config)
}

/// A key as stored.
pub(crate) struct KeyRow {
    pub name: Option<String>,
    pub value: String,
    pub config_json: String,
    pub status: String,
}

/// Turns a panic payload into text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
