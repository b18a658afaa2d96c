//! asbru-providers: wire formats and pure translations between them. No I/O.
//!
//! - [`formats`]: serde types for each native API, and the cheap head reader for pass-through.
//! - [`adapters`]: translations between wires, stream translators included.
//! - [`sse`]: the incremental SSE splitter and writers.
//! - [`usage`]: one usage record for every path.
//! - [`errors`]: error bodies in each ingress format.

pub mod adapters;
pub mod edit;
pub mod errors;
pub mod formats;
pub mod sse;
pub mod usage;
