//! `GET /api/governance/virtual-keys/quota`: the calling virtual key's own caps and what is left
//! of them, read from the live meters. It authenticates by the virtual key (`x-bf-vk`, or the
//! SDK headers the inference routes accept), not by admin credentials, so an application can
//! ask how much it may still spend.

use asbru_filters::Live;
use asbru_filters::policy::runtime::{Scope, VirtualKeyRuntime};
use asbru_filters::policy::{Meter, key_hash};
use asbru_filters::pricing::to_dollars;
use http::HeaderMap;
use serde_json::{Value, json};

use super::reply::{ApiError, ApiResult, Reply};

/// The virtual key a request presents, if it is a known one.
fn calling_key<'a>(live: &'a Live, headers: &HeaderMap) -> Option<&'a VirtualKeyRuntime> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let bearer = text("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    [
        text("x-bf-vk"),
        bearer,
        text("x-api-key"),
        text("x-goog-api-key"),
        text("api-key"),
    ]
    .into_iter()
    .flatten()
    .find_map(|value| live.governance.key(&key_hash(value)))
    .map(|vk| vk.as_ref())
}

/// A meter's usage as the API shows it: in cluster mode, over every node (as last read from
/// the store, a dead node's lease counted as spent), never less than this node's own; else this
/// process's settled usage (`with_held`: reservations in flight included).
fn usage_of(meter: &Meter, with_held: bool) -> i64 {
    let own = if with_held { meter.total() } else { meter.settled() };
    match meter.global() {
        Some(global) if meter.is_leased() => global.max(own),
        _ => own,
    }
}

/// This node's lease on a meter, in cluster mode.
fn lease_of(meter: &Meter) -> Option<i64> {
    (meter.is_leased() && meter.cap() != i64::MAX).then(|| meter.headroom().max(0))
}

fn scope_view(level: &str, scope: &Scope, now: i64) -> Value {
    let budgets: Vec<Value> = scope
        .budgets
        .iter()
        .map(|cap| {
            let start = cap.meter.window_start();
            let mut view = json!({
                "name": cap.name,
                "max_limit": to_dollars(cap.max_at(now)),
                "current_usage": to_dollars(usage_of(&cap.meter, false)),
                "remaining": to_dollars((cap.max_at(now) - usage_of(&cap.meter, true)).max(0)),
                "reset_duration": cap.duration,
                "resets_at": cap.window.end(start).max(now),
            });
            if let Some(lease) = lease_of(&cap.meter) {
                view["node_lease"] = json!(to_dollars(lease));
            }
            view
        })
        .collect();
    let rate = scope.rate.as_ref().map(|rate| {
        let side = |cap: &Option<asbru_filters::policy::runtime::LimitCap>| {
            cap.as_ref().map(|c| {
                let mut view = json!({
                    "max_limit": c.max,
                    "current_usage": usage_of(&c.meter, true),
                    "reset_duration": c.duration,
                    "resets_at": c.window.end(c.meter.window_start()).max(now),
                });
                if let Some(lease) = lease_of(&c.meter) {
                    view["node_lease"] = json!(lease);
                }
                view
            })
        };
        json!({"name": rate.name, "tokens": side(&rate.tokens), "requests": side(&rate.requests)})
    });
    json!({"level": level, "label": scope.label, "budgets": budgets, "rate_limit": rate})
}

/// Every scope of `vk` with its caps, usage and reset times.
pub fn scopes_of(vk: &VirtualKeyRuntime, now: i64) -> Vec<Value> {
    let mut scopes = vec![scope_view("virtual_key", &vk.scope, now)];
    for access in &vk.provider_configs {
        scopes.push(scope_view("provider_config", &access.scope, now));
    }
    if let Some(team) = &vk.team {
        scopes.push(scope_view("team", team, now));
    }
    if let Some(customer) = &vk.customer {
        scopes.push(scope_view("customer", customer, now));
    }
    scopes
}

/// Answers the quota of the key `headers` present.
pub fn quota(live: &Live, headers: &HeaderMap, now: i64) -> ApiResult {
    let Some(vk) = calling_key(live, headers) else {
        return Err(ApiError {
            status: 401,
            message: "a virtual key is required: send it in x-bf-vk (or Authorization: Bearer)".into(),
        });
    };
    let scopes = scopes_of(vk, now);
    Ok(Reply::ok(json!({
        "virtual_key_id": vk.id,
        "name": vk.name,
        "is_active": vk.active,
        "team": vk.team_ref.as_ref().map(|t| json!({"id": t.id, "name": t.name})),
        "customer": vk.customer_ref.as_ref().map(|c| json!({"id": c.id, "name": c.name})),
        "scopes": scopes,
    })))
}
