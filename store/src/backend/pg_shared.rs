//! What the PostgreSQL config store and its cluster leases share: the mapping of driver errors
//! to store errors, and the write of one meter's persisted usage.

use asbru_config::usage::UsageRecord;
use r2d2_postgres::postgres;
use r2d2_postgres::postgres::error::SqlState;

use super::StoreError;

/// A driver error as a store error: a taken name is a conflict, a lost connection means the
/// store is unavailable.
pub(crate) fn db_error(e: postgres::Error) -> StoreError {
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::FOREIGN_KEY_VIOLATION => {
            StoreError::Conflict(
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            )
        }
        _ if e.is_closed() || e.code().is_none() => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

/// Creates or replaces one meter's persisted usage.
pub(crate) fn write_usage(tx: &mut postgres::Transaction<'_>, record: &UsageRecord) -> Result<(), StoreError> {
    let doc = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO governance_usage (counter_id, doc_json) VALUES ($1, $2)
         ON CONFLICT (counter_id) DO UPDATE SET doc_json = excluded.doc_json, updated_at = now()",
        &[&record.counter_id, &doc],
    )
    .map_err(db_error)?;
    Ok(())
}
