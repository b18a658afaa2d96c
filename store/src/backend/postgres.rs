//! The PostgreSQL backend: the same schema and behaviour as SQLite, over an r2d2 pool of blocking
//! `postgres` clients. Migrations run under an advisory lock so concurrent start-ups of several
//! gateway nodes apply them once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::fallible_iterator::FallibleIterator;
use r2d2_postgres::postgres::{self, NoTls};
use serde_json::Value;

use super::entities::EntityKind;
use super::migrate::{self, Migration};
use super::pg_shared::{db_error, write_usage};
use super::tables::{Child, Column, ColumnType, Table, not_null_fallback, table};
use super::{
    AuditEntry, ConfigStore, KeyRow, StoreError, StoredDoc, Tx, TxBody, join_provider, panic_message, split_provider,
};
use crate::secrets::{Cipher, EncryptionStatus};
use asbru_config::model::ProviderConfig;
use asbru_config::usage::{SpendEntry, UsageRecord};
use std::sync::Arc;

/// Advisory lock id taken while migrating ("asbru" in ASCII).
const MIGRATION_LOCK: i64 = 0x0061_7362_7275;

/// Test suites' throwaway databases: connects to `base_url` (`ASBRU_TEST_POSTGRES_URL`),
/// creates database `name`, and returns a connection string for it.
pub fn scratch_database(base_url: &str, name: &str) -> Result<String, StoreError> {
    let unavailable = |e: postgres::Error| StoreError::Unavailable(e.to_string());
    let mut admin = postgres::Client::connect(base_url, NoTls).map_err(unavailable)?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .map_err(unavailable)?;
    let mut config: postgres::Config = base_url
        .parse()
        .map_err(|e: postgres::Error| StoreError::Unavailable(e.to_string()))?;
    config.dbname(name);
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_string();
    Ok(format!("host={host} port={port} user={user} dbname={name}"))
}

/// A config store in a PostgreSQL database.
pub struct PostgresStore {
    /// Always `Some` until dropped.
    pool: Option<r2d2::Pool<PostgresConnectionManager<NoTls>>>,
    cipher: Option<Arc<Cipher>>,
    connect: postgres::Config,
    /// The connection that LISTENs for change notifications (the sync thread's only).
    listener: Mutex<Option<postgres::Client>>,
}

impl Drop for PostgresStore {
    /// The synchronous client closes each connection by blocking on a runtime of its own,
    /// which panics on a thread that drives an async runtime (the last owner may be a
    /// background service, such as the config sync). So the pool and the listening connection
    /// are dropped on a thread of their own.
    fn drop(&mut self) {
        let pool = self.pool.take();
        let listener = self.listener.get_mut().ok().and_then(Option::take);
        if pool.is_none() && listener.is_none() {
            return;
        }
        let closing = std::thread::Builder::new()
            .name("asbru config store close".into())
            .spawn(move || drop((pool, listener)));
        if let Ok(thread) = closing {
            let _ = thread.join();
        }
    }
}

/// The channel committed writes NOTIFY.
const CHANNEL: &str = "asbru_config";

fn stored_doc(text: &str, status: String) -> Result<StoredDoc, StoreError> {
    let doc = serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(StoredDoc { doc, status })
}

impl PostgresStore {
    /// Connects with a `postgres://` URL or `key=value` string, and migrates to the latest schema.
    pub fn open(url: &str, max_open: u32, max_idle: u32) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_at(url, max_open, max_idle, migrate::latest_version())
    }

    /// Connects and migrates up to `target` only. For upgrade tests.
    #[doc(hidden)]
    pub fn open_at(url: &str, max_open: u32, max_idle: u32, target: u32) -> Result<PostgresStore, StoreError> {
        let config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Unavailable(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        // One direct connection first, so an unreachable server fails at once with its reason
        // instead of after the pool's connection timeout.
        {
            use r2d2::ManageConnection;
            manager
                .connect()
                .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        }
        let pool = r2d2::Pool::builder()
            .max_size(max_open.max(1))
            .min_idle(Some(max_idle.min(max_open.max(1))))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        let store = PostgresStore {
            pool: Some(pool),
            cipher: None,
            connect: config,
            listener: Mutex::new(None),
        };
        store.migrate(migrate::POSTGRES, target)?;
        Ok(store)
    }

    /// Seals literal secrets with `cipher` on write and opens them on read.
    pub fn with_cipher(mut self, cipher: Option<Arc<Cipher>>) -> PostgresStore {
        self.cipher = cipher;
        self
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the config store is closed".into()))?;
        pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn migrate(&self, migrations: &[Migration], target: u32) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db_error)?;
        let result = run_migrations(&mut conn, migrations, target);
        let unlocked = conn
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .map_err(db_error);
        result.and(unlocked.map(|_| ()))
    }
}

fn run_migrations(conn: &mut postgres::Client, migrations: &[Migration], target: u32) -> Result<(), StoreError> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .map_err(db_error)?;
    let current: i32 = conn
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .map_err(db_error)?
        .get(0);
    let current = current.max(0) as u32;
    let known = migrate::latest_version();
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    for m in migrations.iter().filter(|m| m.version > current && m.version <= target) {
        let failed = |e: postgres::Error| StoreError::Migration {
            version: m.version,
            name: m.name,
            reason: e.to_string(),
        };
        let mut tx = conn.transaction().map_err(failed)?;
        tx.batch_execute(m.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&(m.version as i32), &m.name],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    wrote: bool,
    cipher: Option<&'a Cipher>,
}

impl PgTx<'_, '_> {
    fn doc(
        &mut self,
        sql: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<StoredDoc>, StoreError> {
        let row = self.tx.query_opt(sql, args).map_err(db_error)?;
        row.map(|r| stored_doc(&r.get::<_, String>(0), r.get(1))).transpose()
    }

    fn keys(&mut self, provider: &str) -> Result<Vec<KeyRow>, StoreError> {
        let rows = self
            .tx
            .query(
                "SELECT name, value, config_json, encryption_status FROM provider_keys WHERE provider = $1 ORDER BY position",
                &[&provider],
            )
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| KeyRow {
                name: r.get(0),
                value: r.get(1),
                config_json: r.get(2),
                status: r.get(3),
            })
            .collect())
    }
}

impl Tx for PgTx<'_, '_> {
    fn providers(&mut self) -> Result<BTreeMap<String, ProviderConfig>, StoreError> {
        let rows = self
            .tx
            .query("SELECT name, config_json FROM providers ORDER BY name", &[])
            .map_err(db_error)?;
        let mut out = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let config_json: String = row.get(1);
            let keys = self.keys(&name)?;
            out.insert(name, join_provider(&config_json, keys, self.cipher)?);
        }
        Ok(out)
    }

    fn provider(&mut self, name: &str) -> Result<Option<ProviderConfig>, StoreError> {
        let row = self
            .tx
            .query_opt("SELECT config_json FROM providers WHERE name = $1", &[&name])
            .map_err(db_error)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let config_json: String = row.get(0);
                let keys = self.keys(name)?;
                Ok(Some(join_provider(&config_json, keys, self.cipher)?))
            }
        }
    }

    fn put_provider(&mut self, name: &str, config: &ProviderConfig) -> Result<(), StoreError> {
        let (config_json, keys) = split_provider(config, self.cipher)?;
        self.tx
            .execute(
                "INSERT INTO providers (name, config_json) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json, updated_at = now()",
                &[&name, &config_json],
            )
            .map_err(db_error)?;
        self.tx
            .execute("DELETE FROM provider_keys WHERE provider = $1", &[&name])
            .map_err(db_error)?;
        for (position, key) in keys.iter().enumerate() {
            self.tx
                .execute(
                    "INSERT INTO provider_keys (provider, position, name, value, config_json, encryption_status)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &name,
                        &(position as i32),
                        &key.name,
                        &key.value,
                        &key.config_json,
                        &key.status,
                    ],
                )
                .map_err(db_error)?;
        }
        self.wrote = true;
        Ok(())
    }

    fn delete_provider(&mut self, name: &str) -> Result<bool, StoreError> {
        let n = self
            .tx
            .execute("DELETE FROM providers WHERE name = $1", &[&name])
            .map_err(db_error)?;
        self.wrote |= n > 0;
        Ok(n > 0)
    }

    fn setting(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        let row = self
            .tx
            .query_opt("SELECT value_json FROM settings WHERE key = $1", &[&key])
            .map_err(db_error)?;
        row.map(|r| {
            let text: String = r.get(0);
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("setting {key}: {e}")))
        })
        .transpose()
    }

    fn entities(&mut self, kind: EntityKind) -> Result<Vec<StoredDoc>, StoreError> {
        let sql = format!(
            "SELECT doc_json, encryption_status FROM {} ORDER BY id",
            table(kind).name
        );
        let rows = self.tx.query(&sql, &[]).map_err(db_error)?;
        rows.iter()
            .map(|r| stored_doc(&r.get::<_, String>(0), r.get(1)))
            .collect()
    }

    fn entity(&mut self, kind: EntityKind, id: &str) -> Result<Option<StoredDoc>, StoreError> {
        let sql = format!(
            "SELECT doc_json, encryption_status FROM {} WHERE id = $1",
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
            "SELECT doc_json, encryption_status FROM {} WHERE lookup_hash = $1",
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
        let status = status.as_str();
        if t.lookup {
            self.tx
                .execute(&upsert_sql(&t), &[&id, &doc, &status, &lookup_hash])
                .map_err(db_error)?;
        } else {
            self.tx
                .execute(&upsert_sql(&t), &[&id, &doc, &status])
                .map_err(db_error)?;
        }
        for child in t.children {
            self.tx
                .execute(
                    &format!("DELETE FROM {} WHERE {} = $1", child.table, child.parent),
                    &[&id],
                )
                .map_err(db_error)?;
            self.tx
                .execute(&child_insert_sql(child), &[&id, &doc])
                .map_err(db_error)?;
        }
        self.wrote = true;
        Ok(())
    }

    fn cipher(&self) -> Option<&Cipher> {
        self.cipher
    }

    fn delete_entity(&mut self, kind: EntityKind, id: &str) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE id = $1", table(kind).name);
        let n = self.tx.execute(&sql, &[&id]).map_err(db_error)?;
        self.wrote |= n > 0;
        Ok(n > 0)
    }

    fn put_setting(&mut self, key: &str, value: &Value) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO settings (key, value_json) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = now()",
                &[&key, &value.to_string()],
            )
            .map_err(db_error)?;
        self.wrote = true;
        Ok(())
    }
}

impl ConfigStore for PostgresStore {
    fn transaction(&self, body: &mut TxBody<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db_error)?;
        let (outcome, wrote) = {
            let mut handle = PgTx {
                tx: &mut tx,
                wrote: false,
                cipher: self.cipher.as_deref(),
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut handle)));
            (outcome, handle.wrote)
        };
        match outcome {
            // Dropping `tx` without commit rolls back.
            Err(panic) => Err(StoreError::Panicked(panic_message(panic.as_ref()))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                if wrote {
                    tx.execute("UPDATE config_version SET version = version + 1 WHERE id = 1", &[])
                        .map_err(db_error)?;
                    // Delivered to every listening node when the transaction commits.
                    tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).map_err(db_error)?;
                }
                tx.commit().map_err(db_error)
            }
        }
    }

    fn config_version(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let v: i64 = conn
            .query_one("SELECT version FROM config_version WHERE id = 1", &[])
            .map_err(db_error)?
            .get(0);
        Ok(v.max(0) as u64)
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.conn()?;
        let v: i32 = conn
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
            .map_err(db_error)?
            .get(0);
        Ok(v.max(0) as u32)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute("SELECT 1", &[]).map_err(db_error).map(|_| ())
    }

    fn load_usage(&self) -> Result<Vec<UsageRecord>, StoreError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query("SELECT doc_json FROM governance_usage ORDER BY counter_id", &[])
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let text: String = row.get(0);
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("usage row: {e}")))
            })
            .collect()
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.conn()?
            .execute(
                "INSERT INTO audit_log (at_unix, actor, kind, entity_id, action, doc_sha256) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&entry.at_unix, &entry.actor, &entry.kind, &entry.entity_id, &entry.action, &entry.doc_sha256],
            )
            .map_err(db_error)?;
        Ok(())
    }

    fn audit_log(&self, limit: usize, offset: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = self
            .conn()?
            .query(
                "SELECT at_unix, actor, kind, entity_id, action, doc_sha256 FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
                &[&limit, &offset],
            )
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at_unix: r.get(0),
                actor: r.get(1),
                kind: r.get(2),
                entity_id: r.get(3),
                action: r.get(4),
                doc_sha256: r.get(5),
            })
            .collect())
    }

    fn apply_spend(&self, segment: &str, entries: &[SpendEntry]) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db_error)?;
        let inserted = tx
            .execute(
                "INSERT INTO usage_journal_applied (segment, applied_at) VALUES ($1, extract(epoch from now())::bigint) ON CONFLICT (segment) DO NOTHING",
                &[&segment],
            )
            .map_err(db_error)?;
        if inserted == 0 {
            return Ok(false);
        }
        let mut current: BTreeMap<String, Option<UsageRecord>> = BTreeMap::new();
        // Rows are locked in id order, so two flushes of overlapping meters cannot deadlock.
        let mut ids: Vec<&String> = entries.iter().map(|e| &e.counter_id).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            // A new meter's row is created first, so that the row lock below also covers a
            // meter two processes flush for the first time at once.
            tx.execute(
                "INSERT INTO governance_usage (counter_id, doc_json) VALUES ($1, '{}') ON CONFLICT (counter_id) DO NOTHING",
                &[id],
            )
            .map_err(db_error)?;
            // Locked until commit: another process's flush of the same meter waits.
            let rows = tx
                .query(
                    "SELECT doc_json FROM governance_usage WHERE counter_id = $1 FOR UPDATE",
                    &[id],
                )
                .map_err(db_error)?;
            let record: Option<UsageRecord> = rows
                .first()
                .map(|row| {
                    let text: String = row.get(0);
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("usage row: {e}")))
                })
                .transpose()?;
            // A placeholder row (no counter yet) counts as no record.
            current.insert(id.clone(), record.filter(|r| !r.counter_id.is_empty()));
        }
        for entry in entries {
            let slot = current.entry(entry.counter_id.clone()).or_default();
            *slot = Some(asbru_config::usage::combine(slot.take(), entry));
        }
        for record in current.values().flatten() {
            write_usage(&mut tx, record)?;
        }
        super::leases::take_flushed_spend(&mut tx, segment, entries)?;
        tx.execute(
            "DELETE FROM usage_journal_applied WHERE applied_at < extract(epoch from now())::bigint - 7 * 86400",
            &[],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(true)
    }

    fn lease_grant(
        &self,
        node: &str,
        ask: &super::leases::LeaseAsk<'_>,
    ) -> Result<super::leases::LeaseGrant, StoreError> {
        super::leases::grant(&mut *self.conn()?, node, ask)
    }

    fn lease_return(&self, node: &str, counter_id: &str, window_start: i64, amount: i64) -> Result<(), StoreError> {
        super::leases::give_back(&mut *self.conn()?, node, counter_id, window_start, amount)
    }

    fn lease_renew(&self, node: &str, ttl_seconds: i64) -> Result<(), StoreError> {
        super::leases::renew(&mut *self.conn()?, node, ttl_seconds)
    }

    fn lease_release_node(&self, node: &str) -> Result<u64, StoreError> {
        super::leases::release_node(&mut *self.conn()?, node)
    }

    fn lease_totals(&self) -> Result<Vec<super::leases::LeaseTotals>, StoreError> {
        super::leases::totals(&mut *self.conn()?)
    }

    fn save_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db_error)?;
        for record in records {
            write_usage(&mut tx, record)?;
        }
        tx.commit().map_err(db_error)
    }

    fn wait_for_change(&self, timeout: Duration) {
        let Ok(mut guard) = self.listener.lock() else {
            std::thread::sleep(timeout);
            return;
        };
        if guard.is_none() {
            match self.connect.connect(NoTls) {
                Ok(mut client) => match client.batch_execute(&format!("LISTEN {CHANNEL}")) {
                    Ok(()) => *guard = Some(client),
                    Err(e) => tracing::warn!("cannot LISTEN for config changes, polling instead: {e}"),
                },
                Err(e) => tracing::warn!("cannot open the LISTEN connection, polling instead: {e}"),
            }
        }
        let broken = match guard.as_mut() {
            None => {
                std::thread::sleep(timeout);
                return;
            }
            Some(client) => {
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(timeout);
                FallibleIterator::next(&mut waiting).err()
            }
        };
        if let Some(e) = broken {
            // The connection broke: drop it and reconnect on the next wait.
            tracing::warn!("LISTEN connection lost, reconnecting: {e}");
            *guard = None;
        }
    }
}

/// A document member as SQL: `(($2::text)::jsonb ->> 'name')` with its type's cast, and the
/// table's fallback for NOT NULL columns.
fn extract(table_name: &str, column: &Column, source: &str) -> String {
    let value = cast(&format!("({source} ->> '{}')", column.member), column.kind);
    match not_null_fallback(table_name, column.name) {
        Some("id") => format!("coalesce({value}, $1)"),
        Some(literal) => format!("coalesce({value}, {literal})"),
        None => value,
    }
}

fn cast(text: &str, kind: ColumnType) -> String {
    match kind {
        ColumnType::Text => text.to_string(),
        ColumnType::Real => format!("{text}::double precision"),
        ColumnType::Integer => format!("{text}::bigint"),
        ColumnType::Bool => format!("{text}::boolean"),
    }
}

/// `INSERT ... ON CONFLICT (id) DO UPDATE` for a kind's table: $1 id, $2 document, $3
/// encryption status, $4 lookup hash (virtual keys only).
fn upsert_sql(t: &Table) -> String {
    let document = "($2::text)::jsonb";
    let mut columns = vec!["doc_json".to_string(), "encryption_status".to_string()];
    let mut values = vec!["$2".to_string(), "$3".to_string()];
    if t.lookup {
        columns.push("lookup_hash".into());
        values.push("$4".into());
    }
    for column in t.columns {
        columns.push(column.name.into());
        values.push(extract(t.name, column, document));
    }
    let updates: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {} (id, {}) VALUES ($1, {}) ON CONFLICT (id) DO UPDATE SET {}, updated_at = now()",
        t.name,
        columns.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

/// The child rows of a document: $1 parent id, $2 document.
fn child_insert_sql(child: &Child) -> String {
    let array = format!("coalesce(($2::text)::jsonb -> '{}', '[]'::jsonb)", child.array);
    if let Some(nested) = child.nested {
        return format!(
            "INSERT INTO {} ({}, provider, key_id) SELECT $1::text, e.value ->> 'provider', k.value \
             FROM jsonb_array_elements({array}) AS e(value), \
             jsonb_array_elements_text(coalesce(e.value -> '{nested}', '[]'::jsonb)) AS k(value) \
             ON CONFLICT DO NOTHING",
            child.table, child.parent
        );
    }
    let names: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
    let values: Vec<String> = child
        .columns
        .iter()
        .map(|c| cast(&format!("(e.value ->> '{}')", c.member), c.kind))
        .collect();
    format!(
        "INSERT INTO {} ({}, position, {}) SELECT $1::text, (e.ord - 1)::integer, {} \
         FROM jsonb_array_elements({array}) WITH ORDINALITY AS e(value, ord)",
        child.table,
        child.parent,
        names.join(", "),
        values.join(", ")
    )
}
