//! asbru-providers: wire formats and pure translations between them. No I/O.
//!
//! - [`formats`]: serde types for each native API, and the cheap head reader for pass-through.
//! - [`provider`]: one module per provider family: hosts, paths, auth, wire headers.
//! - [`adapters`]: translations between wires through the OpenAI chat hub, streams included.
//! - [`sse`]: the incremental SSE splitter and writers.
//! - [`usage`]: one usage record for every path.
//! - [`errors`]: error bodies in each ingress format.

pub mod adapters;
pub mod edit;
pub mod errors;
pub mod eventstream;
pub mod formats;
pub mod provider;
pub mod sse;
pub mod usage;

pub use asbru_config::catalog::Wire;
