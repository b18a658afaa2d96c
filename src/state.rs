//! What every request shares: the live config (snapshot + governance), the governance meters,
//! the filter chain, the route table, the metrics and the upstream connection pools.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use asbru_filters::governance::Registry;
use asbru_filters::{FilterChain, Live};
use asbru_store::backend::ConfigStore;
use pingora::connectors::http::Connector;

use crate::metrics::Metrics;
use crate::routes::RouteTable;

/// The gateway's shared state.
pub struct Gateway {
    /// The live config; swapped whole on change, read with one `load` per request.
    pub live: ArcSwap<Live>,
    /// Governance meters (live usage), kept across config changes.
    pub registry: Arc<Registry>,
    /// Filters every inference request passes.
    pub chain: FilterChain,
    /// Ingress routes.
    pub routes: RouteTable,
    /// Pooled upstream connections.
    pub connector: Connector,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The config store usage is persisted to (`None` in file-only mode).
    pub store: Option<Arc<dyn ConfigStore>>,
}

impl Gateway {
    /// State serving `live`, whose meters live in `registry`.
    pub fn new(live: Live, registry: Arc<Registry>, store: Option<Arc<dyn ConfigStore>>) -> Arc<Gateway> {
        Arc::new(Gateway {
            live: ArcSwap::from_pointee(live),
            registry,
            chain: FilterChain::standard(),
            routes: RouteTable::new(),
            connector: Connector::new(None),
            metrics: Metrics::new(),
            store,
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
