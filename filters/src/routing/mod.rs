//! Routing: which provider and model each attempt goes to, and which key it uses.

pub mod keys;
mod plan;

pub use plan::{Attempt, RoutingFilter, resolve_target};
