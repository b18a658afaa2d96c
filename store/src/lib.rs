//! asbru-store: the config model, file loading and validation, and the immutable
//! [`Snapshot`](snapshot::Snapshot) the hot path reads.
//!
//! This crate knows nothing of HTTP or Pingora; it turns configuration into plain data.

pub mod backend;
pub mod catalog;
pub mod env;
pub mod file;
pub mod governance;
mod governance_check;
pub mod locate;
pub mod model;
pub mod secrets;
pub mod snapshot;
pub mod usage;

pub use file::{ConfigError, Problem, load_file, load_str};
pub use model::Config;
pub use snapshot::Snapshot;
