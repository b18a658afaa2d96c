//! Versioned SQL migrations, embedded per backend and recorded in `schema_migrations`.

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, from 1, in order.
    pub version: u32,
    /// Short name.
    pub name: &'static str,
    /// The SQL to run.
    pub sql: &'static str,
}

/// SQLite migrations.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "key_encryption_status",
        sql: include_str!("../../migrations/sqlite/0002_key_encryption_status.sql"),
    },
    Migration {
        version: 3,
        name: "governance_entities",
        sql: include_str!("../../migrations/sqlite/0003_governance_entities.sql"),
    },
    Migration {
        version: 4,
        name: "entity_encryption_status",
        sql: include_str!("../../migrations/sqlite/0004_entity_encryption_status.sql"),
    },
    Migration {
        version: 5,
        name: "governance_usage",
        sql: include_str!("../../migrations/sqlite/0005_governance_usage.sql"),
    },
    Migration {
        version: 6,
        name: "relational_governance",
        sql: include_str!("../../migrations/sqlite/0006_relational_governance.sql"),
    },
    Migration {
        version: 7,
        name: "audit_log",
        sql: include_str!("../../migrations/sqlite/0007_audit_log.sql"),
    },
    Migration {
        version: 8,
        name: "spend_journal",
        sql: include_str!("../../migrations/sqlite/0008_spend_journal.sql"),
    },
    Migration {
        version: 9,
        name: "governance_leases",
        sql: include_str!("../../migrations/sqlite/0009_governance_leases.sql"),
    },
];

/// PostgreSQL migrations.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "key_encryption_status",
        sql: include_str!("../../migrations/postgres/0002_key_encryption_status.sql"),
    },
    Migration {
        version: 3,
        name: "governance_entities",
        sql: include_str!("../../migrations/postgres/0003_governance_entities.sql"),
    },
    Migration {
        version: 4,
        name: "entity_encryption_status",
        sql: include_str!("../../migrations/postgres/0004_entity_encryption_status.sql"),
    },
    Migration {
        version: 5,
        name: "governance_usage",
        sql: include_str!("../../migrations/postgres/0005_governance_usage.sql"),
    },
    Migration {
        version: 6,
        name: "relational_governance",
        sql: include_str!("../../migrations/postgres/0006_relational_governance.sql"),
    },
    Migration {
        version: 7,
        name: "audit_log",
        sql: include_str!("../../migrations/postgres/0007_audit_log.sql"),
    },
    Migration {
        version: 8,
        name: "spend_journal",
        sql: include_str!("../../migrations/postgres/0008_spend_journal.sql"),
    },
    Migration {
        version: 9,
        name: "governance_leases",
        sql: include_str!("../../migrations/postgres/0009_governance_leases.sql"),
    },
];

/// The newest schema version this binary knows.
pub fn latest_version() -> u32 {
    SQLITE.iter().map(|m| m.version).max().unwrap_or(0)
}
