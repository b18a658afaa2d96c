//! The PostgreSQL log store: a lazily connected pool, so a database that is down at start or
//! goes away is tried again on the next call; migrations under an advisory lock.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use r2d2_postgres::postgres::{self, NoTls};

use super::aggregate;
use super::migrate;
use super::query::{self, Dialect, LogFilter, LogQuery};
use super::row::{COLUMNS, LogRow, SqlRef, SqlValue};
use super::{Bucket, FilterData, LogPage, LogStats, LogStore, LogStoreError, ModelBucket, Retained, Retention};

/// An advisory lock id only the log store's migrations take.
const MIGRATION_LOCK: i64 = 0x6173_6272_756c_6f67;

/// A log store in a PostgreSQL database.
pub struct PostgresLogStore {
    /// Always `Some` until dropped.
    pool: Option<r2d2::Pool<PostgresConnectionManager<NoTls>>>,
    migrated: AtomicBool,
}

impl Drop for PostgresLogStore {
    /// The synchronous client closes each connection by blocking on a runtime of its own,
    /// which panics on a thread that drives an async runtime (the last owner may be a
    /// background service). So the pool is dropped on a thread of its own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closing = std::thread::Builder::new()
                .name("asbru log store close".into())
                .spawn(move || drop(pool));
            if let Ok(thread) = closing {
                let _ = thread.join();
            }
        }
    }
}

fn db_error(e: postgres::Error) -> LogStoreError {
    if e.is_closed() || e.as_db_error().is_none() {
        LogStoreError::Unavailable(e.to_string())
    } else {
        LogStoreError::Database(e.to_string())
    }
}

impl ToSql for SqlRef<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            SqlRef::Null => Ok(IsNull::Yes),
            SqlRef::Int(i) => SqlValue::Int(i).to_sql(ty, out),
            SqlRef::Real(f) => f.to_sql(ty, out),
            SqlRef::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Int(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            SqlValue::Real(f) => f.to_sql(ty, out),
            SqlValue::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn value_at(row: &postgres::Row, i: usize) -> Result<SqlValue, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map_or(SqlValue::Null, SqlValue::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(SqlValue::Null, |v| SqlValue::Int(i64::from(v))),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map_or(SqlValue::Null, SqlValue::Real),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(SqlValue::Null, SqlValue::Text),
    })
}

fn params(values: &[SqlValue]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl PostgresLogStore {
    /// A store at `url`; connections are made (and the schema migrated) on first use.
    pub fn open(url: &str, max_open: u32) -> Result<PostgresLogStore, LogStoreError> {
        let config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            LogStoreError::Unavailable(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        let mut config = config;
        config.connect_timeout(Duration::from_secs(2));
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(max_open.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(3))
            .build_unchecked(manager);
        Ok(PostgresLogStore {
            pool: Some(pool),
            migrated: AtomicBool::new(false),
        })
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, LogStoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| LogStoreError::Unavailable("the log store is closed".into()))?;
        let mut conn = pool
            .get()
            .map_err(|e| LogStoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        if !self.migrated.load(Ordering::Acquire) {
            migrate_conn(&mut conn)?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(conn)
    }

    fn execute(&self, sql: &query::Sql) -> Result<u64, LogStoreError> {
        let mut conn = self.conn()?;
        conn.execute(sql.text.as_str(), &params(&sql.params)).map_err(db_error)
    }
}

fn migrate_conn(conn: &mut postgres::Client) -> Result<(), LogStoreError> {
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db_error)?;
    let result = (|| {
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            migrate::TABLE
        ))
        .map_err(db_error)?;
        let current: i32 = conn
            .query_one(
                &format!("SELECT COALESCE(MAX(version), 0) FROM {}", migrate::TABLE),
                &[],
            )
            .map_err(db_error)?
            .get(0);
        let current = u32::try_from(current).unwrap_or(0);
        if current > migrate::latest(migrate::POSTGRES) {
            return Err(LogStoreError::SchemaTooNew {
                found: current,
                known: migrate::latest(migrate::POSTGRES),
            });
        }
        for m in migrate::POSTGRES.iter().filter(|m| m.version > current) {
            let mut tx = conn.transaction().map_err(db_error)?;
            tx.batch_execute(m.sql).map_err(|e| {
                LogStoreError::Database(format!("log store migration {} ({}) failed: {e}", m.version, m.name))
            })?;
            tx.execute(
                &format!("INSERT INTO {} (version, name) VALUES ($1, $2)", migrate::TABLE),
                &[&(m.version as i32), &m.name],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
        }
        Ok(())
    })();
    let _ = conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

/// Every row of a statement, as values.
fn run_rows(conn: &mut postgres::Client, sql: &query::Sql) -> Result<Vec<Vec<SqlValue>>, LogStoreError> {
    let rows = conn.query(sql.text.as_str(), &params(&sql.params)).map_err(db_error)?;
    rows.iter()
        .map(|row| (0..row.len()).map(|i| value_at(row, i)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)
}

fn stats_with(conn: &mut postgres::Client, filter: &LogFilter) -> Result<LogStats, LogStoreError> {
    aggregate::stats(Dialect::Postgres, filter, &mut |sql| run_rows(conn, sql))
}

impl LogStore for PostgresLogStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn insert(&self, rows: &[LogRow]) -> Result<(), LogStoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(db_error)?;
        let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("${i}")).collect();
        let updates: Vec<String> = COLUMNS[1..].iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO logs ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
                COLUMNS.join(", "),
                placeholders.join(", "),
                updates.join(", ")
            ))
            .map_err(db_error)?;
        for row in rows {
            let values = row.refs();
            let bound: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            tx.execute(&stmt, &bound).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    fn search(&self, q: &LogQuery) -> Result<LogPage, LogStoreError> {
        let mut conn = self.conn()?;
        aggregate::search(Dialect::Postgres, q, &mut |sql| run_rows(&mut conn, sql))
    }

    fn get(&self, id: &str) -> Result<Option<LogRow>, LogStoreError> {
        let mut conn = self.conn()?;
        let rows = aggregate::rows_in_order(Dialect::Postgres, &[id.to_string()], &mut |sql| {
            run_rows(&mut conn, sql)
        })?;
        Ok(rows.into_iter().next())
    }

    fn stats(&self, filter: &LogFilter) -> Result<LogStats, LogStoreError> {
        let mut conn = self.conn()?;
        stats_with(&mut conn, filter)
    }

    fn histogram(&self, filter: &LogFilter, bucket_ms: i64, percentiles: bool) -> Result<Vec<Bucket>, LogStoreError> {
        let mut conn = self.conn()?;
        aggregate::histogram_with_percentiles(Dialect::Postgres, filter, bucket_ms, percentiles, &mut |sql| {
            run_rows(&mut conn, sql)
        })
    }

    fn model_histogram(&self, filter: &LogFilter, bucket_ms: i64) -> Result<Vec<ModelBucket>, LogStoreError> {
        let mut conn = self.conn()?;
        aggregate::model_histogram(Dialect::Postgres, filter, bucket_ms, &mut |sql| {
            run_rows(&mut conn, sql)
        })
    }

    fn filter_data(&self) -> Result<FilterData, LogStoreError> {
        let mut conn = self.conn()?;
        aggregate::filter_data(Dialect::Postgres, &mut |sql| run_rows(&mut conn, sql))
    }

    fn delete_ids(&self, ids: &[String]) -> Result<u64, LogStoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.execute(&query::delete_ids(Dialect::Postgres, ids))
    }

    fn delete_matching(&self, filter: &LogFilter) -> Result<u64, LogStoreError> {
        self.execute(&query::delete(Dialect::Postgres, filter))
    }

    fn retain(&self, rules: &Retention) -> Result<Retained, LogStoreError> {
        let mut conn = self.conn()?;
        let mut deleted = conn
            .execute("DELETE FROM logs WHERE timestamp < $1", &[&rules.delete_before_ms])
            .map_err(db_error)?;
        let total: i64 = conn
            .query_one("SELECT COUNT(*) FROM logs", &[])
            .map_err(db_error)?
            .get(0);
        let excess = total.saturating_sub(i64::try_from(rules.max_rows).unwrap_or(i64::MAX));
        if excess > 0 {
            deleted += conn
                .execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY timestamp ASC LIMIT $1)",
                    &[&excess],
                )
                .map_err(db_error)?;
        }
        let blanked = conn
            .execute(
                "UPDATE logs SET input_history = NULL, output_message = NULL, tools = NULL, content_summary = NULL \
                 WHERE timestamp < $1 AND (input_history IS NOT NULL OR output_message IS NOT NULL OR content_summary IS NOT NULL)",
                &[&rules.blank_content_before_ms],
            )
            .map_err(db_error)?;
        Ok(Retained { deleted, blanked })
    }

    fn has_rows(&self) -> Result<bool, LogStoreError> {
        let mut conn = self.conn()?;
        Ok(conn
            .query_one("SELECT EXISTS (SELECT 1 FROM logs)", &[])
            .map_err(db_error)?
            .get(0))
    }
}
