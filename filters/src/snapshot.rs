//! The [`Snapshot`]: the immutable, pre-resolved view of the config that the hot path reads.
//!
//! Everything a request needs is computed here once: env references resolved, keys filtered,
//! upstream host, port and paths split out, defaults applied. Building it does no network I/O;
//! host names are resolved by the gateway's DNS service into [`Upstream::addrs`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use asbru_config::catalog::{self, RequestType, Wire};
use asbru_config::env::{self, Resolved};
use asbru_config::model::{self, Config, KeyConfig, ProviderConfig};
use asbru_providers::provider;

/// The resolved configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Providers by name.
    pub providers: HashMap<String, Arc<ProviderRuntime>>,
    /// Provider names, sorted, for listings.
    pub provider_names: Vec<String>,
    /// Request body cap in bytes.
    pub max_request_body_bytes: usize,
    /// Most fallbacks a request may use.
    pub max_fallbacks: usize,
    /// What the request log and the metrics take from requests.
    pub observe: ObserveSettings,
}

/// What the request log and the metrics take from requests (`client` and `logs_store`).
#[derive(Debug, Clone, Default)]
pub struct ObserveSettings {
    /// Requests are written to the log store.
    pub logging: bool,
    /// Prompts and completions are kept in log rows (`client.disable_content_logging` off).
    pub content: bool,
    /// A request may turn content logging off with `x-bf-disable-content-logging`
    /// (`client.allow_per_request_content_storage_override`).
    pub per_request_override: bool,
    /// Largest stored size of one content field, in bytes.
    pub max_content_bytes: usize,
    /// Request headers copied into a log row's metadata (`client.logging_headers`), lowercase.
    pub logging_headers: Vec<http::HeaderName>,
    /// Custom Prometheus labels (`client.prometheus_labels`), filled from `x-bf-prom-<label>`
    /// or `x-bf-dim-<label>` headers.
    pub prometheus_labels: Vec<String>,
    /// Every request header but credentials is kept, because a routing rule reads `headers`.
    pub all_headers: bool,
    /// Headers every inference request must carry (`client.required_headers`, the governance
    /// plugin's `required_headers`); a request without one is refused with 400.
    pub required_headers: Vec<http::HeaderName>,
}

/// Valid Prometheus label names from `client.prometheus_labels`: trimmed, lowercase, `-` as
/// `_`, each once; names that cannot be labels are left out.
fn custom_label_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let label = name.trim().to_ascii_lowercase().replace('-', "_");
        let valid = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !label.starts_with("__");
        if valid && !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

/// Content field size kept in a log row when `logs_store.max_content_bytes` is not set.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 64 * 1024;

impl ObserveSettings {
    /// The settings of `config`.
    pub fn of(config: &Config) -> ObserveSettings {
        let store = config.logs_store.clone().unwrap_or_default();
        let client = &config.client;
        ObserveSettings {
            logging: store.enabled && client.enable_logging != Some(false),
            content: client.disable_content_logging != Some(true),
            per_request_override: client.allow_per_request_content_storage_override == Some(true),
            max_content_bytes: store.max_content_bytes.unwrap_or(DEFAULT_MAX_CONTENT_BYTES).max(256),
            logging_headers: client
                .logging_headers
                .iter()
                .flatten()
                .filter_map(|h| http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).ok())
                .collect(),
            prometheus_labels: custom_label_names(client.prometheus_labels.as_deref().unwrap_or(&[])),
            required_headers: config
                .required_headers()
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            all_headers: config.governance.as_ref().is_some_and(|g| {
                g.routing_rules
                    .iter()
                    .any(|r| r.enabled != Some(false) && r.cel_expression.contains("headers"))
            }),
        }
    }

    /// Whether a request header is one filters keep (see `GatewayRequest::headers`).
    pub fn keeps_header(&self, name: &http::HeaderName) -> bool {
        let n = name.as_str();
        if self.all_headers {
            return !is_credential(n);
        }
        (n.starts_with("x-bf-") && !is_credential(n))
            || n == "traceparent"
            || n == "tracestate"
            || self.logging_headers.contains(name)
            || self.required_headers.contains(name)
    }
}

/// Headers that carry credentials: never kept, so no filter, rule or log row can read them.
fn is_credential(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            | "x-bf-vk"
            | "x-bf-api-key"
            | "x-bf-api-key-id"
            | "x-amz-security-token"
    )
}

/// Fallbacks a request may use when `client.max_fallbacks` is not set.
pub const DEFAULT_MAX_FALLBACKS: usize = 5;

impl Snapshot {
    /// An empty snapshot (no providers).
    pub fn empty() -> Snapshot {
        Snapshot {
            providers: HashMap::new(),
            provider_names: Vec::new(),
            max_request_body_bytes: mib(model::DEFAULT_MAX_BODY_MB),
            max_fallbacks: DEFAULT_MAX_FALLBACKS,
            observe: ObserveSettings::default(),
        }
    }

    /// Builds a snapshot from a validated config, reading `env.NAME` references through `lookup`.
    /// Returns the snapshot and the warnings to log (missing env vars, providers left without keys).
    pub fn build_with(config: &Config, lookup: &dyn Fn(&str) -> Option<String>) -> (Snapshot, Vec<String>) {
        let mut warnings = Vec::new();
        let mut providers = HashMap::new();
        for (name, provider) in &config.providers {
            match ProviderRuntime::build(name, provider, config, lookup, &mut warnings) {
                Some(runtime) => {
                    providers.insert(name.clone(), Arc::new(runtime));
                }
                None => warnings.push(format!(
                    "provider {name:?} is left out: its configuration cannot be used"
                )),
            }
        }
        let mut provider_names: Vec<String> = providers.keys().cloned().collect();
        provider_names.sort();
        let max_mb = config
            .server
            .max_request_body_size_mb
            .or(config.client.max_request_body_size_mb)
            .unwrap_or(model::DEFAULT_MAX_BODY_MB);
        let snapshot = Snapshot {
            providers,
            provider_names,
            max_request_body_bytes: mib(max_mb),
            max_fallbacks: config
                .client
                .max_fallbacks
                .map_or(DEFAULT_MAX_FALLBACKS, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            observe: ObserveSettings::of(config),
        };
        (snapshot, warnings)
    }

    /// Builds a snapshot reading the process environment.
    pub fn build(config: &Config) -> (Snapshot, Vec<String>) {
        Snapshot::build_with(config, &|name| std::env::var(name).ok())
    }

    /// Looks up a provider by name.
    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderRuntime>> {
        self.providers.get(name)
    }

    /// Whether `name` is a provider this snapshot knows.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    /// Splits a request's `provider/model` on the first slash when the prefix names a provider
    /// (configured, or one asbru knows); otherwise the whole text is the model.
    pub fn split_model<'a>(&self, raw: &'a str) -> (Option<&'a str>, &'a str) {
        match raw.split_once('/') {
            Some((provider, model)) if self.has_provider(provider) || catalog::builtin(provider).is_some() => {
                (Some(provider), model)
            }
            _ => (None, raw),
        }
    }
}

fn mib(mb: u64) -> usize {
    usize::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

/// One provider, ready to forward to.
#[derive(Debug)]
pub struct ProviderRuntime {
    /// Provider name.
    pub name: String,
    /// The wire it speaks.
    pub wire: Wire,
    /// No key is sent upstream.
    pub keyless: bool,
    /// Where requests go.
    pub upstream: Upstream,
    /// Usable keys (enabled, secret resolved).
    pub keys: Vec<ProviderKey>,
    /// How many keys the config declares, usable or not.
    pub configured_keys: usize,
    /// Timeouts, retries and extra headers.
    pub network: NetworkSettings,
    /// Upstream path per request type.
    pub paths: EndpointPaths,
    /// Request types this provider serves; `None` means all.
    allowed_requests: Option<HashMap<String, bool>>,
    /// Its concurrency control, when `concurrency_and_buffer_size` is set.
    pub gate: Option<Arc<crate::concurrency::ConcurrencyGate>>,
    /// `send_back_raw_response`: replies carry the provider's own body in
    /// `extra_fields.raw_response`.
    pub send_back_raw_response: bool,
}

impl ProviderRuntime {
    fn build(
        name: &str,
        config: &ProviderConfig,
        whole: &Config,
        lookup: &dyn Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Option<ProviderRuntime> {
        let empty_allows_all = whole.empty_list_allows_all();
        let builtin = catalog::builtin(name);
        let custom = config.custom_provider_config.as_ref();
        let wire = match custom {
            Some(c) => Wire::from_base_type(&c.base_provider_type)?,
            None => builtin?.wire,
        };
        let keyless = custom.map(|c| c.is_key_less).unwrap_or(false) || builtin.is_some_and(|b| b.keyless);
        // `env.NAME` works in these URLs as in every secret field.
        let raw_key_url = config.keys.iter().find_map(|k| {
            [&k.ollama_key_config, &k.vllm_key_config, &k.sgl_key_config]
                .into_iter()
                .flatten()
                .find_map(|c| c.url.clone())
                .or_else(|| Some(k.azure_key_config.as_ref()?.get("endpoint")?.as_str()?.to_string()))
                .or_else(|| {
                    // Vertex: the first key's region names the host (each key has its own).
                    let config = k.vertex_key_config.as_ref()?;
                    let region = config
                        .get("region")
                        .and_then(|r| r.as_str())
                        .unwrap_or(provider::vertex::DEFAULT_REGION);
                    Some(provider::vertex::base_url(region))
                })
                .or_else(|| {
                    // Bedrock: the first key's region names the host (each key has its own).
                    let config = k.bedrock_key_config.as_ref()?;
                    let region = config
                        .get("region")
                        .and_then(|r| r.as_str())
                        .filter(|r| !r.starts_with("env."))
                        .unwrap_or(provider::bedrock::DEFAULT_REGION);
                    Some(provider::bedrock::base_url(region))
                })
        });
        let key_url = raw_key_url.and_then(|raw| match env::resolve_with(&raw, lookup) {
            Resolved::Value(v) => Some(v),
            Resolved::MissingEnv(var) => {
                warnings.push(format!(
                    "provider {name:?}: environment variable {var} named by a key config URL is not set"
                ));
                None
            }
        });
        let base_url = config.network_config.base_url.clone().or(key_url).or_else(|| {
            builtin
                .and_then(|b| provider::default_base_url(b.name, b.wire))
                .map(str::to_string)
        });
        let Some(base_url) = base_url else {
            warnings.push(format!("provider {name:?} has no base URL"));
            return None;
        };
        let upstream = match Upstream::parse(&base_url) {
            Some(u) => u,
            None => {
                warnings.push(format!(
                    "provider {name:?}: base URL {:?} cannot be used",
                    asbru_config::file::display_url(&base_url)
                ));
                return None;
            }
        };
        // A custom provider's base_url is taken to end where the `/v1` prefix begins, unless it
        // already ends in /v1.
        let api_prefix = if upstream.base_path.ends_with("/v1") {
            ""
        } else {
            builtin.map_or(provider::openai::API_PREFIX, |b| provider::api_prefix(b.name, b.wire))
        };
        let overrides = custom.map(|c| &c.request_path_overrides);
        let path_for = |request_type: RequestType| -> Option<String> {
            if let Some(path) = overrides.and_then(|o| o.get(request_type.as_str())) {
                return Some(format!("{}{}", upstream.base_path, path));
            }
            // Azure paths name the deployment; they are built per request.
            let resource = provider::resource(wire, request_type)?;
            if wire == Wire::OpenAi && !provider::openai_compat::serves_natively(builtin.map(|b| b.name), request_type)
            {
                return None;
            }
            Some(format!("{}{}{}", upstream.base_path, api_prefix, resource))
        };
        let paths = EndpointPaths {
            chat: path_for(RequestType::ChatCompletion),
            embeddings: path_for(RequestType::Embedding),
            models: path_for(RequestType::ListModels),
            count_tokens: path_for(RequestType::CountTokens),
            responses: path_for(RequestType::Responses),
            completions: path_for(RequestType::TextCompletion),
            speech: path_for(RequestType::Speech),
            transcription: path_for(RequestType::Transcription),
            translation: path_for(RequestType::Translation),
            images: path_for(RequestType::ImageGeneration),
            moderation: path_for(RequestType::Moderation),
            files: path_for(RequestType::Files),
            batches: path_for(RequestType::Batches),
        };
        let keys = resolve_keys(
            KeyContext {
                provider: name,
                wire,
                empty_allows_all,
                keyless,
                base_url: config.network_config.base_url.as_deref(),
            },
            &config.keys,
            lookup,
            warnings,
        );
        if !keyless && keys.is_empty() {
            warnings.push(format!(
                "provider {name:?} has no usable key: requests to it will fail until one is configured"
            ));
        }
        let mut network = NetworkSettings::from_config(&config.network_config);
        network.trusted_ca = trusted_ca(name, config.network_config.ca_cert_pem.as_deref(), lookup, warnings);
        network.trust_group = network.trusted_ca.as_deref().map_or(0, |certificates| {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = foldhash::quality::FixedState::with_seed(1).build_hasher();
            hasher.write_usize(certificates.len());
            for certificate in certificates {
                hasher.write(certificate.borrow_raw_cert());
            }
            // Never 0, the group of connections with no CA of their own.
            hasher.finish() | 1
        });
        let drop_excess = whole.client.drop_excess_requests.unwrap_or(false);
        let gate = config.concurrency_and_buffer_size.map(|c| {
            Arc::new(crate::concurrency::ConcurrencyGate::new(
                c.concurrency,
                c.buffer_size,
                drop_excess,
            ))
        });
        Some(ProviderRuntime {
            gate,
            send_back_raw_response: config.send_back_raw_response.unwrap_or(false),
            name: name.to_string(),
            wire,
            keyless,
            upstream,
            keys,
            configured_keys: config.keys.len(),
            network,
            paths,
            allowed_requests: custom
                .and_then(|c| c.allowed_requests.as_ref())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect()),
        })
    }

    /// The upstream path for a request type; `None` when this provider has no such endpoint
    /// (or, for Azure, when the path depends on the deployment: see `provider::azure::path`).
    pub fn path(&self, request_type: RequestType) -> Option<&str> {
        match request_type {
            RequestType::ChatCompletion => self.paths.chat.as_deref(),
            RequestType::Embedding => self.paths.embeddings.as_deref(),
            RequestType::ListModels => self.paths.models.as_deref(),
            RequestType::CountTokens => self.paths.count_tokens.as_deref(),
            RequestType::Responses => self.paths.responses.as_deref(),
            RequestType::TextCompletion => self.paths.completions.as_deref(),
            RequestType::Speech => self.paths.speech.as_deref(),
            RequestType::Transcription => self.paths.transcription.as_deref(),
            RequestType::Translation => self.paths.translation.as_deref(),
            RequestType::ImageGeneration => self.paths.images.as_deref(),
            RequestType::Moderation => self.paths.moderation.as_deref(),
            RequestType::Files => self.paths.files.as_deref(),
            RequestType::Batches => self.paths.batches.as_deref(),
        }
    }

    /// Whether this provider can serve `request_type` at all: itself, or (Responses and legacy
    /// completions) through chat.
    pub fn supports(&self, request_type: RequestType) -> bool {
        let itself = self.answers_itself(request_type);
        match request_type {
            RequestType::Responses | RequestType::TextCompletion => {
                itself || self.supports(RequestType::ChatCompletion)
            }
            _ => itself,
        }
    }

    /// Whether this provider answers `request_type` itself, rather than through chat: Responses
    /// and legacy completions where the provider has them and `allowed_requests` allows them.
    pub fn native(&self, request_type: RequestType, stream: bool) -> bool {
        self.answers_itself(request_type) && self.allows_exactly(request_type, stream)
    }

    /// Whether this provider has an endpoint of its own for `request_type`. On the OpenAI wire
    /// only the path counts for Responses and legacy completions: most OpenAI-compatible hosts
    /// serve chat alone, and their paths are set only where the host has these APIs.
    fn answers_itself(&self, request_type: RequestType) -> bool {
        let by_path = self.path(request_type).is_some();
        match (self.wire, request_type) {
            (Wire::OpenAi, RequestType::Responses | RequestType::TextCompletion) => by_path,
            _ => by_path || provider::serves(self.wire, request_type),
        }
    }

    /// The request type sent upstream for a client's `request_type`: Responses and legacy
    /// completions go as chat to a provider that does not answer them itself.
    pub fn upstream_request_type(&self, request_type: RequestType, stream: bool) -> RequestType {
        match request_type {
            RequestType::Responses | RequestType::TextCompletion if !self.native(request_type, stream) => {
                RequestType::ChatCompletion
            }
            RequestType::ChatCompletion if self.chat_as_responses(stream) => RequestType::Responses,
            other => other,
        }
    }

    /// Whether chat requests go to this provider as Responses requests: it is configured to
    /// serve the Responses API and not chat (`allowed_requests`), and has the Responses API.
    pub fn chat_as_responses(&self, stream: bool) -> bool {
        !self.allows_exactly(RequestType::ChatCompletion, stream) && self.native(RequestType::Responses, stream)
    }

    /// Whether this provider serves `request_type` (custom providers may restrict it), itself
    /// or, for Responses and legacy completions, through chat (and chat through Responses, for a
    /// provider configured to serve only the Responses API).
    pub fn allows(&self, request_type: RequestType, stream: bool) -> bool {
        match request_type {
            RequestType::Responses | RequestType::TextCompletion => {
                self.allows_exactly(request_type, stream) || self.allows_exactly(RequestType::ChatCompletion, stream)
            }
            RequestType::ChatCompletion => self.allows_exactly(request_type, stream) || self.chat_as_responses(stream),
            _ => self.allows_exactly(request_type, stream),
        }
    }

    /// Whether `allowed_requests` (when set) names `request_type`.
    fn allows_exactly(&self, request_type: RequestType, stream: bool) -> bool {
        let Some(allowed) = &self.allowed_requests else {
            return true;
        };
        let name = if stream {
            request_type.stream_name()
        } else {
            request_type.as_str()
        };
        allowed.get(name).copied().unwrap_or(false)
    }
}

/// What key resolution needs to know about the provider.
struct KeyContext<'a> {
    provider: &'a str,
    /// The wire the provider speaks (it decides the auth header).
    wire: Wire,
    /// An empty `models` list means every model.
    empty_allows_all: bool,
    /// The provider takes no key.
    keyless: bool,
    /// The provider's own `network_config.base_url`, which wins over per-key hosts.
    base_url: Option<&'a str>,
}

fn resolve_keys(
    context: KeyContext<'_>,
    keys: &[KeyConfig],
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Vec<ProviderKey> {
    let KeyContext {
        provider,
        wire,
        empty_allows_all,
        keyless,
        base_url,
    } = context;
    let mut out = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if key.enabled == Some(false) {
            continue;
        }
        let label = key
            .name
            .clone()
            .or_else(|| key.id.clone())
            .unwrap_or_else(|| format!("#{i}"));
        let secret = match env::resolve_with(&key.value, lookup) {
            Resolved::Value(v) => v,
            Resolved::MissingEnv(var) => {
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: environment variable {var} is not set; the key is left out of rotation"
                ));
                continue;
            }
        };
        let vertex = vertex_key(provider, &label, key, base_url, lookup, warnings);
        let bedrock = bedrock_key(provider, &label, key, &secret, base_url, lookup, warnings);
        // A Vertex key with a service account, or a Bedrock key with AWS credentials, needs no
        // value of its own.
        let signs_in = vertex.as_ref().is_some_and(|v| v.service_account.is_some())
            || bedrock.as_ref().is_some_and(|b| b.credentials.is_some());
        if key.bedrock_key_config.is_some() && bedrock.is_none() {
            continue;
        }
        if secret.is_empty() && !keyless && !signs_in {
            warnings.push(format!(
                "provider {provider:?} key {label:?} has an empty value; the key is left out of rotation"
            ));
            continue;
        }
        let models = match &key.models {
            None => ModelFilter::All,
            Some(list) if list.iter().any(|m| m == "*") => ModelFilter::All,
            Some(list) if list.is_empty() && empty_allows_all => ModelFilter::All,
            Some(list) => ModelFilter::Only(list.clone()),
        };
        let azure = azure_key(provider, &label, key, lookup, warnings);
        // Vertex keys send an access token or their API key as the request decides, and Bedrock
        // keys with AWS credentials sign each request: only the others have a fixed header.
        let fixed_auth = match wire {
            Wire::Vertex => false,
            Wire::Bedrock => !signs_in,
            _ => true,
        };
        let auth = (fixed_auth && !secret.is_empty())
            .then(|| {
                let (name, value) = provider::auth_header(wire, &secret);
                let mut value = http::HeaderValue::try_from(value).ok()?;
                value.set_sensitive(true);
                Some(AuthHeader { name, value })
            })
            .flatten();
        out.push(ProviderKey {
            id: key.id.clone().unwrap_or_else(|| label.clone()),
            name: label,
            secret,
            models,
            blacklisted: key.blacklisted_models.clone(),
            weight: key.weight.unwrap_or(1.0),
            aliases: key
                .aliases
                .iter()
                .map(|(public, target)| (public.clone(), target.model_name().to_string()))
                .chain(bedrock.iter().flat_map(|b| b.deployments.clone()))
                .collect(),
            azure,
            vertex,
            bedrock,
            auth,
        });
    }
    out
}

/// A key's Vertex AI project, region and credentials (`vertex_key_config`).
fn vertex_key(
    provider: &str,
    label: &str,
    key: &KeyConfig,
    base_url: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<VertexKey>> {
    let config = key.vertex_key_config.as_ref()?;
    let mut field = |name: &str| -> Option<String> {
        let raw = config.get(name)?.as_str()?;
        match env::resolve_with(raw, lookup) {
            Resolved::Value(v) => Some(v).filter(|v| !v.is_empty()),
            Resolved::MissingEnv(var) => {
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: environment variable {var} for vertex_key_config.{name} is not set"
                ));
                None
            }
        }
    };
    let region = field("region").unwrap_or_else(|| provider::vertex::DEFAULT_REGION.to_string());
    let project_id = field("project_id");
    // The service account: a JSON document, as a string (Bifrost's form) or inline.
    let credentials = match config.get("auth_credentials") {
        Some(serde_json::Value::Object(_)) => config.get("auth_credentials").map(|v| v.to_string()),
        _ => field("auth_credentials"),
    };
    let service_account = match credentials {
        None => None,
        Some(json) => match ServiceAccount::parse(&json) {
            Ok(account) => Some(Arc::new(account)),
            Err(why) => {
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: vertex_key_config.auth_credentials {why}; the key is left out of rotation"
                ));
                return None;
            }
        },
    };
    if service_account.is_some() && project_id.is_none() {
        warnings.push(format!(
            "provider {provider:?} key {label:?}: vertex_key_config.project_id is required with a service account"
        ));
        return None;
    }
    let url = base_url.map_or_else(|| provider::vertex::base_url(&region), str::to_string);
    let Some(upstream) = Upstream::parse(&url) else {
        warnings.push(format!(
            "provider {provider:?} key {label:?}: vertex URL {url:?} cannot be used"
        ));
        return None;
    };
    Some(Arc::new(VertexKey {
        project_id,
        region,
        upstream: Arc::new(upstream),
        service_account,
    }))
}

/// A key's AWS region, credentials and inference-profile settings (`bedrock_key_config`).
/// Credentials come from `access_key` / `secret_key` / `session_token` (each may be an `env.`
/// reference); when the config names none and the key has no value (a Bedrock API key), they
/// come from the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
/// variables. `None` (with a warning) when the key cannot be used.
fn bedrock_key(
    provider: &str,
    label: &str,
    key: &KeyConfig,
    api_key: &str,
    base_url: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<BedrockKey>> {
    let config = key.bedrock_key_config.as_ref()?;
    let mut missing = false;
    let mut field = |name: &str| -> Option<String> {
        let raw = config.get(name)?.as_str()?;
        match env::resolve_with(raw, lookup) {
            Resolved::Value(v) => Some(v).filter(|v| !v.is_empty()),
            Resolved::MissingEnv(var) => {
                missing = true;
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: environment variable {var} for bedrock_key_config.{name} is not set"
                ));
                None
            }
        }
    };
    let access_key = field("access_key");
    let secret_key = field("secret_key");
    let session_token = field("session_token");
    let region = field("region")
        .or_else(|| lookup("AWS_REGION"))
        .or_else(|| lookup("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| provider::bedrock::DEFAULT_REGION.to_string());
    let arn = field("arn");
    if missing {
        warnings.push(format!(
            "provider {provider:?} key {label:?}: the key is left out of rotation"
        ));
        return None;
    }
    let credentials = match (access_key, secret_key) {
        (Some(access), Some(secret)) => Some(provider::bedrock::AwsCredentials::new(
            &access,
            &secret,
            session_token.as_deref(),
        )),
        (Some(_), None) | (None, Some(_)) => {
            warnings.push(format!(
                "provider {provider:?} key {label:?}: bedrock_key_config needs both access_key and secret_key; the key is left out of rotation"
            ));
            return None;
        }
        // A Bedrock API key is sent as a Bearer token; with neither, the environment's.
        (None, None) if !api_key.is_empty() => None,
        (None, None) => match (lookup("AWS_ACCESS_KEY_ID"), lookup("AWS_SECRET_ACCESS_KEY")) {
            (Some(access), Some(secret)) if !access.is_empty() && !secret.is_empty() => {
                let token = lookup("AWS_SESSION_TOKEN");
                Some(provider::bedrock::AwsCredentials::new(
                    &access,
                    &secret,
                    token.as_deref(),
                ))
            }
            _ => {
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: no AWS credentials (bedrock_key_config.access_key and secret_key, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a Bedrock API key as the value); the key is left out of rotation"
                ));
                return None;
            }
        },
    };
    let deployments = config
        .get("deployments")
        .and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(model, id)| Some((model.clone(), id.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let url = base_url.map_or_else(|| provider::bedrock::base_url(&region), str::to_string);
    let Some(upstream) = Upstream::parse(&url) else {
        warnings.push(format!(
            "provider {provider:?} key {label:?}: bedrock URL {:?} cannot be used",
            asbru_config::file::display_url(&url)
        ));
        return None;
    };
    Some(Arc::new(BedrockKey {
        region,
        upstream: Arc::new(upstream),
        credentials,
        arn,
        deployments,
    }))
}

fn azure_key(
    provider: &str,
    label: &str,
    key: &KeyConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<AzureKey>> {
    let config = key.azure_key_config.as_ref()?;
    let mut field = |name: &str| -> Option<String> {
        let raw = config.get(name)?.as_str()?;
        match env::resolve_with(raw, lookup) {
            Resolved::Value(v) => Some(v),
            Resolved::MissingEnv(var) => {
                warnings.push(format!(
                    "provider {provider:?} key {label:?}: environment variable {var} for azure_key_config.{name} is not set"
                ));
                None
            }
        }
    };
    let endpoint = field("endpoint")?;
    let Some(upstream) = Upstream::parse(&endpoint) else {
        warnings.push(format!(
            "provider {provider:?} key {label:?}: azure endpoint {endpoint:?} is not a URL"
        ));
        return None;
    };
    Some(Arc::new(AzureKey {
        upstream: Arc::new(upstream),
        api_version: field("api_version").unwrap_or_else(|| provider::azure::DEFAULT_API_VERSION.to_string()),
    }))
}

/// Which models a key may serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFilter {
    /// Every model.
    All,
    /// Only these (an empty list serves none).
    Only(Vec<String>),
}

/// One usable upstream key. Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct ProviderKey {
    /// Stable id (the configured id, else the name).
    pub id: String,
    /// Display name; never the secret.
    pub name: String,
    /// The resolved secret. Never logged or shown.
    pub secret: String,
    /// Models allowed.
    pub models: ModelFilter,
    /// Models refused.
    pub blacklisted: Vec<String>,
    /// Relative weight.
    pub weight: f64,
    /// Public model -> upstream model.
    pub aliases: HashMap<String, String>,
    /// Azure endpoint and API version, for Azure keys.
    pub azure: Option<Arc<AzureKey>>,
    /// Vertex AI project, region and credentials, for Vertex keys.
    pub vertex: Option<Arc<VertexKey>>,
    /// AWS region and credentials, for Bedrock keys.
    pub bedrock: Option<Arc<BedrockKey>>,
    /// The auth header this key sends on every request, built once (marked sensitive); `None`
    /// when the request decides it (Vertex, signed Bedrock), the secret is empty, or the secret
    /// cannot be a header value (the request then fails with a clear error).
    pub auth: Option<AuthHeader>,
}

/// A provider key's auth header, ready to send.
#[derive(Clone)]
pub struct AuthHeader {
    /// Header name (`authorization`, `x-api-key`, `api-key`, `x-goog-api-key`).
    pub name: &'static str,
    /// Header value, marked sensitive.
    pub value: http::HeaderValue,
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("models", &self.models)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl ProviderKey {
    /// Whether this key may serve `model`.
    pub fn serves(&self, model: &str) -> bool {
        if self.blacklisted.iter().any(|m| m == model) {
            return false;
        }
        if self.aliases.contains_key(model) {
            return true;
        }
        match &self.models {
            ModelFilter::All => true,
            ModelFilter::Only(list) => list.iter().any(|m| m == model),
        }
    }

    /// The model name to send upstream for `model` through this key.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.aliases.get(model).map(String::as_str).unwrap_or(model)
    }
}

/// Upstream paths per request type (`None`: no such endpoint).
#[derive(Debug, Clone)]
pub struct EndpointPaths {
    /// Chat completions (Messages for Anthropic).
    pub chat: Option<String>,
    /// Embeddings.
    pub embeddings: Option<String>,
    /// Model listing.
    pub models: Option<String>,
    /// Token counting (Anthropic).
    pub count_tokens: Option<String>,
    /// OpenAI's Responses API, where the provider serves it.
    pub responses: Option<String>,
    /// Legacy completions, where the provider serves them.
    pub completions: Option<String>,
    /// Text to speech.
    pub speech: Option<String>,
    /// Audio transcription.
    pub transcription: Option<String>,
    /// Audio translation.
    pub translation: Option<String>,
    /// Image generation.
    pub images: Option<String>,
    /// Moderations.
    pub moderation: Option<String>,
    /// Files.
    pub files: Option<String>,
    /// Batches.
    pub batches: Option<String>,
}

/// A key's own Azure endpoint.
#[derive(Debug)]
pub struct AzureKey {
    /// The resource endpoint.
    pub upstream: Arc<Upstream>,
    /// `api-version` query value.
    pub api_version: String,
}

/// A key's AWS Bedrock region and credentials.
#[derive(Debug)]
pub struct BedrockKey {
    /// The AWS region (`us-east-1`, ...), which the signature names.
    pub region: String,
    /// Where this key's requests go (the region's runtime host, unless the provider sets a base
    /// URL).
    pub upstream: Arc<Upstream>,
    /// SigV4 credentials; `None`: the key's value is a Bedrock API key, sent as a Bearer token.
    pub credentials: Option<provider::bedrock::AwsCredentials>,
    /// An inference-profile ARN the model id is appended to (`bedrock_key_config.arn`).
    pub arn: Option<String>,
    /// Model -> model id, inference profile id or ARN (`bedrock_key_config.deployments`).
    pub deployments: Vec<(String, String)>,
}

/// A key's Vertex AI project, region and credentials.
#[derive(Debug)]
pub struct VertexKey {
    /// The Google Cloud project; `None` for an API key in express mode.
    pub project_id: Option<String>,
    /// The region (`us-central1`, `global`, ...).
    pub region: String,
    /// Where this key's requests go (the region's host, unless the provider sets a base URL).
    pub upstream: Arc<Upstream>,
    /// The service account whose access tokens authorise requests; `None`: the key's value is
    /// an API key.
    pub service_account: Option<Arc<ServiceAccount>>,
}

/// A Google service account, from its JSON key file. Its `Debug` output never shows the key.
pub struct ServiceAccount {
    /// `client_email`: the token's issuer.
    pub client_email: String,
    /// `private_key_id`, sent as the token's `kid`.
    pub private_key_id: Option<String>,
    /// `private_key`: the PEM RSA key that signs token requests. Never logged or shown.
    pub private_key: String,
    /// `token_uri`: where signed assertions are exchanged for access tokens.
    pub token_uri: String,
    /// The token endpoint, parsed.
    pub token_upstream: Arc<Upstream>,
    /// The token endpoint's path and query.
    pub token_path: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads a service account key file (`{"type": "service_account", "client_email",
    /// "private_key", "token_uri", ...}`). The error says what is missing, never the key.
    pub fn parse(json: &str) -> Result<ServiceAccount, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|_| "is not a service account JSON document".to_string())?;
        let text = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let client_email = text("client_email").ok_or("has no client_email")?;
        let private_key = text("private_key").ok_or("has no private_key")?;
        let token_uri = text("token_uri").unwrap_or_else(|| "https://oauth2.googleapis.com/token".to_string());
        let token_upstream = Upstream::parse(&token_uri).ok_or("has a token_uri that is not a URL")?;
        let token_path = token_uri
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_string()))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        Ok(ServiceAccount {
            client_email,
            private_key_id: text("private_key_id"),
            private_key,
            token_uri,
            token_upstream: Arc::new(token_upstream),
            token_path,
        })
    }
}

/// Where a provider's requests go.
#[derive(Debug)]
pub struct Upstream {
    /// `https`.
    pub tls: bool,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Host` header value.
    pub authority: String,
    /// Path prefix from the base URL, without a trailing slash.
    pub base_path: String,
    /// Resolved addresses; filled at build for IP literals, else by the gateway's DNS service.
    pub addrs: ArcSwap<Vec<SocketAddr>>,
}

impl Upstream {
    /// Parses `http(s)://host[:port][/path]`.
    pub fn parse(base_url: &str) -> Option<Upstream> {
        let uri: http::Uri = base_url.parse().ok()?;
        let tls = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return None;
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri.authority()?.as_str().to_string();
        let base_path = uri.path().trim_end_matches('/').to_string();
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => Vec::new(),
        };
        Some(Upstream {
            tls,
            host,
            port,
            authority,
            base_path,
            addrs: ArcSwap::from_pointee(addrs),
        })
    }

    /// Whether the host needs a DNS lookup.
    pub fn needs_dns(&self) -> bool {
        self.host.parse::<IpAddr>().is_err()
    }
}

/// Per-provider network behaviour with defaults applied.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Whole-request timeout (connect, send, response head, non-stream body).
    pub request_timeout: Duration,
    /// Longest silence between stream chunks.
    pub stream_idle_timeout: Duration,
    /// Retries after the first try.
    pub max_retries: u32,
    /// First backoff.
    pub backoff_initial: Duration,
    /// Backoff ceiling.
    pub backoff_max: Duration,
    /// Headers added upstream (names lowercased, values with env refs resolved).
    pub extra_headers: Vec<(String, String)>,
    /// Skip TLS verification.
    pub insecure_skip_verify: bool,
    /// `ca_cert_pem`: the certificates the upstream's chain must end in, instead of the system
    /// roots. An empty list (nothing usable in the PEM) refuses every TLS connection.
    pub trusted_ca: Option<Arc<pingora::protocols::tls::CaType>>,
    /// A hash of `trusted_ca`'s certificates (0 without one), set as the upstream peer's group
    /// key: Pingora's connection pool does not tell trust stores apart, so without it a
    /// connection verified under one provider's CA (or before a reload changed it) could be
    /// reused for a provider that trusts another.
    pub trust_group: u64,
    /// Prefer HTTP/2 to this upstream.
    pub enforce_http2: bool,
    /// Seconds a key is skipped after it answered 401/403, or 429 three times in ten seconds.
    pub key_cooldown_seconds: i64,
}

/// The key cooldown when `network_config.key_cooldown_seconds` is not set.
pub const DEFAULT_KEY_COOLDOWN_SECONDS: i64 = 30;

impl NetworkSettings {
    fn from_config(config: &model::NetworkConfig) -> NetworkSettings {
        NetworkSettings {
            request_timeout: config
                .default_request_timeout_in_seconds
                .map(Duration::from_secs)
                .unwrap_or(model::DEFAULT_REQUEST_TIMEOUT),
            stream_idle_timeout: config
                .stream_idle_timeout_in_seconds
                .map(Duration::from_secs)
                .unwrap_or(model::DEFAULT_STREAM_IDLE_TIMEOUT),
            max_retries: config.max_retries.unwrap_or(0),
            backoff_initial: config.retry_backoff_initial.unwrap_or(model::DEFAULT_BACKOFF_INITIAL),
            backoff_max: config.retry_backoff_max.unwrap_or(model::DEFAULT_BACKOFF_MAX),
            extra_headers: config
                .extra_headers
                .iter()
                .filter_map(|(k, v)| match env::resolve(v) {
                    Resolved::Value(v) => Some((k.to_ascii_lowercase(), v)),
                    Resolved::MissingEnv(_) => None,
                })
                .collect(),
            insecure_skip_verify: config.insecure_skip_verify.unwrap_or(false),
            trusted_ca: None,
            trust_group: 0,
            enforce_http2: config.enforce_http2.unwrap_or(false),
            key_cooldown_seconds: config
                .key_cooldown_seconds
                .map_or(DEFAULT_KEY_COOLDOWN_SECONDS, |s| i64::try_from(s).unwrap_or(i64::MAX)),
        }
    }
}

/// The certificates of a provider's `network_config.ca_cert_pem` (an `env.NAME` reference
/// allowed), parsed once. Blocks that are not certificates are skipped with a warning; when none
/// is left, the list is empty and the provider's TLS connections fail rather than falling back to
/// the system roots.
fn trusted_ca(
    provider: &str,
    pem: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Option<Arc<pingora::protocols::tls::CaType>> {
    use pingora::utils::tls::WrappedX509;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let raw = pem.filter(|p| !p.trim().is_empty())?;
    let text = match env::resolve_with(raw, lookup) {
        Resolved::Value(v) => v,
        Resolved::MissingEnv(var) => {
            warnings.push(format!(
                "provider {provider:?}: environment variable {var} for network_config.ca_cert_pem is not set; its TLS connections will fail"
            ));
            return Some(Arc::from(Vec::new()));
        }
    };
    let mut certificates = Vec::new();
    for (i, block) in CertificateDer::pem_slice_iter(text.as_bytes()).enumerate() {
        let parsed = block.ok().and_then(|der| {
            WrappedX509::try_new(der.to_vec(), |raw| {
                x509_parser::parse_x509_certificate(raw).map(|(_, certificate)| certificate)
            })
            .ok()
        });
        match parsed {
            Some(certificate) => certificates.push(certificate),
            None => warnings.push(format!(
                "provider {provider:?}: certificate {} in network_config.ca_cert_pem cannot be read; it is left out",
                i + 1
            )),
        }
    }
    if certificates.is_empty() {
        warnings.push(format!(
            "provider {provider:?}: network_config.ca_cert_pem holds no usable certificate; its TLS connections will fail"
        ));
    }
    Some(Arc::from(certificates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use asbru_config::file::load_str;

    fn build(src: &str, env: &[(&str, &str)]) -> (Snapshot, Vec<String>) {
        let loaded = load_str(src, "t.yaml").expect("valid config");
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Snapshot::build_with(&loaded.config, &|name| env.get(name).cloned())
    }

    #[test]
    fn missing_env_key_is_left_out_with_a_warning() {
        let (snap, warnings) = build(
            "providers:\n  openai:\n    keys:\n      - {name: a, value: env.A_KEY}\n      - {name: b, value: env.B_KEY}\n",
            &[("B_KEY", "sk-b")],
        );
        let openai = snap.provider("openai").expect("openai");
        assert_eq!(openai.keys.len(), 1);
        assert_eq!(openai.keys[0].secret, "sk-b");
        assert!(warnings.iter().any(|w| w.contains("A_KEY") && w.contains("left out")));
        assert!(!warnings.iter().any(|w| w.contains("sk-b")));
    }

    #[test]
    fn default_paths_and_base_urls() {
        let (snap, _) = build(
            "providers:\n  groq: {keys: [{value: k}]}\n  perplexity: {keys: [{value: k}]}\n  mine:\n    keys: [{value: k}]\n    network_config: {base_url: 'http://127.0.0.1:9000/api/'}\n    custom_provider_config: {base_provider_type: openai, request_path_overrides: {embedding: /embed}}\n",
            &[],
        );
        let groq = snap.provider("groq").expect("groq");
        assert!(groq.upstream.tls);
        assert_eq!(groq.upstream.host, "api.groq.com");
        assert_eq!(
            groq.path(RequestType::ChatCompletion),
            Some("/openai/v1/chat/completions")
        );
        let pplx = snap.provider("perplexity").expect("pplx");
        assert_eq!(pplx.path(RequestType::ChatCompletion), Some("/chat/completions"));
        let mine = snap.provider("mine").expect("mine");
        assert_eq!(mine.upstream.port, 9000);
        assert_eq!(mine.upstream.addrs.load().len(), 1);
        assert_eq!(mine.path(RequestType::ChatCompletion), Some("/api/v1/chat/completions"));
        assert_eq!(mine.path(RequestType::Embedding), Some("/api/embed"));
    }

    #[test]
    fn anthropic_and_azure_paths() {
        let (snap, warnings) = build(
            "providers:\n  anthropic: {keys: [{value: k}]}\n  azure:\n    keys:\n      - value: k\n        aliases: {gpt-4o: my-deployment}\n        azure_key_config: {endpoint: env.AZ_ENDPOINT, api_version: '2024-06-01'}\n",
            &[("AZ_ENDPOINT", "https://res.openai.azure.com")],
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let anthropic = snap.provider("anthropic").expect("anthropic");
        assert_eq!(anthropic.path(RequestType::ChatCompletion), Some("/v1/messages"));
        assert_eq!(
            anthropic.path(RequestType::CountTokens),
            Some("/v1/messages/count_tokens")
        );
        assert!(!anthropic.supports(RequestType::Embedding));
        let azure = snap.provider("azure").expect("azure");
        assert_eq!(azure.upstream.host, "res.openai.azure.com");
        let key = &azure.keys[0];
        let az = key.azure.as_ref().expect("azure key");
        assert_eq!(az.api_version, "2024-06-01");
        assert_eq!(key.upstream_model("gpt-4o"), "my-deployment");
        assert_eq!(
            provider::azure::path("", "my-deployment", RequestType::ChatCompletion, &az.api_version).as_deref(),
            Some("/openai/deployments/my-deployment/chat/completions?api-version=2024-06-01")
        );
    }

    #[test]
    fn model_filters() {
        let (snap, _) = build(
            "providers:\n  openai:\n    keys:\n      - {name: all, value: k}\n      - {name: none, value: k, models: []}\n      - {name: some, value: k, models: [gpt-4o], blacklisted_models: [gpt-4o-mini]}\n",
            &[],
        );
        let keys = &snap.provider("openai").expect("openai").keys;
        assert!(keys[0].serves("anything"));
        assert!(!keys[1].serves("gpt-4o"));
        assert!(keys[2].serves("gpt-4o"));
        assert!(!keys[2].serves("gpt-4o-mini"));
        let (snap, _) = build(
            "version: 1\nproviders:\n  openai:\n    keys:\n      - {value: k, models: []}\n",
            &[],
        );
        assert!(snap.provider("openai").expect("openai").keys[0].serves("x"));
    }

    #[test]
    fn env_references_work_in_key_config_urls() {
        let yaml = "providers:\n  ollama:\n    keys: [{value: '', ollama_key_config: {url: env.OLLAMA_URL}}]\n";
        let (snap, warnings) = build(yaml, &[("OLLAMA_URL", "http://10.1.2.3:11434")]);
        let ollama = snap.provider("ollama").expect("ollama");
        assert_eq!(ollama.upstream.host, "10.1.2.3", "{warnings:?}");
        let (_, warnings) = build(yaml, &[]);
        assert!(warnings.iter().any(|w| w.contains("OLLAMA_URL")), "{warnings:?}");
    }

    #[test]
    fn bedrock_credentials_from_config_env_refs_or_the_environment() {
        // Static credentials (env references), the key's region naming its host.
        let yaml = "providers:\n  bedrock:\n    keys: [{name: a, value: '', bedrock_key_config: {access_key: env.AK, secret_key: env.SK, region: eu-central-1, deployments: {fast: us.meta.llama3}}}]\n";
        let (snap, warnings) = build(yaml, &[("AK", "AKID1"), ("SK", "secret-1")]);
        let bedrock = snap.provider("bedrock").expect("bedrock");
        let key = &bedrock.keys[0];
        let aws = key.bedrock.as_ref().expect("bedrock key");
        assert!(aws.credentials.is_some(), "{warnings:?}");
        assert_eq!(aws.region, "eu-central-1");
        assert_eq!(aws.upstream.host, "bedrock-runtime.eu-central-1.amazonaws.com");
        assert_eq!(key.upstream_model("fast"), "us.meta.llama3");
        assert!(!format!("{key:?}").contains("secret-1"));
        // A missing reference leaves the key out.
        let (snap, warnings) = build(yaml, &[("AK", "AKID1")]);
        assert!(snap.provider("bedrock").is_some_and(|p| p.keys.is_empty()));
        assert!(warnings.iter().any(|w| w.contains("SK")), "{warnings:?}");
        // Neither config credentials nor a value: the standard AWS variables.
        let yaml = "providers:\n  bedrock:\n    keys: [{name: env, value: '', bedrock_key_config: {}}]\n";
        let (snap, _) = build(
            yaml,
            &[
                ("AWS_ACCESS_KEY_ID", "AKID2"),
                ("AWS_SECRET_ACCESS_KEY", "s2"),
                ("AWS_REGION", "ap-south-1"),
            ],
        );
        let aws = snap
            .provider("bedrock")
            .and_then(|p| p.keys[0].bedrock.clone())
            .expect("key");
        assert!(aws.credentials.is_some());
        assert_eq!(aws.region, "ap-south-1");
        let (snap, warnings) = build(yaml, &[]);
        assert!(snap.provider("bedrock").is_some_and(|p| p.keys.is_empty()));
        assert!(warnings.iter().any(|w| w.contains("AWS_ACCESS_KEY_ID")), "{warnings:?}");
        // A value and no credentials: a Bedrock API key.
        let yaml =
            "providers:\n  bedrock:\n    keys: [{name: api, value: brk-1, bedrock_key_config: {region: us-west-2}}]\n";
        let (snap, _) = build(yaml, &[]);
        let key = &snap.provider("bedrock").expect("bedrock").keys[0];
        assert!(key.bedrock.as_ref().is_some_and(|b| b.credentials.is_none()));
        assert_eq!(key.secret, "brk-1");
    }

    #[test]
    fn keyless_ollama_needs_no_key() {
        let (snap, warnings) = build("providers:\n  ollama: {}\n", &[]);
        let ollama = snap.provider("ollama").expect("ollama");
        assert!(ollama.keyless);
        assert_eq!(ollama.upstream.host, "localhost");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn body_cap_precedence() {
        let (snap, _) = build("client: {max_request_body_size_mb: 7}\n", &[]);
        assert_eq!(snap.max_request_body_bytes, 7 * 1024 * 1024);
        let (snap, _) = build(
            "server: {max_request_body_size_mb: 3}\nclient: {max_request_body_size_mb: 7}\n",
            &[],
        );
        assert_eq!(snap.max_request_body_bytes, 3 * 1024 * 1024);
    }
}
