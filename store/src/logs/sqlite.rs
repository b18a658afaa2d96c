//! The SQLite log store: its own file (`logs.db`), WAL, `synchronous=NORMAL`, an r2d2 pool
//! whose connections are made on demand, so a file that cannot be opened now is tried again on
//! the next call.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite::{self, OptionalExtension, params_from_iter, types::ToSqlOutput, types::ValueRef};

use super::aggregate;
use super::migrate;
use super::query::{self, Dialect, LogFilter, LogQuery};
use super::row::{LogRow, SqlRef, SqlValue};
use super::{Bucket, FilterData, LogPage, LogStats, LogStore, LogStoreError, ModelBucket, Retained, Retention};

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows in one `INSERT` (40 columns each, under SQLite's 32,766 bound parameters).
const ROWS_PER_STATEMENT: usize = 256;

/// `INSERT` of `rows` rows: an upsert, not `INSERT OR REPLACE`, so a row written again passes
/// through the update triggers that keep the search index and the rollup right.
fn insert_statement(rows: usize) -> String {
    let columns = super::row::COLUMNS;
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let updates: Vec<String> = columns[1..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO logs ({}) VALUES {} ON CONFLICT (id) DO UPDATE SET {}",
        columns.join(", "),
        vec![one; rows].join(", "),
        updates.join(", ")
    )
}

/// Moves the mark of rows already indexed and rolled up to the last row.
const MOVE_INDEX_MARK: &str = "UPDATE logs_indexed SET upto = (SELECT COALESCE(MAX(rowid), 0) FROM logs) WHERE id = 1";

/// Adds the rows above rowid `?1` to the content search index.
const INDEX_NEW_ROWS: &str =
    "INSERT INTO logs_fts (rowid, content_summary) SELECT rowid, content_summary FROM logs WHERE rowid > ?1";

/// Adds the rows above rowid `?1` to the hourly rollup, one upsert per group.
const ROLL_UP_NEW_ROWS: &str = "INSERT INTO logs_rollup \
    SELECT timestamp / 3600000, provider, model, status, object_type, COUNT(*), COALESCE(SUM(latency), 0), \
        COUNT(latency), SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens), \
        SUM(cached_read_tokens), COALESCE(SUM(cost), 0) \
    FROM logs WHERE rowid > ?1 GROUP BY 1, 2, 3, 4, 5 \
    ON CONFLICT (hour, provider, model, status, object_type) DO UPDATE SET \
        requests = requests + excluded.requests, \
        latency_sum = latency_sum + excluded.latency_sum, \
        latency_n = latency_n + excluded.latency_n, \
        prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
        completion_tokens = completion_tokens + excluded.completion_tokens, \
        total_tokens = total_tokens + excluded.total_tokens, \
        cached_read_tokens = cached_read_tokens + excluded.cached_read_tokens, \
        cost = cost + excluded.cost";

/// The batch with one row per id, the last one written winning (as a later insert of the same
/// id would): an id inserted and rewritten in one batch would otherwise pass the update
/// triggers before its row was ever indexed.
fn last_per_id(rows: &[LogRow]) -> Vec<&LogRow> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut kept: Vec<&LogRow> = rows.iter().rev().filter(|r| seen.insert(r.id.as_str())).collect();
    kept.reverse();
    kept
}

/// A log store in a SQLite file.
pub struct SqliteLogStore {
    path: PathBuf,
    pool: r2d2::Pool<SqliteConnectionManager>,
    migrated: AtomicBool,
}

fn db_error(e: rusqlite::Error) -> LogStoreError {
    LogStoreError::Database(e.to_string())
}

impl rusqlite::ToSql for SqlRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlRef::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlRef::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlRef::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            SqlRef::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlValue::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn value_at(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<SqlValue> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
    })
}

/// Every row of a statement, as values.
fn run_rows(conn: &rusqlite::Connection, sql: &query::Sql) -> Result<Vec<Vec<SqlValue>>, LogStoreError> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(db_error)?;
    let columns = stmt.column_count();
    stmt.query_map(params_from_iter(sql.params.iter()), |row| {
        (0..columns)
            .map(|i| value_at(row, i))
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(db_error)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(db_error)
}

impl SqliteLogStore {
    /// A store at `path`; the file (and its directory) is created and migrated on first use.
    pub fn open(path: &Path) -> Result<SqliteLogStore, LogStoreError> {
        let manager = SqliteConnectionManager::file(path).with_init(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        });
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(2))
            .build_unchecked(manager);
        Ok(SqliteLogStore {
            path: path.to_path_buf(),
            pool,
            migrated: AtomicBool::new(false),
        })
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, LogStoreError> {
        if !self.migrated.load(Ordering::Acquire)
            && let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            {
                std::fs::create_dir_all(parent)
                    .map_err(|e| LogStoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
            }
        }
        let mut conn = self
            .pool
            .get()
            .map_err(|e| LogStoreError::Unavailable(format!("cannot open {}: {e}", self.path.display())))?;
        if !self.migrated.load(Ordering::Acquire) {
            migrate_conn(&mut conn)?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(conn)
    }

    fn count(&self, sql: &query::Sql) -> Result<u64, LogStoreError> {
        let conn = self.conn()?;
        let n = conn
            .execute(&sql.text, params_from_iter(sql.params.iter()))
            .map_err(db_error)?;
        Ok(n as u64)
    }
}

fn migrate_conn(conn: &mut rusqlite::Connection) -> Result<(), LogStoreError> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        migrate::TABLE
    ))
    .map_err(db_error)?;
    let current: u32 = conn
        .query_row(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {}", migrate::TABLE),
            [],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    if current > migrate::latest(migrate::SQLITE) {
        return Err(LogStoreError::SchemaTooNew {
            found: current,
            known: migrate::latest(migrate::SQLITE),
        });
    }
    for m in migrate::SQLITE.iter().filter(|m| m.version > current) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        // Another process may have migrated meanwhile.
        let done: Option<u32> = tx
            .query_row(
                &format!("SELECT version FROM {} WHERE version = ?1", migrate::TABLE),
                [m.version],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?;
        if done.is_none() {
            tx.execute_batch(m.sql).map_err(|e| {
                LogStoreError::Database(format!("log store migration {} ({}) failed: {e}", m.version, m.name))
            })?;
            tx.execute(
                &format!("INSERT INTO {} (version, name) VALUES (?1, ?2)", migrate::TABLE),
                rusqlite::params![m.version, m.name],
            )
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
    }
    Ok(())
}

impl LogStore for SqliteLogStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn insert(&self, rows: &[LogRow]) -> Result<(), LogStoreError> {
        let rows = last_per_id(rows);
        let mut conn = self.conn()?;
        // Immediate: the write lock is held from reading the mark to the commit, so no other
        // writer moves it meanwhile.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        // Below the last rowid too: after the newest rows are deleted, SQLite hands their
        // rowids out again.
        let before: i64 = tx
            .query_row(
                "SELECT MIN(upto, (SELECT COALESCE(MAX(rowid), 0) FROM logs)) FROM logs_indexed WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .map_err(db_error)?;
        // Many rows per statement: fewer statements to step, and fewer savepoints.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut stmt = tx.prepare_cached(&insert_statement(chunk.len())).map_err(db_error)?;
            let values: Vec<SqlRef<'_>> = chunk.iter().copied().flat_map(LogRow::refs).collect();
            stmt.execute(params_from_iter(values.iter())).map_err(db_error)?;
        }
        // The rows inserted (not rewritten: a rewritten id keeps its rowid, and its update
        // triggers fix the index and the rollup) enter the search index and the rollup as one set.
        tx.prepare_cached(INDEX_NEW_ROWS)
            .and_then(|mut s| s.execute([before]))
            .map_err(db_error)?;
        tx.prepare_cached(ROLL_UP_NEW_ROWS)
            .and_then(|mut s| s.execute([before]))
            .map_err(db_error)?;
        tx.prepare_cached(MOVE_INDEX_MARK)
            .and_then(|mut s| s.execute([]))
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    fn search(&self, q: &LogQuery) -> Result<LogPage, LogStoreError> {
        let conn = self.conn()?;
        aggregate::search(Dialect::Sqlite, q, &mut |sql| run_rows(&conn, sql))
    }

    fn get(&self, id: &str) -> Result<Option<LogRow>, LogStoreError> {
        let conn = self.conn()?;
        let rows = aggregate::rows_in_order(Dialect::Sqlite, &[id.to_string()], &mut |sql| run_rows(&conn, sql))?;
        Ok(rows.into_iter().next())
    }

    fn stats(&self, filter: &LogFilter) -> Result<LogStats, LogStoreError> {
        let conn = self.conn()?;
        stats_with(&conn, filter)
    }

    fn histogram(&self, filter: &LogFilter, bucket_ms: i64, percentiles: bool) -> Result<Vec<Bucket>, LogStoreError> {
        let conn = self.conn()?;
        aggregate::histogram_with_percentiles(Dialect::Sqlite, filter, bucket_ms, percentiles, &mut |sql| {
            run_rows(&conn, sql)
        })
    }

    fn model_histogram(&self, filter: &LogFilter, bucket_ms: i64) -> Result<Vec<ModelBucket>, LogStoreError> {
        let conn = self.conn()?;
        aggregate::model_histogram(Dialect::Sqlite, filter, bucket_ms, &mut |sql| run_rows(&conn, sql))
    }

    fn filter_data(&self) -> Result<FilterData, LogStoreError> {
        let conn = self.conn()?;
        aggregate::filter_data(Dialect::Sqlite, &mut |sql| run_rows(&conn, sql))
    }

    fn delete_ids(&self, ids: &[String]) -> Result<u64, LogStoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.count(&query::delete_ids(Dialect::Sqlite, ids))
    }

    fn delete_matching(&self, filter: &LogFilter) -> Result<u64, LogStoreError> {
        self.count(&query::delete(Dialect::Sqlite, filter))
    }

    fn retain(&self, rules: &Retention) -> Result<Retained, LogStoreError> {
        let conn = self.conn()?;
        let mut deleted = conn
            .execute("DELETE FROM logs WHERE timestamp < ?1", [rules.delete_before_ms])
            .map_err(db_error)? as u64;
        let total: i64 = conn
            .query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0))
            .map_err(db_error)?;
        let excess = total.saturating_sub(i64::try_from(rules.max_rows).unwrap_or(i64::MAX));
        if excess > 0 {
            deleted += conn
                .execute(
                    "DELETE FROM logs WHERE rowid IN (SELECT rowid FROM logs ORDER BY timestamp ASC LIMIT ?1)",
                    [excess],
                )
                .map_err(db_error)? as u64;
        }
        let blanked = conn
            .execute(
                "UPDATE logs SET input_history = NULL, output_message = NULL, tools = NULL, content_summary = NULL \
                 WHERE timestamp < ?1 AND (input_history IS NOT NULL OR output_message IS NOT NULL OR content_summary IS NOT NULL)",
                [rules.blank_content_before_ms],
            )
            .map_err(db_error)? as u64;
        Ok(Retained { deleted, blanked })
    }

    fn has_rows(&self) -> Result<bool, LogStoreError> {
        let conn = self.conn()?;
        conn.query_row("SELECT EXISTS (SELECT 1 FROM logs)", [], |r| r.get(0))
            .map_err(db_error)
    }
}

fn stats_with(conn: &rusqlite::Connection, filter: &LogFilter) -> Result<LogStats, LogStoreError> {
    aggregate::stats(Dialect::Sqlite, filter, &mut |sql| run_rows(conn, sql))
}
