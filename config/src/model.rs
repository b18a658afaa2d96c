//! The config schema types, shared by the file loader (and later the store and admin API).
//!
//! Field names follow Bifrost's `config.json` so that a Bifrost file loads unchanged.
//! Sections asbru does not implement yet are accepted as raw JSON so that such a file still loads;
//! [`Config::unimplemented_sections`] names them so start-up can say they are ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::governance::{
    Budget, Customer, GovernanceConfig, ModelConfig, ModelPrice, PricingOverride, ProviderGovernance, RateLimit,
    RoutingRule, RoutingTarget, Team, VirtualKey, VirtualKeyProvider,
};
use serde_json::Value;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// JSON-schema pointer some Bifrost files carry; ignored.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Bifrost config version: `2` (default) means empty allow-lists deny; `1` means they allow all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Bifrost's `source_of_truth`: `split` (file entities that changed since they were last
    /// applied are written to the store; store edits to the others survive) or `config.json`
    /// (the file's sections replace the store's at every start). Absent: the file seeds an empty
    /// store once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_of_truth: Option<String>,
    /// Listener and process settings (asbru's own block).
    #[serde(default)]
    pub server: ServerConfig,
    /// Provider name -> provider config.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Gateway behaviour (Bifrost's `client` block).
    #[serde(default)]
    pub client: ClientConfig,
    /// The bundled mock provider, started in-process (asbru's own block, used by `conf/demo.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockConfig>,
    /// Governance section (virtual keys, budgets, ...). Validated; not enforced yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<crate::governance::GovernanceConfig>,
    /// Where the persisted config lives (SQLite by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_store: Option<ConfigStoreConfig>,
    /// Where request logs are written (SQLite `<data_dir>/logs.db` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_store: Option<LogsStoreConfig>,
    /// Vector store settings. Not implemented yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_store: Option<Value>,
    /// Plugins. Not implemented yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Value>,
    /// Key material for encrypting stored secrets (`env.NAME` allowed). Cannot change once rows
    /// are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    /// MCP clients. Not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<Value>,
    /// Framework settings (pricing sync). Not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<Value>,
    /// WebSocket settings. Not implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<Value>,
    /// Deprecated top-level admin auth block (now under governance); read when
    /// `governance.auth_config` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_config: Option<Value>,
}

impl Config {
    /// Names of sections present in the file that this build accepts but does not act on yet.
    pub fn unimplemented_sections(&self) -> Vec<&'static str> {
        let sections: [(&'static str, bool); 4] = [
            ("vector_store", self.vector_store.is_some()),
            ("mcp", self.mcp.is_some()),
            ("framework", self.framework.is_some()),
            ("websocket", self.websocket.is_some()),
        ];
        sections
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect()
    }

    /// A setting of the `governance` entry of Bifrost's `plugins` list (`{name: governance,
    /// config: {is_vk_mandatory: true}}`), unless that entry is disabled.
    pub fn governance_plugin_setting(&self, key: &str) -> Option<&Value> {
        self.plugins
            .as_ref()?
            .as_array()?
            .iter()
            .filter(|entry| entry.get("name").and_then(Value::as_str) == Some("governance"))
            .filter(|entry| entry.get("enabled").and_then(Value::as_bool) != Some(false))
            .find_map(|entry| entry.get("config")?.get(key))
    }

    /// Whether inference requests must carry a virtual key: `client.enforce_auth_on_inference`
    /// (or its Bifrost spellings), or the governance plugin's `is_vk_mandatory`. Either one
    /// turning it on is enough.
    pub fn virtual_key_mandatory(&self) -> bool {
        self.client.enforce_auth_on_inference == Some(true)
            || self
                .governance_plugin_setting("is_vk_mandatory")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    /// Headers every inference request must carry: `client.required_headers` and the governance
    /// plugin's `required_headers`, lowercased, each once.
    pub fn required_headers(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let from_plugin = self
            .governance_plugin_setting("required_headers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for name in self
            .client
            .required_headers
            .iter()
            .flatten()
            .map(String::as_str)
            .chain(from_plugin)
        {
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Whether an empty allow-list means "allow all" (`version: 1`) rather than "deny all".
    pub fn empty_list_allows_all(&self) -> bool {
        self.version == Some(1)
    }
}

/// `config_store`: which database holds the persisted config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigStoreConfig {
    /// `false`: file-only mode, nothing persisted.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// `sqlite` (default) or `postgres`.
    #[serde(rename = "type", default)]
    pub kind: StoreKind,
    /// Connection settings.
    #[serde(default)]
    pub config: StoreConnection,
}

impl ConfigStoreConfig {
    /// File-only mode: no store.
    pub fn disabled() -> ConfigStoreConfig {
        ConfigStoreConfig {
            enabled: false,
            kind: StoreKind::default(),
            config: StoreConnection::default(),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// `logs_store`: Bifrost's request log store section, plus asbru's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsStoreConfig {
    /// `false`: requests are not recorded (the query API answers 503).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// `sqlite` (default) or `postgres`.
    #[serde(rename = "type", default)]
    pub kind: StoreKind,
    /// Connection settings; a SQLite `path` defaults to `<data_dir>/logs.db`.
    #[serde(default)]
    pub config: StoreConnection,
    /// Age in days after which rows are deleted (Bifrost's spelling; `client.log_retention_days`
    /// is read when this is absent; default 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u64>,
    /// Age in days after which prompt and completion text are blanked and the row kept
    /// (asbru; default: the metadata retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_retention_days: Option<u64>,
    /// Most rows kept; the oldest are deleted first (asbru; default 10,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Largest stored size of one content field in bytes (asbru; default 65,536); a longer
    /// field is cut and the row says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_content_bytes: Option<usize>,
    /// Records waiting to be written; when full, new records are dropped and counted (asbru;
    /// default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<usize>,
    /// Bifrost's PostgreSQL materialised-view refresh; accepted, no effect (asbru's stats read
    /// the table through its indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matview_refresh_interval: Option<Value>,
    /// Bifrost's large-payload offload to object storage; accepted, not supported (content
    /// over `max_content_bytes` is cut instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_storage: Option<Value>,
}

impl Default for LogsStoreConfig {
    fn default() -> Self {
        LogsStoreConfig {
            enabled: true,
            kind: StoreKind::Sqlite,
            config: StoreConnection::default(),
            retention_days: None,
            content_retention_days: None,
            max_rows: None,
            max_content_bytes: None,
            queue_size: None,
            matview_refresh_interval: None,
            object_storage: None,
        }
    }
}

/// The store's database engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A SQLite file.
    #[default]
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// `config_store.config`: SQLite `{path}`, or PostgreSQL `{url}` or its parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConnection {
    /// SQLite file (default: `<data_dir>/config.db`).
    pub path: Option<String>,
    /// PostgreSQL URL (`postgres://...`) or `key=value` string.
    pub url: Option<String>,
    /// PostgreSQL host.
    pub host: Option<String>,
    /// PostgreSQL port (Bifrost writes it as a string).
    pub port: Option<Value>,
    /// PostgreSQL user.
    pub user: Option<String>,
    /// PostgreSQL password, or `env.NAME`.
    pub password: Option<String>,
    /// PostgreSQL database.
    pub db_name: Option<String>,
    /// `disable` (default), `allow`, `prefer`; TLS modes are refused until supported.
    pub ssl_mode: Option<String>,
    /// Idle connections kept (default 5).
    pub max_idle_conns: Option<u32>,
    /// Connection cap (default 50).
    pub max_open_conns: Option<u32>,
    /// Accepted for compatibility.
    pub conn_max_lifetime: Option<Value>,
}

/// Listener and process settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the gateway listens on, `host:port`.
    pub listen: String,
    /// Worker threads for the proxy service.
    pub threads: usize,
    /// Seconds to keep serving after SIGTERM before stopping to accept.
    pub grace_period_seconds: u64,
    /// Seconds to let in-flight requests finish during a graceful shutdown.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Largest accepted request body, in MiB. Falls back to `client.max_request_body_size_mb`, then 100.
    pub max_request_body_size_mb: Option<u64>,
    /// Directory for asbru's data files (config store, logs).
    pub data_dir: String,
    /// Serve the management API to non-loopback clients while admin auth is off (an asbru
    /// extension; off by default, so an open admin API is never exposed by accident).
    pub allow_unauthenticated_admin: bool,
    /// A listener of its own for the management API (`host:port`): `/api` then answers only
    /// there, and that listener serves only `/api`, `/health` and `/metrics`.
    pub admin_listen: Option<String>,
    /// Seconds an idle keep-alive connection waits for its next request (0: no keep-alive).
    pub keepalive_timeout_seconds: u64,
    /// Seconds a request body may go without new bytes before the request is answered 408.
    pub body_read_timeout_seconds: u64,
    /// Slowest accepted request body, in bytes a second, measured after the first 5 seconds
    /// (a body dripping slower is answered 408 and the connection closed; 0: no minimum).
    pub min_body_rate_bytes_per_second: u64,
    /// Largest request head (all header names and values), in bytes; larger is answered 431.
    pub max_header_bytes: usize,
    /// Longest request URI, in bytes; longer is answered 414.
    pub max_uri_bytes: usize,
    /// Seconds a client has to send a whole request head: from the accept for a connection's
    /// first request, from its first byte for later ones (0: no deadline). Past it the
    /// connection is closed, as nginx's `client_header_timeout` does.
    pub header_read_timeout_seconds: u64,
    /// Most downstream connections open at once, over all listeners (0: no cap). One past the
    /// cap is answered 503 and closed without being read.
    pub max_connections: usize,
    /// The listeners, each with its address, TLS, PROXY protocol and roles. When empty,
    /// `listen` (TLS when `tls` is set) and `admin_listen` are the listeners.
    pub listeners: Vec<ListenerConfig>,
    /// The certificates of TLS listeners that do not name their own.
    pub tls: Option<TlsConfig>,
    /// Seconds a client has to finish a TLS handshake (and to send a PROXY protocol header).
    pub tls_handshake_timeout_seconds: u64,
    /// Cleartext HTTP/2 (h2c, prior knowledge) on plaintext listeners that do not say.
    pub h2c: bool,
    /// Most concurrent streams a client may open on one HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    /// Seconds an HTTP/2 connection may stay idle before it is closed (0: never).
    pub h2_idle_timeout_seconds: u64,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed: CIDRs or addresses.
    /// The client address is the nearest address in the chain that is not one of them.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies name the client in: `X-Forwarded-For` (default),
    /// `Forwarded`, or another holding addresses (`X-Real-IP`).
    pub real_ip_header: String,
    /// The Unix socket listening sockets are handed over through on `serve --upgrade`
    /// (default `<data_dir>/upgrade.sock`).
    pub upgrade_sock: Option<String>,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerRole {
    /// The inference routes (and `/health`, `/metrics`).
    Inference,
    /// The management API and the dashboard (and `/health`, `/metrics`).
    Admin,
}

/// One listening address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port`.
    pub address: String,
    /// TLS: `true` for the certificates of `server.tls`, or certificates of its own.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Read a PROXY protocol (v1 or v2) header before anything else on each connection.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Cleartext HTTP/2 on this (plaintext) listener; default `server.h2c`.
    #[serde(default)]
    pub h2c: Option<bool>,
    /// What it serves (default: both).
    #[serde(default = "both_roles")]
    pub roles: Vec<ListenerRole>,
}

fn both_roles() -> Vec<ListenerRole> {
    vec![ListenerRole::Inference, ListenerRole::Admin]
}

/// A listener's TLS setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListenerTls {
    /// `true`: the certificates of `server.tls`; `false`: plaintext.
    Enabled(bool),
    /// Certificates of its own.
    Own(TlsConfig),
}

/// Certificates for TLS listeners (PEM files).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The default certificate chain.
    pub cert_file: String,
    /// Its private key.
    pub key_file: String,
    /// More certificates, chosen by the name the client asks for (SNI).
    pub certificates: Vec<SniCertificate>,
}

/// A certificate served to clients asking for one of its names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SniCertificate {
    /// Host names (`api.example.com`, or `*.example.com` for one label).
    pub server_names: Vec<String>,
    /// Its certificate chain.
    pub cert_file: String,
    /// Its private key.
    pub key_file: String,
}

/// A listener with everything resolved: shorthands expanded and TLS settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// `host:port`.
    pub address: String,
    /// Its certificates, when it speaks TLS.
    pub tls: Option<TlsFiles>,
    /// Whether a PROXY protocol header comes first.
    pub proxy_protocol: bool,
    /// Cleartext HTTP/2.
    pub h2c: bool,
    /// Serves inference routes.
    pub inference: bool,
    /// Serves the management API and the dashboard.
    pub admin: bool,
}

/// Certificate files of one TLS listener.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsFiles {
    /// Default chain and key.
    pub cert_file: String,
    /// Default key.
    pub key_file: String,
    /// By SNI: names, chain, key.
    pub by_name: Vec<(Vec<String>, String, String)>,
}

impl From<&TlsConfig> for TlsFiles {
    fn from(tls: &TlsConfig) -> TlsFiles {
        TlsFiles {
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            by_name: tls
                .certificates
                .iter()
                .map(|c| (c.server_names.clone(), c.cert_file.clone(), c.key_file.clone()))
                .collect(),
        }
    }
}

impl ServerConfig {
    /// The listeners to open: `listeners`, or else `listen` (with both roles, TLS when `tls` is
    /// set) and `admin_listen` (admin only). A listener asking for `tls: true` with no
    /// `server.tls` is left plaintext here; validation reports it.
    pub fn resolved_listeners(&self) -> Vec<Listener> {
        let shared_tls = self.tls.as_ref().map(TlsFiles::from);
        if self.listeners.is_empty() {
            let mut out = vec![Listener {
                address: self.listen.clone(),
                tls: shared_tls.clone(),
                proxy_protocol: false,
                h2c: self.h2c,
                inference: true,
                admin: self.admin_listen.is_none(),
            }];
            if let Some(admin) = &self.admin_listen {
                out.push(Listener {
                    address: admin.clone(),
                    tls: shared_tls,
                    proxy_protocol: false,
                    h2c: self.h2c,
                    inference: false,
                    admin: true,
                });
            }
            return out;
        }
        self.listeners
            .iter()
            .map(|l| Listener {
                address: l.address.clone(),
                tls: match &l.tls {
                    Some(ListenerTls::Enabled(true)) => shared_tls.clone(),
                    Some(ListenerTls::Own(own)) => Some(TlsFiles::from(own)),
                    Some(ListenerTls::Enabled(false)) | None => None,
                },
                proxy_protocol: l.proxy_protocol,
                h2c: l.h2c.unwrap_or(self.h2c),
                inference: l.roles.contains(&ListenerRole::Inference),
                admin: l.roles.contains(&ListenerRole::Admin),
            })
            .collect()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            threads: 2,
            grace_period_seconds: 30,
            graceful_shutdown_timeout_seconds: 30,
            max_request_body_size_mb: None,
            data_dir: "./asbru-data".to_string(),
            allow_unauthenticated_admin: false,
            admin_listen: None,
            keepalive_timeout_seconds: 60,
            body_read_timeout_seconds: 30,
            min_body_rate_bytes_per_second: 1024,
            max_header_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            header_read_timeout_seconds: 30,
            max_connections: 16 * 1024,
            listeners: Vec::new(),
            tls: None,
            tls_handshake_timeout_seconds: 10,
            h2c: false,
            h2_max_concurrent_streams: 128,
            h2_idle_timeout_seconds: 300,
            trusted_proxies: Vec::new(),
            real_ip_header: "X-Forwarded-For".to_string(),
            upgrade_sock: None,
        }
    }
}

/// The listen address used when neither the file nor the CLI sets one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The request body cap used when no config sets one.
pub const DEFAULT_MAX_BODY_MB: u64 = 100;

/// Bifrost's `client` block. Fields asbru does not use yet are accepted and ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Maximum request body size in MiB (Bifrost's spelling; `server.max_request_body_size_mb` wins).
    pub max_request_body_size_mb: Option<u64>,
    /// A virtual key is mandatory on inference routes.
    #[serde(alias = "enforce_governance_header", alias = "is_vk_mandatory")]
    pub enforce_auth_on_inference: Option<bool>,
    /// Output tokens a budget reservation assumes when a request sets no `max_tokens`
    /// (asbru; default 4096).
    pub default_max_output_tokens: Option<u64>,
    /// Accept a caller-supplied provider key.
    pub allow_direct_keys: Option<bool>,
    /// Let a request ask for the provider's raw reply (`x-bf-send-back-raw-response: true`).
    pub allow_per_request_raw_override: Option<bool>,
    /// Turn request logging on or off.
    pub enable_logging: Option<bool>,
    /// Log only metadata, not content.
    pub disable_content_logging: Option<bool>,
    /// Let a request turn content logging off with `x-bf-disable-content-logging: true`
    /// (Bifrost's spelling; default true).
    pub allow_per_request_content_storage_override: Option<bool>,
    /// Log retention in days.
    pub log_retention_days: Option<u64>,
    /// Request headers copied into log metadata.
    pub logging_headers: Option<Vec<String>>,
    /// CORS origins.
    pub allowed_origins: Option<Vec<String>>,
    /// Extra CORS headers.
    pub allowed_headers: Option<Vec<String>>,
    /// Routes that skip admin auth.
    pub whitelisted_routes: Option<Vec<String>>,
    /// Headers every request must carry.
    pub required_headers: Option<Vec<String>>,
    /// Filter for `x-bf-eh-*` forwarding.
    pub header_filter_config: Option<Value>,
    /// Custom Prometheus label names.
    pub prometheus_labels: Option<Vec<String>>,
    /// Object pool warm-up size (Bifrost tuning; no effect in asbru).
    pub initial_pool_size: Option<u64>,
    /// Fail fast on full queues (Bifrost tuning; no effect in asbru).
    pub drop_excess_requests: Option<bool>,
    /// Compatibility shims.
    pub compat: Option<Value>,
    /// MCP agent settings.
    pub mcp_agent_depth: Option<u64>,
    /// MCP tool timeout.
    pub mcp_tool_execution_timeout: Option<u64>,
    /// MCP sync interval.
    pub mcp_tool_sync_interval: Option<u64>,
    /// MCP auto-injection switch.
    pub mcp_disable_auto_tool_inject: Option<bool>,
    /// Async job TTL.
    pub async_job_result_ttl: Option<u64>,
    /// Skip DB pings in `/health`.
    pub disable_db_pings_in_health: Option<bool>,
    /// Routing-rule chain depth.
    pub routing_chain_max_depth: Option<u64>,
    /// Garbage-collect expired virtual keys.
    pub delete_expired_virtual_keys: Option<bool>,
    /// Most fallbacks one request may list (asbru; default 5): a request listing more has the
    /// rest dropped, so one call cannot fan out into hundreds of upstream calls.
    pub max_fallbacks: Option<u64>,
}

/// One provider (`providers.<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Upstream credentials, chosen by weight among those that allow the model.
    pub keys: Vec<KeyConfig>,
    /// Base URL, headers, timeouts and retries.
    pub network_config: NetworkConfig,
    /// Required for a provider whose name is not built in.
    pub custom_provider_config: Option<CustomProviderConfig>,
    /// Bifrost's concurrency control: at most `concurrency` requests in flight to this provider,
    /// `buffer_size` more waiting (see `client.drop_excess_requests`). Absent: no limit.
    pub concurrency_and_buffer_size: Option<ConcurrencyAndBufferSize>,
    /// Outbound proxy. Not implemented yet.
    pub proxy_config: Option<Value>,
    /// Include the raw request in responses. Not implemented yet.
    pub send_back_raw_request: Option<bool>,
    /// Include the provider's own reply in non-stream responses, as `extra_fields.raw_response`.
    pub send_back_raw_response: Option<bool>,
    /// Store raw bodies in logs. Not implemented yet.
    pub store_raw_request_response: Option<bool>,
    /// OpenAI-specific settings. Not implemented yet.
    pub openai_config: Option<Value>,
    /// Anthropic prompt caching settings. Not implemented yet.
    pub prompt_cache: Option<Value>,
}

/// `concurrency_and_buffer_size` of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConcurrencyAndBufferSize {
    /// Most requests in flight to the provider (Bifrost's default: 1000).
    pub concurrency: usize,
    /// Most requests waiting for a slot (Bifrost's default: 5000).
    pub buffer_size: usize,
}

impl Default for ConcurrencyAndBufferSize {
    fn default() -> Self {
        ConcurrencyAndBufferSize {
            concurrency: 1000,
            buffer_size: 5000,
        }
    }
}

/// One upstream credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Stable id, used for pinning (`x-bf-api-key-id`).
    #[serde(alias = "key_id")]
    pub id: Option<String>,
    /// Human name, used for pinning (`x-bf-api-key`) and in logs.
    pub name: Option<String>,
    /// The secret, or `env.NAME`.
    pub value: String,
    /// Models this key may serve; `["*"]` is all. Omitted means all; `[]` means none (unless `version: 1`).
    pub models: Option<Vec<String>>,
    /// Models this key must never serve.
    pub blacklisted_models: Vec<String>,
    /// Relative weight in key selection.
    pub weight: Option<f64>,
    /// Public model name -> upstream model/deployment name.
    pub aliases: BTreeMap<String, AliasTarget>,
    /// Disabled keys are never chosen.
    pub enabled: Option<bool>,
    /// Free text.
    pub description: Option<String>,
    /// Prefer for batch requests.
    pub use_for_batch_api: Option<bool>,
    /// Azure settings (later issue).
    pub azure_key_config: Option<Value>,
    /// Vertex settings (later issue).
    pub vertex_key_config: Option<Value>,
    /// Bedrock settings (later issue).
    pub bedrock_key_config: Option<Value>,
    /// Ollama `{url}`: used as the base URL when `network_config.base_url` is not set.
    pub ollama_key_config: Option<UrlKeyConfig>,
    /// SGLang `{url}`.
    pub sgl_key_config: Option<UrlKeyConfig>,
    /// vLLM `{url, model_name}`.
    pub vllm_key_config: Option<UrlKeyConfig>,
}

/// An alias target: either a bare model name or `{model_name, ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AliasTarget {
    /// The upstream model name.
    Name(String),
    /// The object form.
    Detailed {
        /// The upstream model name.
        model_name: String,
        /// Optional model family hint.
        #[serde(default)]
        model_family: Option<String>,
    },
}

impl AliasTarget {
    /// The upstream model name this alias resolves to.
    pub fn model_name(&self) -> &str {
        match self {
            AliasTarget::Name(name) => name,
            AliasTarget::Detailed { model_name, .. } => model_name,
        }
    }
}

/// A `{url}` key config (Ollama, SGLang, vLLM).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UrlKeyConfig {
    /// Base URL of the server.
    pub url: Option<String>,
    /// vLLM's served model name.
    pub model_name: Option<String>,
}

/// `network_config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Overrides the provider's default base URL.
    pub base_url: Option<String>,
    /// Headers added to every upstream request.
    pub extra_headers: BTreeMap<String, String>,
    /// Whole-request timeout in seconds (default 300).
    pub default_request_timeout_in_seconds: Option<u64>,
    /// Retries per attempt on connect errors, timeouts, 429 and 5xx (default 0).
    pub max_retries: Option<u32>,
    /// First backoff: milliseconds, or a duration string such as `"500ms"` (default 500 ms).
    #[serde(deserialize_with = "de_opt_millis", serialize_with = "ser_opt_millis")]
    #[schema(value_type = Option<u64>)]
    pub retry_backoff_initial: Option<Duration>,
    /// Backoff ceiling, same units (default 5 s).
    #[serde(deserialize_with = "de_opt_millis", serialize_with = "ser_opt_millis")]
    #[schema(value_type = Option<u64>)]
    pub retry_backoff_max: Option<Duration>,
    /// Longest silence allowed between stream chunks, in seconds (default 120).
    pub stream_idle_timeout_in_seconds: Option<u64>,
    /// How long a key is skipped after a 401/403, or three 429s within ten seconds, in seconds
    /// (asbru; default 30; 0 turns the cooldown off).
    pub key_cooldown_seconds: Option<u64>,
    /// Connection cap per host; accepted, not enforced.
    pub max_conns_per_host: Option<u64>,
    /// Skip TLS verification of the upstream.
    pub insecure_skip_verify: Option<bool>,
    /// PEM certificates the provider's TLS chain must end in, used instead of the system roots
    /// (a private CA, a TLS-inspecting proxy); `env.NAME` allowed.
    pub ca_cert_pem: Option<String>,
    /// Force HTTP/2 upstream.
    pub enforce_http2: Option<bool>,
    /// Anthropic beta header rewrites. Not implemented yet.
    pub beta_header_overrides: Option<Value>,
    /// Stream throughput guard. Not implemented.
    pub stream_throughput_guard: Option<Value>,
}

/// Default whole-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Default stream idle timeout.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default first retry backoff.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Default retry backoff ceiling.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_millis(5000);

/// `custom_provider_config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CustomProviderConfig {
    /// The provider takes no key.
    pub is_key_less: bool,
    /// Which built-in wire this provider speaks (`openai`, ...).
    pub base_provider_type: String,
    /// Request types this provider serves; absent means all.
    pub allowed_requests: Option<BTreeMap<String, bool>>,
    /// Request type -> upstream path, e.g. `{chat_completion: "/v1/chat"}`.
    pub request_path_overrides: BTreeMap<String, String>,
}

/// The bundled mock provider, started inside the gateway process (`conf/demo.yaml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Where the mock listens.
    pub listen: String,
    /// Delay before each response, in ms.
    pub latency_ms: u64,
    /// Content chunks per streamed response.
    pub chunks: u32,
    /// Delay between stream chunks, in ms.
    pub chunk_delay_ms: u64,
    /// Fraction of requests answered with `fail_status`.
    pub fail_rate: f64,
    /// Status used for failures.
    pub fail_status: u16,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: "127.0.0.1:9090".to_string(),
            latency_ms: 0,
            chunks: 5,
            chunk_delay_ms: 0,
            fail_rate: 0.0,
            fail_status: 503,
        }
    }
}

/// Parses milliseconds given as an integer, or a Go-style duration string (`"500ms"`, `"2s"`, `"1m"`).
fn de_opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Millis(ms)) => Ok(Some(Duration::from_millis(ms))),
        Some(Raw::Text(text)) => parse_go_duration(&text).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: use milliseconds or e.g. \"500ms\", \"2s\""
            ))
        }),
    }
}

fn ser_opt_millis<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// Parses a simple Go duration: a number followed by `ms`, `s`, `m` or `h`.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        _ => return None,
    };
    (millis.is_finite() && millis >= 0.0).then(|| Duration::from_micros((millis * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("fast"), None);
        assert_eq!(parse_go_duration("5d"), None);
    }
}
