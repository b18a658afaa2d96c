//! The SQLite backend: one file (`config.db` under the data dir by default), WAL, `synchronous=NORMAL`,
//! foreign keys on, a busy timeout, and an r2d2 pool.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{self, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::entities::EntityKind;
use super::migrate::{self, Migration};
use super::tables::{Child, Column, Table, not_null_fallback, table};
use super::{
    AuditEntry, ConfigStore, KeyRow, StoreError, StoredDoc, Tx, TxBody, join_provider, panic_message, split_provider,
};
use crate::secrets::{Cipher, EncryptionStatus};
use asbru_config::model::ProviderConfig;
use asbru_config::usage::{SpendEntry, UsageRecord};
use std::sync::Arc;

/// How long a writer waits for the database lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A config store in a SQLite file.
pub struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
    cipher: Option<Arc<Cipher>>,
}

fn stored_doc(text: &str, status: String) -> Result<StoredDoc, StoreError> {
    let doc = serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(StoredDoc { doc, status })
}

fn db_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, message) = &e {
        match code.code {
            rusqlite::ErrorCode::ConstraintViolation => {
                return StoreError::Conflict(message.clone().unwrap_or_else(|| e.to_string()));
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(format!("the database is locked by another process: {e}"));
            }
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt => {
                return StoreError::Unavailable(format!("the file is not a usable SQLite database: {e}"));
            }
            _ => {}
        }
    }
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) and migrates to the latest schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_at(path, migrate::latest_version())
    }

    /// Opens and migrates up to `target` only. For upgrade tests.
    #[doc(hidden)]
    pub fn open_at(path: &Path, target: u32) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        });
        // One direct connection first, so a corrupt or locked file fails at once with its reason
        // instead of after the pool's connection timeout.
        {
            use r2d2::ManageConnection;
            let probe = manager.connect().map_err(|e| match db_error(e) {
                StoreError::Database(reason) => {
                    StoreError::Unavailable(format!("cannot open {}: {reason}", path.display()))
                }
                other => other,
            })?;
            probe
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
                .map_err(db_error)?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let store = SqliteStore { pool, cipher: None };
        store.migrate(migrate::SQLITE, target)?;
        Ok(store)
    }

    /// Seals literal secrets with `cipher` on write and opens them on read.
    pub fn with_cipher(mut self, cipher: Option<Arc<Cipher>>) -> SqliteStore {
        self.cipher = cipher;
        self
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn migrate(&self, migrations: &[Migration], target: u32) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
            )",
        )
        .map_err(db_error)?;
        // IMMEDIATE takes the write lock first, so concurrent start-ups migrate one at a time.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let current: u32 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(db_error)?;
        let known = migrate::latest_version();
        if current > known {
            return Err(StoreError::SchemaTooNew { found: current, known });
        }
        for m in migrations.iter().filter(|m| m.version > current && m.version <= target) {
            let failed = |e: rusqlite::Error| StoreError::Migration {
                version: m.version,
                name: m.name,
                reason: e.to_string(),
            };
            tx.execute_batch(m.sql).map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                params![m.version, m.name],
            )
            .map_err(failed)?;
        }
        tx.commit().map_err(db_error)
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    wrote: bool,
    cipher: Option<&'a Cipher>,
}

impl Tx for SqliteTx<'_> {
    fn providers(&mut self) -> Result<BTreeMap<String, ProviderConfig>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT name, config_json FROM providers ORDER BY name")
            .map_err(db_error)?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        let mut out = BTreeMap::new();
        for (name, config_json) in rows {
            let keys = self.keys(&name)?;
            out.insert(name, join_provider(&config_json, keys, self.cipher)?);
        }
        Ok(out)
    }

    fn provider(&mut self, name: &str) -> Result<Option<ProviderConfig>, StoreError> {
        let row: Option<String> = self
            .tx
            .query_row("SELECT config_json FROM providers WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_error)?;
        match row {
            None => Ok(None),
            Some(config_json) => Ok(Some(join_provider(&config_json, self.keys(name)?, self.cipher)?)),
        }
    }

    fn put_provider(&mut self, name: &str, config: &ProviderConfig) -> Result<(), StoreError> {
        let (config_json, keys) = split_provider(config, self.cipher)?;
        self.tx
            .execute(
                "INSERT INTO providers (name, config_json) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json, updated_at = CURRENT_TIMESTAMP",
                params![name, config_json],
            )
            .map_err(db_error)?;
        self.tx
            .execute("DELETE FROM provider_keys WHERE provider = ?1", [name])
            .map_err(db_error)?;
        for (position, key) in keys.iter().enumerate() {
            self.tx
                .execute(
                    "INSERT INTO provider_keys (provider, position, name, value, config_json, encryption_status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![name, position as i64, key.name, key.value, key.config_json, key.status],
                )
                .map_err(db_error)?;
        }
        self.wrote = true;
        Ok(())
    }

    fn delete_provider(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .tx
            .execute("DELETE FROM providers WHERE name = ?1", [name])
            .map_err(db_error)?;
        self.wrote |= n > 0;
        Ok(n > 0)
    }

    fn setting(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        let row: Option<String> = self
            .tx
            .query_row("SELECT value_json FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db_error)?;
        row.map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}"))))
            .transpose()
    }

    fn entities(&mut self, kind: EntityKind) -> Result<Vec<StoredDoc>, StoreError> {
        let sql = format!(
            "SELECT doc_json, encryption_status FROM {} ORDER BY id",
            table(kind).name
        );
        let mut stmt = self.tx.prepare_cached(&sql).map_err(db_error)?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_error)?
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        rows.into_iter()
            .map(|(text, status)| stored_doc(&text, status))
            .collect()
    }

    fn entity(&mut self, kind: EntityKind, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let sql = format!(
            "SELECT doc_json, encryption_status FROM {} WHERE id = ?1",
            table(kind).name
        );
        self.doc(&sql, &[&id])
    }

    fn entity_by_hash(&mut self, kind: EntityKind, hash: &str) -> Result<Option<StoredDoc>, StoreError> {
        let t = table(kind);
        if !t.lookup {
            return Ok(None);
        }
        let sql = format!(
            "SELECT doc_json, encryption_status FROM {} WHERE lookup_hash = ?1",
            t.name
        );
        self.doc(&sql, &[&hash])
    }

    fn put_entity(
        &mut self,
        kind: EntityKind,
        id: &str,
        doc: &Value,
        lookup_hash: Option<&str>,
        status: EncryptionStatus,
    ) -> Result<(), StoreError> {
        let t = table(kind);
        let doc = doc.to_string();
        self.tx
            .execute(&upsert_sql(&t), params![id, doc, lookup_hash, status.as_str()])
            .map_err(db_error)?;
        for child in t.children {
            self.tx
                .execute(
                    &format!("DELETE FROM {} WHERE {} = ?1", child.table, child.parent),
                    [id],
                )
                .map_err(db_error)?;
            self.tx
                .execute(&child_insert_sql(child), params![id, doc])
                .map_err(db_error)?;
        }
        self.wrote = true;
        Ok(())
    }

    fn cipher(&self) -> Option<&Cipher> {
        self.cipher
    }

    fn delete_entity(&mut self, kind: EntityKind, id: &str) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE id = ?1", table(kind).name);
        let n = self.tx.execute(&sql, [id]).map_err(db_error)?;
        self.wrote |= n > 0;
        Ok(n > 0)
    }

    fn put_setting(&mut self, key: &str, value: &Value) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO settings (key, value_json) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, updated_at = CURRENT_TIMESTAMP",
                params![key, value.to_string()],
            )
            .map_err(db_error)?;
        self.wrote = true;
        Ok(())
    }
}

impl SqliteTx<'_> {
    fn doc(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Option<StoredDoc>, StoreError> {
        let row: Option<(String, String)> = self
            .tx
            .query_row(sql, args, |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_error)?;
        row.map(|(text, status)| stored_doc(&text, status)).transpose()
    }

    fn keys(&self, provider: &str) -> Result<Vec<KeyRow>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT name, value, config_json, encryption_status FROM provider_keys WHERE provider = ?1 ORDER BY position")
            .map_err(db_error)?;
        stmt.query_map([provider], |r| {
            Ok(KeyRow {
                name: r.get(0)?,
                value: r.get(1)?,
                config_json: r.get(2)?,
                status: r.get(3)?,
            })
        })
        .map_err(db_error)?
        .collect::<Result<_, _>>()
        .map_err(db_error)
    }
}

impl ConfigStore for SqliteStore {
    fn transaction(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let mut handle = SqliteTx {
            tx: &tx,
            wrote: false,
            cipher: self.cipher.as_deref(),
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut handle)));
        let wrote = handle.wrote;
        match outcome {
            // Dropping `tx` without commit rolls back.
            Err(panic) => Err(StoreError::Panicked(panic_message(panic.as_ref()))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                if wrote {
                    tx.execute("UPDATE config_version SET version = version + 1 WHERE id = 1", [])
                        .map_err(db_error)?;
                }
                tx.commit().map_err(db_error)
            }
        }
    }

    fn config_version(&self) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let v: i64 = conn
            .query_row("SELECT version FROM config_version WHERE id = 1", [], |r| r.get(0))
            .map_err(db_error)?;
        Ok(v.max(0) as u64)
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.conn()?;
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(db_error)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map_err(db_error)
            .map(|_| ())
    }

    fn load_usage(&self) -> Result<Vec<UsageRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT doc_json FROM governance_usage ORDER BY counter_id")
            .map_err(db_error)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_error)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(db_error)?;
        rows.iter()
            .map(|text| serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("usage row: {e}"))))
            .collect()
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT INTO audit_log (at_unix, actor, kind, entity_id, action, doc_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![entry.at_unix, entry.actor, entry.kind, entry.entity_id, entry.action, entry.doc_sha256],
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn audit_log(&self, limit: usize, offset: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT at_unix, actor, kind, entity_id, action, doc_sha256 FROM audit_log ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )
            .map_err(db_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        stmt.query_map(params![limit, offset], |r| {
            Ok(AuditEntry {
                at_unix: r.get(0)?,
                actor: r.get(1)?,
                kind: r.get(2)?,
                entity_id: r.get(3)?,
                action: r.get(4)?,
                doc_sha256: r.get(5)?,
            })
        })
        .map_err(db_error)?
        .collect::<Result<_, _>>()
        .map_err(db_error)
    }

    fn apply_spend(&self, segment: &str, entries: &[SpendEntry]) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let inserted = tx
            .execute(
                "INSERT INTO usage_journal_applied (segment, applied_at) VALUES (?1, strftime('%s', 'now')) ON CONFLICT (segment) DO NOTHING",
                params![segment],
            )
            .map_err(db_error)?;
        if inserted == 0 {
            return Ok(false);
        }
        let mut current: BTreeMap<String, Option<UsageRecord>> = BTreeMap::new();
        for entry in entries {
            if !current.contains_key(&entry.counter_id) {
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT doc_json FROM governance_usage WHERE counter_id = ?1",
                        params![entry.counter_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db_error)?;
                let record = stored
                    .map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("usage row: {e}"))))
                    .transpose()?;
                current.insert(entry.counter_id.clone(), record);
            }
            let slot = current.entry(entry.counter_id.clone()).or_default();
            *slot = Some(asbru_config::usage::combine(slot.take(), entry));
        }
        for record in current.values().flatten() {
            write_usage(&tx, record)?;
        }
        // Markers are kept a week: a segment left by a crash is replayed at the next start, well within.
        tx.execute(
            "DELETE FROM usage_journal_applied WHERE applied_at < strftime('%s', 'now') - 7 * 86400",
            [],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(true)
    }

    fn save_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        for record in records {
            write_usage(&tx, record)?;
        }
        tx.commit().map_err(db_error)
    }
}

/// Creates or replaces one meter's persisted usage.
fn write_usage(tx: &rusqlite::Transaction<'_>, record: &UsageRecord) -> Result<(), StoreError> {
    let doc = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO governance_usage (counter_id, doc_json) VALUES (?1, ?2)
         ON CONFLICT(counter_id) DO UPDATE SET doc_json = excluded.doc_json, updated_at = CURRENT_TIMESTAMP",
        params![record.counter_id, doc],
    )
    .map_err(db_error)?;
    Ok(())
}

/// `json_extract` of a document member, with the table's fallback for NOT NULL columns.
fn extract(table_name: &str, column: &Column, source: &str) -> String {
    let value = format!("json_extract({source}, '$.{}')", column.member);
    match not_null_fallback(table_name, column.name) {
        Some("id") => format!("coalesce({value}, ?1)"),
        Some(literal) => format!("coalesce({value}, {literal})"),
        None => value,
    }
}

/// `INSERT ... ON CONFLICT(id) DO UPDATE` for a kind's table: ?1 id, ?2 document, ?3 lookup
/// hash, ?4 encryption status.
fn upsert_sql(t: &Table) -> String {
    let mut columns = vec!["doc_json".to_string(), "encryption_status".to_string()];
    let mut values = vec!["?2".to_string(), "?4".to_string()];
    if t.lookup {
        columns.push("lookup_hash".into());
        values.push("?3".into());
    }
    for column in t.columns {
        columns.push(column.name.into());
        values.push(extract(t.name, column, "?2"));
    }
    let updates: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {} (id, {}) VALUES (?1, {}) ON CONFLICT(id) DO UPDATE SET {}, updated_at = CURRENT_TIMESTAMP",
        t.name,
        columns.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

/// The child rows of a document: ?1 parent id, ?2 document.
fn child_insert_sql(child: &Child) -> String {
    if let Some(nested) = child.nested {
        return format!(
            "INSERT OR IGNORE INTO {} ({}, provider, key_id) SELECT ?1, json_extract(e.value, '$.provider'), k.value \
             FROM json_each(?2, '$.{}') e, json_each(e.value, '$.{nested}') k",
            child.table, child.parent, child.array
        );
    }
    let names: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
    let values: Vec<String> = child
        .columns
        .iter()
        .map(|c| format!("json_extract(e.value, '$.{}')", c.member))
        .collect();
    format!(
        "INSERT INTO {} ({}, position, {}) SELECT ?1, CAST(e.key AS INTEGER), {} FROM json_each(?2, '$.{}') e",
        child.table,
        child.parent,
        names.join(", "),
        values.join(", "),
        child.array
    )
}
