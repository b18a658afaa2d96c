//! Bifrost's `source_of_truth`: how the file's providers and governance meet a config store that
//! already holds them.
//!
//! - `"split"`: each file entity (a provider by name, a governance entity by id) is recorded by
//!   the hash of its file form. At start, an entity whose file form changed since it was last
//!   applied is written to the store; the others keep their stored form, so edits made through
//!   the management API or the dashboard survive a restart. Store-only entities are kept.
//! - `"config.json"`: each section the file fills (providers; each governance kind) replaces the
//!   store's at every start; sections the file leaves empty keep the store's.
//! - absent: the file seeds an empty store once, and the store wins afterwards (see
//!   `layers.rs`); [`differing`] names the file entities that differ from the store, so the
//!   operator knows what `--reseed` or a `source_of_truth` would apply.

use std::collections::HashMap;

use asbru_config::Config;
use asbru_config::governance::GovernanceConfig;
use asbru_store::backend::entities::{Entity, Field, KindVisitor, each_governance_kind};
use asbru_store::backend::{ConfigStore, StoreError, Tx};
use sha2::{Digest, Sha256};

/// Settings key holding the hash of each file entity as last applied (`"split"`).
const FILE_HASHES: &str = "file_entity_hashes";

fn hash_of<T: serde::Serialize>(item: &T) -> String {
    let bytes = serde_json::to_vec(item).unwrap_or_default();
    format!("{:x}", Sha256::digest(&bytes))
}

/// Applies the file under `mode` (`"split"` or `"config.json"`); returns what was written, as
/// `kind/id` names.
pub fn apply(store: &dyn ConfigStore, file: &Config, mode: &str) -> Result<Vec<String>, StoreError> {
    let governance = file.governance.clone().unwrap_or_default();
    let recorded: HashMap<String, String> = store
        .setting(FILE_HASHES)?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    // Split, with no file entity changed since it was last applied: nothing is written (a write
    // would bump the config version and make every node rebuild).
    if mode == "split" && file_hashes(file, &governance)? == recorded {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    store.transaction(&mut |tx| {
        written.clear();
        let mut hashes = HashMap::new();
        let whole = mode == "config.json";
        if whole && !file.providers.is_empty() {
            for name in tx.providers()?.keys() {
                if !file.providers.contains_key(name) {
                    tx.delete_provider(name)?;
                }
            }
        }
        for (name, provider) in &file.providers {
            let key = format!("provider/{name}");
            let hash = hash_of(provider);
            if whole || recorded.get(&key) != Some(&hash) {
                tx.put_provider(name, provider)?;
                written.push(key.clone());
            }
            hashes.insert(key, hash);
        }
        each_governance_kind(&mut Apply {
            tx: &mut *tx,
            governance: &governance,
            whole,
            recorded: &recorded,
            hashes: &mut hashes,
            written: &mut written,
        })?;
        tx.put_setting(FILE_HASHES, &serde_json::json!(hashes))
    })?;
    Ok(written)
}

/// The hash of each file entity, by `kind/id`.
fn file_hashes(file: &Config, governance: &GovernanceConfig) -> Result<HashMap<String, String>, StoreError> {
    struct Hashes<'a>(&'a GovernanceConfig, HashMap<String, String>);
    impl KindVisitor for Hashes<'_> {
        fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
            if field.seeded {
                for item in (field.get)(self.0) {
                    if let Some(id) = item.entity_id() {
                        self.1.insert(format!("{}/{id}", T::KIND.as_str()), hash_of(item));
                    }
                }
            }
            Ok(())
        }
    }
    let mut hashes = Hashes(governance, HashMap::new());
    for (name, provider) in &file.providers {
        hashes.1.insert(format!("provider/{name}"), hash_of(provider));
    }
    each_governance_kind(&mut hashes)?;
    Ok(hashes.1)
}

struct Apply<'a, 'b> {
    tx: &'a mut (dyn Tx + 'b),
    governance: &'a GovernanceConfig,
    whole: bool,
    recorded: &'a HashMap<String, String>,
    hashes: &'a mut HashMap<String, String>,
    written: &'a mut Vec<String>,
}

impl KindVisitor for Apply<'_, '_> {
    fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
        let items = (field.get)(self.governance);
        if !field.seeded {
            return Ok(());
        }
        if self.whole && !items.is_empty() {
            for old in self.tx.list::<T>()? {
                if let Some(id) = old.entity_id() {
                    self.tx.delete::<T>(&id)?;
                }
            }
        }
        for item in items {
            let Some(id) = item.entity_id() else { continue };
            let key = format!("{}/{id}", T::KIND.as_str());
            let hash = hash_of(item);
            if self.whole && !items.is_empty() || self.recorded.get(&key) != Some(&hash) {
                self.tx.put(item)?;
                self.written.push(key.clone());
            }
            self.hashes.insert(key, hash);
        }
        Ok(())
    }
}

/// The file entities whose stored form differs from the file's (or that the store lacks), as
/// `kind/id` names.
pub fn differing(store: &dyn ConfigStore, file: &Config) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let stored = store.providers()?;
    for (name, provider) in &file.providers {
        let same = stored
            .get(name)
            .is_some_and(|s| serde_json::to_value(s).ok() == serde_json::to_value(provider).ok());
        if !same {
            out.push(format!("provider/{name}"));
        }
    }
    let governance = file.governance.clone().unwrap_or_default();
    each_governance_kind(&mut Differ {
        store,
        governance: &governance,
        out: &mut out,
    })?;
    Ok(out)
}

struct Differ<'a> {
    store: &'a dyn ConfigStore,
    governance: &'a GovernanceConfig,
    out: &'a mut Vec<String>,
}

impl KindVisitor for Differ<'_> {
    fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
        let items = (field.get)(self.governance);
        if !field.seeded || items.is_empty() {
            return Ok(());
        }
        let stored: HashMap<String, serde_json::Value> = self
            .store
            .list::<T>()?
            .into_iter()
            .filter_map(|s| Some((s.entity_id()?, serde_json::to_value(&s).ok()?)))
            .collect();
        for item in items {
            let Some(id) = item.entity_id() else { continue };
            if stored.get(&id) != serde_json::to_value(item).ok().as_ref() {
                self.out.push(format!("{}/{id}", T::KIND.as_str()));
            }
        }
        Ok(())
    }
}
