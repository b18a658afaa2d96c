//! The audit trail of management writes: who (the admin user, or `unauthenticated` on a loopback
//! API with auth off), when, which entity, what action, and the SHA-256 of the new document as
//! the API shows it, so no secret is ever written there. `GET /api/audit` lists it, newest first.

use asbru_store::backend::{AuditEntry, ConfigStore};
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::reply::{ApiError, ApiResult, Reply};
use super::{ApiRoute, Kind};

/// The entity kind a route writes, and the action its method means; `None` for routes that
/// change nothing.
pub(crate) fn described(route: ApiRoute, method: &Method) -> Option<(&'static str, &'static str)> {
    let action = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::DELETE => "delete",
        _ => return None,
    };
    let kind = match route {
        ApiRoute::Providers | ApiRoute::Provider => "provider",
        ApiRoute::ProviderKeys | ApiRoute::ProviderKey => "provider_key",
        ApiRoute::VirtualKeys | ApiRoute::VirtualKey => "virtual_key",
        ApiRoute::RotateVirtualKey => return Some(("virtual_key", "rotate")),
        ApiRoute::BudgetOverride => return Some(("virtual_key", "budget_override")),
        ApiRoute::Config => "config",
        ApiRoute::Plugins | ApiRoute::Plugin => "plugin",
        ApiRoute::Entities(kind) | ApiRoute::Entity(kind) => match kind {
            Kind::Teams => "team",
            Kind::Customers => "customer",
            Kind::ModelConfigs => "model_config",
            Kind::RoutingRules => "routing_rule",
            Kind::Providers => "provider_governance",
            Kind::PricingOverrides => "pricing_override",
            Kind::Budgets => "budget",
            Kind::RateLimits => "rate_limit",
        },
        ApiRoute::TestProvider
        | ApiRoute::Keys
        | ApiRoute::Version
        | ApiRoute::OpenApi
        | ApiRoute::Audit
        | ApiRoute::Logs(_) => {
            return None;
        }
    };
    Some((kind, action))
}

/// The entry for a successful write: the entity is the reply's non-message member.
pub(crate) fn entry(actor: &str, kind: &str, action: &str, params: &[String], reply: &Value) -> AuditEntry {
    let document = reply
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.as_str() != "message").map(|(_, v)| v));
    let entity_id = document
        .and_then(|d| d.get("id").or_else(|| d.get("key_id")).or_else(|| d.get("name")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| params.last().cloned());
    let doc_sha256 = document.map(|d| format!("{:x}", Sha256::digest(d.to_string().as_bytes())));
    AuditEntry {
        at_unix: crate::state::unix_now(),
        actor: actor.to_string(),
        kind: kind.to_string(),
        entity_id,
        action: action.to_string(),
        doc_sha256,
    }
}

/// `GET /api/audit?limit=&offset=`.
pub fn list(store: &dyn ConfigStore, query: Option<&str>) -> ApiResult {
    let mut limit = 50usize;
    let mut offset = 0usize;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("{key}: {value:?} is not a number")))
        };
        match key {
            "limit" => limit = number()?.clamp(1, 500),
            "offset" => offset = number()?,
            _ => {}
        }
    }
    let entries = store.audit_log(limit, offset)?;
    Ok(Reply::ok(json!({
        "entries": entries,
        "count": entries.len(),
        "limit": limit,
        "offset": offset,
    })))
}
