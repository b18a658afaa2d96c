//! asbru-store: the persisted config behind the [`backend::ConfigStore`] trait: SQLite and
//! PostgreSQL backends, versioned migrations, encryption at rest for secrets ([`secrets`]), and
//! the effective config a snapshot is built from ([`effective`]).
//!
//! Blocking by design: async callers go through `spawn_blocking`. The config schema itself is
//! `asbru-config`'s.

pub mod backend;
pub mod effective;
pub mod logs;
pub mod secrets;
