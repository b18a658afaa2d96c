//! Opening the store a config names (`config_store`), migrating it to the latest schema.

use std::path::PathBuf;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use std::sync::Arc;

use super::{ConfigStore, StoreError};
use crate::secrets::Cipher;
use asbru_config::env::{self, Resolved};
use asbru_config::model::{Config, ConfigStoreConfig, StoreKind};

/// Opens and migrates the configured store; `None` in file-only mode (`enabled: false`).
/// Without a `config_store` section the default is SQLite at `<data_dir>/config.db`.
pub fn open(config: &Config) -> Result<Option<Box<dyn ConfigStore>>, StoreError> {
    let section = config.config_store.clone().unwrap_or(ConfigStoreConfig {
        enabled: true,
        kind: StoreKind::Sqlite,
        config: Default::default(),
    });
    if !section.enabled {
        return Ok(None);
    }
    let conn = &section.config;
    let cipher = cipher(config)?.map(Arc::new);
    match section.kind {
        StoreKind::Sqlite => {
            let path = conn
                .path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(&config.server.data_dir).join("config.db"));
            Ok(Some(Box::new(SqliteStore::open(&path)?.with_cipher(cipher))))
        }
        StoreKind::Postgres => {
            let url = postgres_connection_string(conn, "config_store.config")?;
            let store = PostgresStore::open(
                &url,
                conn.max_open_conns.unwrap_or(50),
                conn.max_idle_conns.unwrap_or(5),
            )?;
            Ok(Some(Box::new(store.with_cipher(cipher))))
        }
    }
}

/// The at-rest cipher from `encryption_key` (or `ASBRU_ENCRYPTION_KEY`, or Bifrost's
/// `BIFROST_ENCRYPTION_KEY`); without one, secrets are stored in plaintext and a warning is logged.
fn cipher(config: &Config) -> Result<Option<Cipher>, StoreError> {
    let material = match &config.encryption_key {
        Some(raw) => Some(resolve(raw, "encryption_key")?),
        None => std::env::var("ASBRU_ENCRYPTION_KEY")
            .or_else(|_| std::env::var("BIFROST_ENCRYPTION_KEY"))
            .ok()
            .filter(|v| !v.is_empty()),
    };
    match material {
        Some(material) => Cipher::derive(&material)
            .map(Some)
            .map_err(|e| StoreError::Unavailable(e.to_string())),
        None => {
            tracing::warn!(
                "no encryption_key is set: provider keys and virtual keys are stored in plaintext in the config store"
            );
            Ok(None)
        }
    }
}

fn resolve(raw: &str, what: &str) -> Result<String, StoreError> {
    match env::resolve(raw) {
        Resolved::Value(v) => Ok(v),
        Resolved::MissingEnv(var) => Err(StoreError::Unavailable(format!(
            "{what} refers to environment variable {var}, which is not set"
        ))),
    }
}

/// Builds a `key=value` connection string, quoting values; `section` names the settings in
/// errors (`config_store.config`, `logs_store.config`).
pub fn postgres_connection_string(
    conn: &asbru_config::model::StoreConnection,
    section: &str,
) -> Result<String, StoreError> {
    match conn.ssl_mode.as_deref().unwrap_or("disable") {
        "disable" | "allow" | "prefer" => {}
        other => {
            return Err(StoreError::Unavailable(format!(
                "{section}.ssl_mode {other:?} needs TLS to PostgreSQL, which this version does not support yet; use disable"
            )));
        }
    }
    if let Some(url) = &conn.url {
        return resolve(url, &format!("{section}.url"));
    }
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = vec![format!("host={}", quote(conn.host.as_deref().unwrap_or("localhost")))];
    if let Some(port) = &conn.port {
        let port = match port {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        parts.push(format!("port={}", quote(&port)));
    }
    if let Some(user) = &conn.user {
        parts.push(format!("user={}", quote(&resolve(user, &format!("{section}.user"))?)));
    }
    if let Some(password) = &conn.password {
        parts.push(format!(
            "password={}",
            quote(&resolve(password, &format!("{section}.password"))?)
        ));
    }
    if let Some(db) = &conn.db_name {
        parts.push(format!("dbname={}", quote(db)));
    }
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let conn: asbru_config::model::StoreConnection = serde_json::from_value(serde_json::json!({
            "host": "db", "port": "5433", "user": "asbru", "password": "it's", "db_name": "cfg"
        }))
        .expect("valid");
        assert_eq!(
            postgres_connection_string(&conn, "config_store.config").expect("url"),
            "host='db' port='5433' user='asbru' password='it\\'s' dbname='cfg'"
        );
        let tls: asbru_config::model::StoreConnection =
            serde_json::from_value(serde_json::json!({"ssl_mode": "require"})).expect("valid");
        assert!(postgres_connection_string(&tls, "config_store.config").is_err());
    }
}
