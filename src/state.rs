//! What every request shares: the current snapshot, the filter chain, the route table and the
//! upstream connection pools.

use std::sync::Arc;

use arc_swap::ArcSwap;
use asbru_filters::FilterChain;
use asbru_store::Snapshot;
use pingora::connectors::http::Connector;

use crate::routes::RouteTable;

/// The gateway's shared state.
pub struct Gateway {
    /// The live config; swapped whole on change, read with one `load` per request.
    pub snapshot: ArcSwap<Snapshot>,
    /// Filters every inference request passes.
    pub chain: FilterChain,
    /// Ingress routes.
    pub routes: RouteTable,
    /// Pooled upstream connections.
    pub connector: Connector,
}

impl Gateway {
    /// State serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Arc<Gateway> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            chain: FilterChain::standard(),
            routes: RouteTable::new(),
            connector: Connector::new(None),
        })
    }
}
