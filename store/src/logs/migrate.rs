//! The log store's own versioned migrations, recorded in `logs_schema_migrations` (a table name
//! of its own, so the log store may share a PostgreSQL database with the config store).

use crate::backend::migrate::Migration;

/// SQLite migrations.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "logs",
        sql: include_str!("../../migrations/logs_sqlite/0001_logs.sql"),
    },
    Migration {
        version: 2,
        name: "rollup",
        sql: include_str!("../../migrations/logs_sqlite/0002_rollup.sql"),
    },
    Migration {
        version: 3,
        name: "batch_indexing",
        sql: include_str!("../../migrations/logs_sqlite/0003_batch_indexing.sql"),
    },
    Migration {
        version: 4,
        name: "index_mark",
        sql: include_str!("../../migrations/logs_sqlite/0004_index_mark.sql"),
    },
];

/// PostgreSQL migrations.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "logs",
        sql: include_str!("../../migrations/logs_postgres/0001_logs.sql"),
    },
    Migration {
        version: 2,
        name: "rollup",
        sql: include_str!("../../migrations/logs_postgres/0002_rollup.sql"),
    },
];

/// The table recording applied versions.
pub const TABLE: &str = "logs_schema_migrations";

/// The newest schema version this binary knows for a dialect's list (PostgreSQL's may stop
/// earlier: SQLite's version 3 changes only how SQLite maintains its index and rollup).
pub fn latest(migrations: &[Migration]) -> u32 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}
