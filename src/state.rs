//! What every request shares: the live config (snapshot + governance + per-filter state), the
//! governance meters, the providers' health windows, the filter chain, the route table, the
//! metrics and the upstream connection pools.

use std::sync::Arc;

use arc_swap::ArcSwap;
use asbru_config::Config;
use asbru_filters::governance::Registry;
use asbru_filters::health::HealthBoard;
use asbru_filters::telemetry::Metrics;
use asbru_filters::{FilterChain, Live};
use asbru_store::backend::ConfigStore;
use pingora::connectors::http::Connector;

use crate::admin::auth::AdminAuth;
use crate::pipeline::{self, PipelineError, Services};
use crate::routes::RouteTable;

pub use asbru_filters::clock::unix_now;

/// The parts of a gateway made before it: its metrics, request log and spend journal.
pub struct Parts {
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The request log, when logging is on.
    pub request_log: Option<Arc<crate::request_log::RequestLog>>,
    /// The spend journal, when usage is persisted.
    pub spend_journal: Option<Arc<crate::spend_journal::Journal>>,
}

/// The gateway's shared state.
pub struct Gateway {
    /// The live config; swapped whole on change, read with one `load` per request.
    pub live: ArcSwap<Live>,
    /// Governance meters (live usage), kept across config changes.
    pub registry: Arc<Registry>,
    /// Each provider's recent health, kept across config changes.
    pub health: HealthBoard,
    /// Each provider key's cooldown, kept across config changes.
    pub cooldowns: asbru_filters::health::CooldownBoard,
    /// Providers' concurrency gates, kept across config rebuilds.
    pub gates: asbru_filters::concurrency::GateBoard,
    /// Filters every inference request passes.
    pub chain: FilterChain,
    /// Ingress routes.
    pub routes: RouteTable,
    /// Pooled upstream connections.
    pub connector: Connector,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The config store usage is persisted to (`None` in file-only mode).
    pub store: Option<Arc<dyn ConfigStore>>,
    /// The config file's settings (process settings, and everything not in the store).
    pub file: Config,
    /// Rebuilds after management writes.
    pub reloader: crate::admin::reloader::Reloader,
    /// Admin sessions, cached Basic credentials and failed-login counts.
    pub sessions: crate::admin::auth::Sessions,
    /// The config store version the installed `Live` was built from (`u64::MAX`: unknown), so
    /// the store sync does not rebuild again what a management write already installed.
    pub installed_version: std::sync::atomic::AtomicU64,
    /// What each listener serves, when some listener does not serve everything.
    pub listener_roles: Option<Vec<crate::edge::roles::ListenerRoles>>,
    /// Proxies whose forwarding headers name the client (`server.trusted_proxies`).
    pub trusted_proxies: crate::edge::client_addr::TrustedProxies,
    /// The spend journal (`None` in file-only mode, where usage is not persisted).
    pub spend_journal: Option<Arc<crate::spend_journal::Journal>>,
    /// The request log (`None` when logging is off).
    pub request_log: Option<Arc<crate::request_log::RequestLog>>,
    /// The effective config the installed `Live` was built from: management writes are
    /// validated against it instead of reading the whole store again.
    pub effective: ArcSwap<Config>,
    /// CORS from `client.allowed_origins` (read at start), when set.
    pub cors: Option<crate::cors::Cors>,
    /// Which provider account holds each stored response the gateway relayed.
    pub responses: crate::response_affinity::ResponseAffinity,
    /// Vertex AI service accounts' access tokens.
    pub vertex_tokens: crate::vertex_auth::VertexTokens,
}

impl Gateway {
    /// State serving `live` with the filters `plugins` asks for (the file's entries, and the
    /// store's, which win by name); meters live in `registry`.
    pub fn new(
        file: &Config,
        effective: &Config,
        live: Live,
        registry: Arc<Registry>,
        store: Option<Arc<dyn ConfigStore>>,
        parts: Parts,
    ) -> Result<Arc<Gateway>, PipelineError> {
        let Parts {
            metrics,
            request_log,
            spend_journal,
        } = parts;
        let services = Services {
            metrics: metrics.clone(),
            request_log: request_log.clone(),
        };
        let (chain, warnings) = pipeline::build(effective.plugins.as_ref(), &services)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let gateway = Gateway {
            live: ArcSwap::from_pointee(Live::empty()),
            registry,
            health: HealthBoard::default(),
            cooldowns: Default::default(),
            gates: Default::default(),
            chain,
            routes: RouteTable::new(),
            connector: Connector::new(None),
            metrics,
            store,
            file: file.clone(),
            reloader: Default::default(),
            sessions: Default::default(),
            installed_version: std::sync::atomic::AtomicU64::new(u64::MAX),
            listener_roles: crate::edge::roles::roles(&file.server.resolved_listeners()),
            trusted_proxies: crate::edge::client_addr::TrustedProxies::new(&file.server.trusted_proxies)
                .with_header(&file.server.real_ip_header),
            effective: ArcSwap::from_pointee(effective.clone()),
            cors: crate::cors::Cors::from_client(&effective.client),
            request_log,
            spend_journal,
            responses: Default::default(),
            vertex_tokens: Default::default(),
        };
        gateway.install(live, effective);
        Ok(Arc::new(gateway))
    }

    /// Serves `live` (built from `config`) from now on: attaches the health windows and the
    /// admin credentials, lets every filter compile its per-config state, and swaps it in.
    /// In-flight requests finish on the config they started with.
    pub fn install(&self, live: Live, config: &Config) {
        let mut live = live
            .with_health(&self.health)
            .with_cooldowns(&self.cooldowns)
            .with_gates(&self.gates);
        let (auth, warning) = AdminAuth::from_config(config);
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
        self.sessions.forget_basic();
        live.slots.insert(auth);
        self.chain.prepare(&mut live, config);
        self.live.store(Arc::new(live));
        self.effective.store(Arc::new(config.clone()));
    }
}
