//! The management API under `/api`, with Bifrost's paths and shapes: providers and their keys
//! ([`providers`]), governance entities ([`governance`]), version and config. Every write is
//! validated like a config file ([`validate`]), committed to the config store in one
//! transaction, and installed on this node before the reply ([`reload`]); other nodes follow
//! through the store sync. Store calls run on the blocking pool, never on the inference path.
//!
//! Safety: with admin authentication on ([`auth`]), every route but `/api/session/*` needs it.
//! With it off, the API answers only clients on loopback unless
//! `server.allow_unauthenticated_admin: true`, so an open admin API (which could point a
//! provider at internal services) is never exposed by accident.

pub mod audit;
pub mod auth;
pub mod governance;
pub mod logs;
pub mod openapi;
pub mod plugins;
pub mod providers;
pub mod quota;
pub mod reload;
pub mod reloader;
pub mod reply;
pub mod test_provider;
pub mod validate;

use std::sync::{Arc, LazyLock};

use asbru_config::Config;
use asbru_config::governance::{
    Budget, Customer, ModelConfig, PricingOverride, ProviderGovernance, RateLimit, RoutingRule, Team,
};
use asbru_store::backend::ConfigStore;
use bytes::BytesMut;
use http::Method;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::json;

use self::governance as gov;
use self::logs::{Chart, LogRoute};
use self::reply::{ApiError, ApiResult, Reply};
use crate::state::Gateway;

/// What a management handler works with.
pub struct Api<'a> {
    /// The config store.
    pub store: &'a dyn ConfigStore,
    /// The config file (process settings).
    pub file: &'a Config,
    /// The effective config in force (file and store): what writes are validated against.
    pub effective: Arc<Config>,
}

/// Largest management request body.
const MAX_BODY: usize = 1024 * 1024;

/// The governance kinds with the generic routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Teams,
    Customers,
    ModelConfigs,
    RoutingRules,
    Providers,
    PricingOverrides,
    Budgets,
    RateLimits,
}

/// A matched management route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRoute {
    OpenApi,
    Audit,
    Plugins,
    Plugin,
    Version,
    Config,
    Providers,
    Provider,
    ProviderKeys,
    ProviderKey,
    TestProvider,
    Keys,
    VirtualKeys,
    VirtualKey,
    RotateVirtualKey,
    BudgetOverride,
    Entities(Kind),
    Entity(Kind),
    Logs(logs::LogRoute),
}

/// Every routed management path (`/api/session/*` and the quota route are answered before
/// routing, see `serve`). The OpenAPI document is generated from this table.
pub(crate) const ROUTE_TABLE: &[(&str, ApiRoute)] = &[
    ("/api/openapi.json", ApiRoute::OpenApi),
    ("/api/audit", ApiRoute::Audit),
    ("/api/plugins", ApiRoute::Plugins),
    ("/api/plugins/{name}", ApiRoute::Plugin),
    ("/api/version", ApiRoute::Version),
    ("/api/config", ApiRoute::Config),
    ("/api/providers", ApiRoute::Providers),
    ("/api/providers/{provider}", ApiRoute::Provider),
    ("/api/providers/{provider}/keys", ApiRoute::ProviderKeys),
    ("/api/providers/{provider}/test", ApiRoute::TestProvider),
    ("/api/providers/{provider}/keys/{id}", ApiRoute::ProviderKey),
    ("/api/keys", ApiRoute::Keys),
    ("/api/governance/virtual-keys", ApiRoute::VirtualKeys),
    ("/api/governance/virtual-keys/{id}", ApiRoute::VirtualKey),
    ("/api/governance/virtual-keys/{id}/rotate", ApiRoute::RotateVirtualKey),
    (
        "/api/governance/virtual-keys/{id}/budgets/{budget_id}/override",
        ApiRoute::BudgetOverride,
    ),
    ("/api/governance/teams", ApiRoute::Entities(Kind::Teams)),
    ("/api/governance/teams/{id}", ApiRoute::Entity(Kind::Teams)),
    ("/api/governance/customers", ApiRoute::Entities(Kind::Customers)),
    ("/api/governance/customers/{id}", ApiRoute::Entity(Kind::Customers)),
    ("/api/governance/model-configs", ApiRoute::Entities(Kind::ModelConfigs)),
    (
        "/api/governance/model-configs/{id}",
        ApiRoute::Entity(Kind::ModelConfigs),
    ),
    ("/api/governance/routing-rules", ApiRoute::Entities(Kind::RoutingRules)),
    (
        "/api/governance/routing-rules/{id}",
        ApiRoute::Entity(Kind::RoutingRules),
    ),
    ("/api/routing/rules", ApiRoute::Entities(Kind::RoutingRules)),
    ("/api/routing/rules/{id}", ApiRoute::Entity(Kind::RoutingRules)),
    ("/api/governance/providers", ApiRoute::Entities(Kind::Providers)),
    ("/api/governance/providers/{id}", ApiRoute::Entity(Kind::Providers)),
    (
        "/api/governance/pricing-overrides",
        ApiRoute::Entities(Kind::PricingOverrides),
    ),
    (
        "/api/governance/pricing-overrides/{id}",
        ApiRoute::Entity(Kind::PricingOverrides),
    ),
    ("/api/governance/budgets", ApiRoute::Entities(Kind::Budgets)),
    ("/api/governance/rate-limits", ApiRoute::Entities(Kind::RateLimits)),
    ("/api/logs", ApiRoute::Logs(LogRoute::List)),
    ("/api/logs/stats", ApiRoute::Logs(LogRoute::Stats)),
    (
        "/api/logs/histogram",
        ApiRoute::Logs(LogRoute::Histogram(Chart::Requests)),
    ),
    (
        "/api/logs/histogram/tokens",
        ApiRoute::Logs(LogRoute::Histogram(Chart::Tokens)),
    ),
    (
        "/api/logs/histogram/cost",
        ApiRoute::Logs(LogRoute::Histogram(Chart::Cost)),
    ),
    (
        "/api/logs/histogram/models",
        ApiRoute::Logs(LogRoute::Histogram(Chart::Models)),
    ),
    (
        "/api/logs/histogram/latency",
        ApiRoute::Logs(LogRoute::Histogram(Chart::Latency)),
    ),
    ("/api/logs/filterdata", ApiRoute::Logs(LogRoute::FilterData)),
    ("/api/logs/dropped", ApiRoute::Logs(LogRoute::Dropped)),
    ("/api/logs/stream", ApiRoute::Logs(LogRoute::Stream)),
    ("/api/logs/{id}", ApiRoute::Logs(LogRoute::Entry)),
];

static TEMPLATES: LazyLock<matchit::Router<&'static str>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, _) in ROUTE_TABLE {
        let _ = router.insert(*path, *path);
    }
    router
});

/// The template of a management path (`/api/logs/{id}`), for metric labels; `None` when no
/// management route matches.
pub fn route_template(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/session/") {
        return Some("/api/session/*");
    }
    TEMPLATES.at(path).ok().map(|found| *found.value)
}

static ROUTES: LazyLock<matchit::Router<ApiRoute>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, route) in ROUTE_TABLE {
        if let Err(e) = router.insert(*path, *route) {
            tracing::error!("management route table conflict at {path}: {e}");
        }
    }
    router
});

/// Answers one `/api/...` request.
pub async fn handle(state: &Arc<Gateway>, session: &mut Session, request_id: &str) -> pingora::Result<()> {
    if session.req_header().uri.path() == "/api/logs/stream"
        && session.req_header().method == Method::GET
        && guard(state, session).is_ok()
        && logs::stream(state, session, request_id).await?
    {
        return Ok(());
    }
    let (status, body, headers) = match serve(state, session).await {
        Ok(reply) => (
            reply.status,
            serde_json::to_vec(&reply.body).unwrap_or_default(),
            reply.headers,
        ),
        Err(e) => {
            if e.status == 413 {
                session.set_keepalive(None);
            }
            let mut headers = Vec::new();
            if e.status == 405
                && let Some(allowed) = e.message.strip_prefix("method not allowed here; use ")
            {
                headers.push(("allow", allowed.to_string()));
            }
            (e.status, e.body(), headers)
        }
    };
    let mut head = ResponseHeader::build(status, Some(5 + headers.len()))?;
    for (name, value) in headers {
        head.append_header(name, value)?;
    }
    head.insert_header("content-type", "application/json")?;
    head.insert_header("content-length", body.len().to_string())?;
    head.insert_header("x-request-id", request_id)?;
    head.insert_header("cache-control", "no-store")?;
    crate::cors::decorate(&mut head, session);
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(body.into()), true).await
}

/// The client's IP address, when it came over TCP (behind a trusted proxy, the address the
/// proxy names).
pub fn client_ip(state: &Gateway, session: &Session) -> Option<std::net::IpAddr> {
    crate::edge::client_addr::client_ip(&state.trusted_proxies, session)
}

/// The admin credentials of the config in force.
pub fn admin_auth(state: &Gateway) -> auth::AdminAuth {
    state.live.load().slot::<auth::AdminAuth>().cloned().unwrap_or_default()
}

/// Whether the caller may use the API (or `/metrics`, which shares the rule when auth is on).
pub fn guard(state: &Gateway, session: &Session) -> Result<(), ApiError> {
    let admin = admin_auth(state);
    let client = client_ip(state, session);
    if admin.enabled {
        let presented = auth::presented(&session.req_header().headers);
        return match state.sessions.admit(&admin, &presented, client) {
            Ok(()) => Ok(()),
            Err(auth::Denied::TooMany) => Err(ApiError::too_many()),
            Err(auth::Denied::Unauthorized) => Err(ApiError::unauthorized()),
        };
    }
    // An address that cannot be known (a forwarding chain that cannot be read) is not local.
    let local = client.is_some_and(|ip| ip.is_loopback());
    if local || state.file.server.allow_unauthenticated_admin {
        Ok(())
    } else {
        Err(ApiError {
            status: 403,
            message: "the management API answers only on loopback while admin auth is off; enable governance.auth_config (is_enabled, admin_username, admin_password), or set server.allow_unauthenticated_admin: true to expose it unauthenticated".into(),
        })
    }
}

/// `/api/session/*`: login, logout, and whether auth is on. These need no credentials.
fn session_route(state: &Gateway, session: &Session, path: &str, method: &Method, body: &[u8]) -> ApiResult {
    let admin = admin_auth(state);
    let client = client_ip(state, session);
    match (path, method) {
        ("/api/session/is-auth-enabled", &Method::GET) => {
            let presented = auth::presented(&session.req_header().headers);
            let valid = matches!(&presented, auth::Presented::Session(t) if state.sessions.valid(t));
            Ok(Reply::ok(
                json!({ "is_auth_enabled": admin.enabled, "has_valid_token": valid }),
            ))
        }
        ("/api/session/login", &Method::POST) => {
            #[derive(serde::Deserialize)]
            struct Login {
                username: String,
                password: String,
            }
            if !admin.enabled {
                return Err(ApiError::bad_request("admin authentication is not enabled"));
            }
            if state.sessions.blocked(client) {
                return Err(ApiError::too_many());
            }
            let login: Login = reply::parse(body)?;
            if !admin.verify(&login.username, &login.password) {
                state.sessions.fail(client);
                return Err(ApiError {
                    status: 401,
                    message: "invalid username or password".into(),
                });
            }
            let token = state.sessions.open();
            let mut reply = Reply::ok(json!({ "message": "Login successful", "token": token }));
            reply.headers.push((
                "set-cookie",
                format!(
                    "token={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                    auth::SESSION_TTL.as_secs()
                ),
            ));
            Ok(reply)
        }
        ("/api/session/logout", &Method::POST) => {
            if let auth::Presented::Session(token) = auth::presented(&session.req_header().headers) {
                state.sessions.close(&token);
            }
            let mut reply = Reply::message("Logout successful");
            reply.headers.push((
                "set-cookie",
                "token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0".into(),
            ));
            Ok(reply)
        }
        ("/api/session/is-auth-enabled", _) => Err(ApiError::method("GET")),
        ("/api/session/login" | "/api/session/logout", _) => Err(ApiError::method("POST")),
        _ => Err(ApiError::not_found(format!("route {path}"))),
    }
}

async fn read_body(session: &mut Session) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError {
        status: 413,
        message: format!("request body is larger than {} KiB", MAX_BODY / 1024),
    };
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(ApiError::bad_request("the request body could not be read")),
        }
    }
    Ok(body.to_vec())
}

async fn serve(state: &Arc<Gateway>, session: &mut Session) -> ApiResult {
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_string();
    let query = session.req_header().uri.query().map(str::to_string);
    if path.starts_with("/api/session/") {
        let body = read_body(session).await?;
        return session_route(state, session, &path, &method, &body);
    }
    if path == "/api/governance/virtual-keys/quota" {
        return match method {
            Method::GET => quota::quota(
                &state.live.load(),
                &session.req_header().headers,
                crate::state::unix_now(),
            ),
            _ => Err(ApiError::method("GET")),
        };
    }
    guard(state, session)?;
    let body = read_body(session).await?;
    let (route, params) = match ROUTES.at(&path) {
        Ok(found) => {
            // Path segments are percent-decoded: a pricing override's id is `provider%2Fmodel`.
            let params: Vec<String> = found
                .params
                .iter()
                .map(|(_, v)| governance::percent_decode(&v.replace('+', "%2B")))
                .collect();
            (*found.value, params)
        }
        Err(_) => return Err(ApiError::not_found(format!("route {path}"))),
    };
    match route {
        ApiRoute::OpenApi => {
            return match method {
                Method::GET => Ok(Reply::ok(openapi::document())),
                _ => Err(ApiError::method("GET")),
            };
        }
        ApiRoute::Version => {
            return match method {
                Method::GET => Ok(Reply::ok(json!({ "version": env!("CARGO_PKG_VERSION") }))),
                _ => Err(ApiError::method("GET")),
            };
        }
        ApiRoute::TestProvider => {
            return match method {
                Method::POST => {
                    test_provider::run(state, params.first().map(String::as_str).unwrap_or_default(), &body).await
                }
                _ => Err(ApiError::method("POST")),
            };
        }
        ApiRoute::Logs(log_route) => {
            return logs::serve(
                state,
                log_route,
                &method,
                params.first().map(String::as_str),
                query.as_deref(),
                &body,
            )
            .await;
        }
        ApiRoute::Config if method == Method::GET => {
            let admin = admin_auth(state);
            let client = match state.store.clone() {
                Some(store) => {
                    let file = state.file.client.clone();
                    tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
                        Ok(match store.setting("client_config")? {
                            Some(stored) => asbru_store::effective::overlay_client(&file, &stored)?,
                            None => file,
                        })
                    })
                    .await
                    .map_err(|e| ApiError {
                        status: 500,
                        message: format!("config read did not finish: {e}"),
                    })??
                }
                None => state.file.client.clone(),
            };
            return Ok(Reply::ok(json!({
                "client_config": client,
                "auth_config": {
                    "is_enabled": admin.enabled,
                    "disable_auth_on_inference": admin.disable_auth_on_inference,
                },
                "is_db_connected": state.store.is_some(),
                "is_logs_connected": state.request_log.is_some(),
                "restart_required": false,
            })));
        }
        _ => {}
    }
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let write = audit::described(route, &method);
    let worker = state.clone();
    let (reply, params) = tokio::task::spawn_blocking(move || {
        let api = Api {
            store: store.as_ref(),
            file: &worker.file,
            effective: worker.effective.load_full(),
        };
        let reply = dispatch(&api, &worker, &method, route, &params, query.as_deref(), &body);
        (reply, params)
    })
    .await
    .map_err(|e| ApiError {
        status: 500,
        message: format!("management call did not finish: {e}"),
    })?;
    let reply = reply?;
    if let Some((kind, action)) = write {
        reload::after_write(state).await?;
        let admin = admin_auth(state);
        let actor = if admin.enabled {
            admin.username().to_string()
        } else {
            "unauthenticated".to_string()
        };
        let entry = audit::entry(&actor, kind, action, &params, &reply.body);
        if let Some(store) = state.store.clone() {
            let recorded = tokio::task::spawn_blocking(move || store.append_audit(&entry)).await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!("management write done, but its audit entry could not be recorded");
            }
        }
    }
    Ok(reply)
}

fn dispatch(
    api: &Api<'_>,
    state: &Gateway,
    method: &Method,
    route: ApiRoute,
    params: &[String],
    query: Option<&str>,
    body: &[u8],
) -> ApiResult {
    let p = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    match (route, method) {
        (ApiRoute::Providers, &Method::GET) => providers::list(api),
        (ApiRoute::Providers, &Method::POST) => providers::create(api, body),
        (ApiRoute::Providers, _) => Err(ApiError::method("GET, POST")),
        (ApiRoute::Provider, &Method::GET) => providers::get(api, p(0)),
        (ApiRoute::Provider, &Method::PUT) => providers::update(api, p(0), body),
        (ApiRoute::Provider, &Method::DELETE) => providers::delete(api, p(0)),
        (ApiRoute::Provider, _) => Err(ApiError::method("GET, PUT, DELETE")),
        (ApiRoute::ProviderKeys, &Method::GET) => providers::list_keys(api, p(0)),
        (ApiRoute::ProviderKeys, &Method::POST) => providers::create_key(api, p(0), body),
        (ApiRoute::ProviderKeys, _) => Err(ApiError::method("GET, POST")),
        (ApiRoute::ProviderKey, &Method::GET) => providers::get_key(api, p(0), p(1)),
        (ApiRoute::ProviderKey, &Method::PUT) => providers::update_key(api, p(0), p(1), body),
        (ApiRoute::ProviderKey, &Method::DELETE) => providers::delete_key(api, p(0), p(1)),
        (ApiRoute::ProviderKey, _) => Err(ApiError::method("GET, PUT, DELETE")),
        (ApiRoute::Keys, &Method::GET) => providers::all_keys(api),
        (ApiRoute::Keys, _) => Err(ApiError::method("GET")),
        (ApiRoute::VirtualKeys, &Method::GET) => gov::list_vks(api, &state.live.load(), query),
        (ApiRoute::VirtualKeys, &Method::POST) => gov::create_vk(api, body),
        (ApiRoute::VirtualKeys, _) => Err(ApiError::method("GET, POST")),
        (ApiRoute::VirtualKey, &Method::GET) => gov::get_vk(api, p(0)),
        (ApiRoute::VirtualKey, &Method::PUT) => gov::update_vk(api, &state.registry, p(0), body),
        (ApiRoute::VirtualKey, &Method::DELETE) => gov::delete_vk(api, p(0)),
        (ApiRoute::VirtualKey, _) => Err(ApiError::method("GET, PUT, DELETE")),
        (ApiRoute::RotateVirtualKey, &Method::POST) => gov::rotate_vk(api, p(0)),
        (ApiRoute::RotateVirtualKey, _) => Err(ApiError::method("POST")),
        (ApiRoute::BudgetOverride, &Method::PUT) => gov::override_budget(api, p(0), p(1), Some(body)),
        (ApiRoute::BudgetOverride, &Method::DELETE) => gov::override_budget(api, p(0), p(1), None),
        (ApiRoute::BudgetOverride, _) => Err(ApiError::method("PUT, DELETE")),
        (ApiRoute::Entities(kind), _) => entities(api, kind, method, None, body),
        (ApiRoute::Entity(kind), _) => entities(api, kind, method, Some(p(0)), body),
        (ApiRoute::Config, &Method::PUT) => put_config(api, body),
        (ApiRoute::Config, _) => Err(ApiError::method("GET, PUT")),
        (ApiRoute::Audit, &Method::GET) => audit::list(api.store, query),
        (ApiRoute::Plugins, &Method::GET) => plugins::list(api),
        (ApiRoute::Plugins, &Method::POST) => plugins::create(api, body),
        (ApiRoute::Plugins, _) => Err(ApiError::method("GET, POST")),
        (ApiRoute::Plugin, &Method::GET) => plugins::get(api, p(0)),
        (ApiRoute::Plugin, &Method::PUT) => plugins::update(api, p(0), body),
        (ApiRoute::Plugin, &Method::DELETE) => plugins::delete(api, p(0)),
        (ApiRoute::Plugin, _) => Err(ApiError::method("GET, PUT, DELETE")),
        (ApiRoute::Version | ApiRoute::OpenApi | ApiRoute::Audit, _) => Err(ApiError::method("GET")),
        // Answered before the config store is needed (see `serve`).
        (ApiRoute::Logs(_), _) => Err(ApiError::not_found("route")),
        (ApiRoute::TestProvider, _) => Err(ApiError::method("POST")),
    }
}

/// `client` members that take effect on the next rebuild; the others are read at start.
const LIVE_CLIENT_FIELDS: [&str; 6] = [
    "max_request_body_size_mb",
    "enforce_auth_on_inference",
    "enforce_governance_header",
    "is_vk_mandatory",
    "default_max_output_tokens",
    "max_fallbacks",
];

/// `PUT /api/config`: `auth_config` is stored (its password as an Argon2id hash) and applies at
/// once; `client_config` members are stored over the file's `client` block (the live ones apply
/// at once, the others at the next start: `restart_required`).
fn put_config(api: &Api<'_>, body: &[u8]) -> ApiResult {
    let update: serde_json::Map<String, serde_json::Value> = reply::parse(body)?;
    if update.contains_key("framework_config") {
        return Err(ApiError::bad_request(
            "framework_config is read from the config file in this version of asbru",
        ));
    }
    if !update.contains_key("auth_config") && !update.contains_key("client_config") {
        return Err(ApiError::bad_request(
            "nothing to update: send auth_config or client_config",
        ));
    }
    let mut restart_required = false;
    if let Some(client) = update.get("client_config") {
        let Some(members) = client.as_object() else {
            return Err(ApiError::bad_request("client_config: expected an object"));
        };
        let mut stored = api
            .store
            .setting("client_config")?
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for (key, value) in members {
            stored.insert(key.clone(), value.clone());
            restart_required |= !LIVE_CLIENT_FIELDS.contains(&key.as_str());
        }
        let stored = serde_json::Value::Object(stored);
        asbru_store::effective::overlay_client(&api.file.client, &stored)
            .map_err(|e| ApiError::bad_request(format!("client_config: {e}")))?;
        validate::check_with(api, |c| {
            if let Ok(client) = asbru_store::effective::overlay_client(&c.client, &stored) {
                c.client = client;
            }
        })?;
        api.store.put_setting("client_config", &stored)?;
    }
    if let Some(auth_config) = update.get("auth_config") {
        let stored = merged_auth_config(api, auth_config)?;
        api.store
            .put_setting("auth_config", &auth::AdminAuth::stored_form(stored))?;
    }
    let mut reply = Reply::message("Config updated successfully");
    if let Some(body) = reply.body.as_object_mut() {
        body.insert("restart_required".into(), serde_json::Value::Bool(restart_required));
    }
    Ok(reply)
}

/// The `auth_config` a `PUT /api/config` leaves in force: the members sent over the ones in
/// force, where an empty or absent username or password keeps the current one (so toggling a
/// flag never wipes the credentials). Turning authentication on without a username and a
/// password would lock every operator out, and is refused.
fn merged_auth_config(api: &Api<'_>, update: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
    use serde_json::Value;
    let Some(members) = update.as_object() else {
        return Err(ApiError::bad_request("auth_config: expected an object"));
    };
    let mut merged = api
        .effective
        .governance
        .as_ref()
        .and_then(|g| g.auth_config.as_ref())
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, value) in members {
        let blank = value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty());
        if blank && (key == "admin_username" || key == "admin_password") {
            continue;
        }
        merged.insert(key.clone(), value.clone());
    }
    let present = |key: &str| {
        merged
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    if merged.get("is_enabled") == Some(&Value::Bool(true)) {
        if !present("admin_username") {
            return Err(ApiError::bad_request(
                "auth_config.admin_username: a username is needed to turn authentication on",
            ));
        }
        if !present("admin_password") {
            return Err(ApiError::bad_request(
                "auth_config.admin_password: a password is needed to turn authentication on",
            ));
        }
    }
    Ok(Value::Object(merged))
}

fn entities(api: &Api<'_>, kind: Kind, method: &Method, id: Option<&str>, body: &[u8]) -> ApiResult {
    fn crud<T: gov::Resource>(api: &Api<'_>, method: &Method, id: Option<&str>, body: &[u8]) -> ApiResult {
        match (method, id) {
            (&Method::GET, None) => gov::list::<T>(api),
            (&Method::POST, None) => gov::create::<T>(api, body),
            (_, None) => Err(ApiError::method("GET, POST")),
            (&Method::GET, Some(id)) => gov::get::<T>(api, id),
            (&Method::PUT, Some(id)) => gov::update::<T>(api, id, body),
            (&Method::DELETE, Some(id)) => gov::delete::<T>(api, id),
            (_, Some(_)) => Err(ApiError::method("GET, PUT, DELETE")),
        }
    }
    match kind {
        Kind::Teams => crud::<Team>(api, method, id, body),
        Kind::Customers => crud::<Customer>(api, method, id, body),
        Kind::ModelConfigs => crud::<ModelConfig>(api, method, id, body),
        Kind::RoutingRules => crud::<RoutingRule>(api, method, id, body),
        Kind::Providers => crud::<ProviderGovernance>(api, method, id, body),
        Kind::PricingOverrides => crud::<PricingOverride>(api, method, id, body),
        Kind::Budgets | Kind::RateLimits if method != Method::GET || id.is_some() => Err(ApiError::method("GET")),
        Kind::Budgets => gov::list::<Budget>(api),
        Kind::RateLimits => gov::list::<RateLimit>(api),
    }
}
