//! Cluster metering (`governance.cluster`): several gateways sharing one PostgreSQL store
//! enforce budgets and rate limits together, with no store call per request.
//!
//! Each node admits requests against *leases*: shares of a meter's window granted by one
//! transaction on the store (`asbru_store::backend::leases`), so the stored usage plus every
//! node's lease never passes a limit. Reservations and settlement stay local and lock-free
//! (`asbru_filters::policy::meter`); settled spend reaches the store through the spend journal,
//! whose flush takes it off the node's lease in the same transaction.
//!
//! - [`signal`]: the request path's side: meters wake the manager, refused requests wait (at
//!   most `lease_wait_ms`) for the round they woke.
//! - [`manager`]: fetches slices before they are needed, hands back idle ones, renews leases,
//!   reads usage over all nodes, and follows `on_store_down` while the store is unreachable.
//! - [`metrics`]: the `asbru_cluster_*` metrics.
//!
//! A node killed while holding a lease leaves it counted (never handed back blind) until the
//! process restarted on its data dir replays its journal and settles it, or the window ends.

pub mod manager;
pub mod metrics;
pub mod signal;
