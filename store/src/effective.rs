//! The effective config: the file's process settings with the store's providers and
//! governance (model price rows included), what the gateway builds its snapshot from.

use asbru_config::Config;
use asbru_config::governance::GovernanceConfig;

use crate::backend::entities::load_governance;
use crate::backend::{ConfigStore, StoreError};

/// The file's process settings with the store's providers and governance: what a snapshot is
/// built from when a config store is in use, model price rows included.
pub fn effective_config(file: &Config, store: &dyn ConfigStore) -> Result<Config, StoreError> {
    let mut config = file.clone();
    config.providers = store.providers()?;
    let file_governance = file.governance.clone().unwrap_or_default();
    let mut governance = GovernanceConfig {
        auth_config: match store.setting("auth_config")? {
            Some(value) => Some(value),
            None => file_governance.auth_config,
        },
        ..Default::default()
    };
    load_governance(store, &mut governance)?;
    config.governance = Some(governance);
    Ok(config)
}
