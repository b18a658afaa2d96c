//! asbru-config: the config schema (Bifrost's `config.json` fields, plus the Helm-values
//! spellings of governance sections), file loading (YAML or JSON) with problems located by file,
//! line and column, `env.NAME` references, and the built-in provider catalog.
//!
//! No I/O beyond reading the config file; no database, no HTTP.

pub mod bifrost_fields;
pub mod catalog;
pub mod env;
pub mod file;
pub mod governance;
pub mod governance_check;
pub mod helm;
pub mod locate;
pub mod model;
pub mod usage;

pub use file::{ConfigError, Problem, load_file, load_str, validate};
pub use model::Config;
