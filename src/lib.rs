//! asbru: an LLM gateway on Pingora, wire-compatible with Bifrost.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library, so that tests and benches can start
//! a real gateway in-process ([`server::spawn`]). See `ARCHITECTURE.md` for the code map.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod connection;
pub mod cors;
pub mod dns;
pub mod edge;
pub mod exchange;
pub mod layers;
pub mod models;
pub mod otel_export;
pub mod pipeline;
pub mod proxy;
pub mod request_log;
pub mod respond;
pub mod response_affinity;
pub mod routes;
pub mod server;
pub mod source_of_truth;
pub mod spend_journal;
pub mod state;
pub mod store_sync;
pub mod timer_tick;
pub mod ui;
pub mod usage_flush;
pub mod usage_reconcile;
pub mod vertex_auth;
