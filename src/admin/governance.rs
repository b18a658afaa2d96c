//! `/api/governance/...`: virtual keys, teams, customers, model configs, provider caps, pricing
//! overrides, routing rules, and the read-only budget and rate-limit lists, in Bifrost's shapes.
//! Virtual key values are made by the server (`sk-bf-` and 32 random characters), shown whole
//! only in the create and rotate replies, and redacted everywhere else.

use asbru_config::governance::{
    Budget, Customer, GovernanceConfig, ModelConfig, PricingOverride, ProviderGovernance, RateLimit, RoutingRule, Team,
    VirtualKey,
};
use asbru_filters::governance::Registry;
use asbru_store::backend::entities::Entity;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Api;
use super::providers::redact;
use super::reply::{ApiError, ApiResult, Reply, parse};
use super::validate::check_with;

/// An entity the governance routes manage.
pub trait Resource: Entity + Clone + Serialize + DeserializeOwned {
    /// `team`.
    const SINGULAR: &'static str;
    /// `teams`.
    const PLURAL: &'static str;
    /// `Team`, for messages.
    const LABEL: &'static str;
    /// Sets the id a new entity gets (or the path's id on update).
    fn set_id(&mut self, id: &str);
    /// Its list in the governance section.
    fn list_of(g: &mut GovernanceConfig) -> &mut Vec<Self>;
}

macro_rules! resource {
    ($t:ty, $singular:literal, $plural:literal, $label:literal, $field:ident, |$x:ident, $id:ident| $set:expr) => {
        impl Resource for $t {
            const SINGULAR: &'static str = $singular;
            const PLURAL: &'static str = $plural;
            const LABEL: &'static str = $label;
            fn set_id(&mut self, $id: &str) {
                let $x = self;
                $set
            }
            fn list_of(g: &mut GovernanceConfig) -> &mut Vec<Self> {
                &mut g.$field
            }
        }
    };
}

resource!(Team, "team", "teams", "Team", teams, |x, id| x.id = id.to_string());
resource!(Customer, "customer", "customers", "Customer", customers, |x, id| x.id =
    id.to_string());
resource!(
    ModelConfig,
    "model_config",
    "model_configs",
    "Model config",
    model_configs,
    |x, id| x.id = id.to_string()
);
resource!(
    RoutingRule,
    "routing_rule",
    "routing_rules",
    "Routing rule",
    routing_rules,
    |x, id| x.id = id.to_string()
);
resource!(
    ProviderGovernance,
    "provider",
    "providers",
    "Provider governance",
    providers,
    |x, id| x.name = id.to_string()
);
resource!(
    PricingOverride,
    "pricing_override",
    "pricing_overrides",
    "Pricing override",
    pricing_overrides,
    |_x, _id| {}
);
resource!(Budget, "budget", "budgets", "Budget", budgets, |x, id| x.id =
    Some(id.to_string()));
resource!(
    RateLimit,
    "rate_limit",
    "rate_limits",
    "Rate limit",
    rate_limits,
    |x, id| x.id = Some(id.to_string())
);

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn view<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `GET /api/governance/<plural>`.
pub fn list<T: Resource>(api: &Api<'_>) -> ApiResult {
    let items: Vec<Value> = api.store.list::<T>()?.iter().map(view).collect();
    let count = items.len();
    let mut body = serde_json::Map::new();
    body.insert(T::PLURAL.into(), Value::Array(items));
    body.insert("count".into(), json!(count));
    Ok(Reply::ok(Value::Object(body)))
}

/// `GET /api/governance/<plural>/{id}`.
pub fn get<T: Resource>(api: &Api<'_>, id: &str) -> ApiResult {
    let item = api
        .store
        .get::<T>(id)?
        .ok_or_else(|| ApiError::not_found(format!("{} {id:?}", T::LABEL)))?;
    let mut body = serde_json::Map::new();
    body.insert(T::SINGULAR.into(), view(&item));
    Ok(Reply::ok(Value::Object(body)))
}

/// `POST /api/governance/<plural>`: an id is made when the body has none.
pub fn create<T: Resource>(api: &Api<'_>, body: &[u8]) -> ApiResult {
    let mut item: T = parse(body)?;
    if item.entity_id().is_none_or(|id| id.is_empty()) {
        item.set_id(&new_id());
    }
    let id = item.entity_id().unwrap_or_default();
    if api.store.get::<T>(&id)?.is_some() {
        return Err(ApiError::conflict(format!("{} {id:?} already exists", T::LABEL)));
    }
    check_with(api, |c| {
        T::list_of(c.governance.get_or_insert_with(Default::default)).push(item.clone());
    })?;
    api.store.put(&item)?;
    Ok(Reply::written(
        &format!("{} created successfully", T::LABEL),
        T::SINGULAR,
        view(&item),
    ))
}

/// `PUT /api/governance/<plural>/{id}`: the body replaces the stored entity.
pub fn update<T: Resource>(api: &Api<'_>, id: &str, body: &[u8]) -> ApiResult {
    if api.store.get::<T>(id)?.is_none() {
        return Err(ApiError::not_found(format!("{} {id:?}", T::LABEL)));
    }
    let mut item: T = parse(body)?;
    item.set_id(id);
    check_with(api, |c| {
        let list = T::list_of(c.governance.get_or_insert_with(Default::default));
        list.retain(|x| x.entity_id().as_deref() != Some(id));
        list.push(item.clone());
    })?;
    api.store.put(&item)?;
    Ok(Reply::written(
        &format!("{} updated successfully", T::LABEL),
        T::SINGULAR,
        view(&item),
    ))
}

/// `DELETE /api/governance/<plural>/{id}`: refused while other entities still name it.
pub fn delete<T: Resource>(api: &Api<'_>, id: &str) -> ApiResult {
    if api.store.get::<T>(id)?.is_none() {
        return Err(ApiError::not_found(format!("{} {id:?}", T::LABEL)));
    }
    check_with(api, |c| {
        T::list_of(c.governance.get_or_insert_with(Default::default)).retain(|x| x.entity_id().as_deref() != Some(id));
    })
    .map_err(|e| ApiError::conflict(format!("{} {id:?} is still in use: {}", T::LABEL, e.message)))?;
    api.store.delete::<T>(id)?;
    Ok(Reply::message(&format!("{} deleted successfully", T::LABEL)))
}

/// A new virtual key value: `sk-bf-` and 32 random letters and digits.
pub fn new_key_value() -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    format!("sk-bf-{suffix}")
}

fn vk_view(vk: &VirtualKey, show_value: bool) -> Value {
    let mut value = view(vk);
    if !show_value && let Some(object) = value.as_object_mut() {
        object.insert("value".into(), Value::String(redact(&vk.value)));
    }
    value
}

/// List query of `GET /api/governance/virtual-keys`.
#[derive(Debug, Default)]
pub struct VkQuery {
    /// Page size (default 25, at most 100).
    pub limit: usize,
    /// Rows skipped.
    pub offset: usize,
    /// Case-insensitive part of the name or id.
    pub search: Option<String>,
    /// Only this customer's keys.
    pub customer_id: Option<String>,
    /// Only this team's keys.
    pub team_id: Option<String>,
    /// With live usage from the meters.
    pub from_memory: bool,
}

impl VkQuery {
    /// Reads the query string.
    pub fn parse(query: Option<&str>) -> Result<VkQuery, ApiError> {
        let mut q = VkQuery {
            limit: 25,
            ..VkQuery::default()
        };
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            let number = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("{key}: {v:?} is not a number")))
            };
            match key {
                "limit" => q.limit = number(&value)?.clamp(1, 100),
                "offset" => q.offset = number(&value)?,
                "search" if !value.is_empty() => q.search = Some(value.to_lowercase()),
                "customer_id" if !value.is_empty() => q.customer_id = Some(value),
                "team_id" if !value.is_empty() => q.team_id = Some(value),
                "from_memory" => q.from_memory = value == "true",
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Decodes `%XX` escapes (and `+` as a space) in a query value or path segment.
pub(crate) fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /api/governance/virtual-keys`.
pub fn list_vks(api: &Api<'_>, live: &asbru_filters::Live, query: Option<&str>) -> ApiResult {
    let q = VkQuery::parse(query)?;
    let mut keys: Vec<VirtualKey> = api.store.list::<VirtualKey>()?;
    keys.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    keys.retain(|k| {
        q.search
            .as_deref()
            .is_none_or(|s| k.name.to_lowercase().contains(s) || k.id.to_lowercase().contains(s))
            && q.customer_id
                .as_deref()
                .is_none_or(|c| k.customer_id.as_deref() == Some(c))
            && q.team_id.as_deref().is_none_or(|t| k.team_id.as_deref() == Some(t))
    });
    let total = keys.len();
    // Live usage: each key's scopes with their caps, usage and reset times, from the meters.
    let runtimes: std::collections::HashMap<&str, &asbru_filters::governance::VirtualKeyRuntime> = if q.from_memory {
        live.governance
            .virtual_keys()
            .map(|vk| (vk.id.as_str(), vk.as_ref()))
            .collect()
    } else {
        std::collections::HashMap::new()
    };
    let now = crate::state::unix_now();
    let page: Vec<Value> = keys
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|k| {
            let mut v = vk_view(k, false);
            if q.from_memory
                && let Some(object) = v.as_object_mut()
            {
                let scopes = runtimes
                    .get(k.id.as_str())
                    .map(|vk| super::quota::scopes_of(vk, now))
                    .unwrap_or_default();
                object.insert("usage".into(), json!({ "scopes": scopes }));
            }
            v
        })
        .collect();
    Ok(Reply::ok(json!({
        "virtual_keys": page.clone(),
        "count": page.len(),
        "total_count": total,
        "limit": q.limit,
        "offset": q.offset,
    })))
}

/// `GET /api/governance/virtual-keys/{id}`.
pub fn get_vk(api: &Api<'_>, id: &str) -> ApiResult {
    let vk = load_vk(api, id)?;
    Ok(Reply::ok(json!({ "virtual_key": vk_view(&vk, false) })))
}

fn load_vk(api: &Api<'_>, id: &str) -> Result<VirtualKey, ApiError> {
    api.store
        .get::<VirtualKey>(id)?
        .ok_or_else(|| ApiError::not_found(format!("Virtual key {id:?}")))
}

fn check_vk(api: &Api<'_>, vk: &VirtualKey) -> Result<(), ApiError> {
    if vk.team_id.is_some() && vk.customer_id.is_some() {
        return Err(ApiError::bad_request(
            "VirtualKey cannot be attached to both Team and Customer",
        ));
    }
    check_with(api, |c| {
        let list = &mut c.governance.get_or_insert_with(Default::default).virtual_keys;
        list.retain(|x| x.id != vk.id);
        list.push(vk.clone());
    })
}

/// `POST /api/governance/virtual-keys`: the server makes the value; the reply shows it once.
pub fn create_vk(api: &Api<'_>, body: &[u8]) -> ApiResult {
    let mut vk: VirtualKey = parse(body)?;
    if vk.name.trim().is_empty() {
        return Err(ApiError::bad_request("name: a virtual key needs a name"));
    }
    if vk.id.is_empty() {
        vk.id = new_id();
    } else if api.store.get::<VirtualKey>(&vk.id)?.is_some() {
        return Err(ApiError::conflict(format!("Virtual key {:?} already exists", vk.id)));
    }
    if api.store.list::<VirtualKey>()?.iter().any(|k| k.name == vk.name) {
        return Err(ApiError::conflict(format!(
            "a virtual key named {:?} already exists",
            vk.name
        )));
    }
    vk.value = new_key_value();
    check_vk(api, &vk)?;
    api.store.put(&vk)?;
    Ok(Reply::written(
        "Virtual key created successfully",
        "virtual_key",
        vk_view(&vk, true),
    ))
}

/// `PUT /api/governance/virtual-keys/{id}`: the body replaces the key's settings (sending
/// neither `team_id` nor `customer_id` clears both); the value is kept. With
/// `reset_budget_usage: true`, the key's budgets start again from zero.
pub fn update_vk(api: &Api<'_>, registry: &Registry, id: &str, body: &[u8]) -> ApiResult {
    let stored = load_vk(api, id)?;
    let mut raw: serde_json::Map<String, Value> = parse(body)?;
    let reset = match raw.remove("reset_budget_usage") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "reset_budget_usage: expected true or false, got {other}"
            )));
        }
    };
    let mut vk: VirtualKey = serde_json::from_value(Value::Object(raw))
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    vk.id = stored.id.clone();
    vk.value = stored.value.clone();
    if vk.name.trim().is_empty() {
        vk.name = stored.name.clone();
    }
    check_vk(api, &vk)?;
    api.store.put(&vk)?;
    if reset {
        // The key's own budgets and its provider configs' budgets; budgets shared by id are not
        // the key's alone and keep their usage.
        let prefix = format!("vk:{}:", vk.id);
        registry.reset_where(|id| id.starts_with(&prefix) && id.contains(":budget:"));
    }
    Ok(Reply::written(
        "Virtual key updated successfully",
        "virtual_key",
        vk_view(&vk, false),
    ))
}

/// `POST /api/governance/virtual-keys/{id}/rotate`: a new value; the old one stops working.
pub fn rotate_vk(api: &Api<'_>, id: &str) -> ApiResult {
    let mut vk = load_vk(api, id)?;
    vk.value = new_key_value();
    api.store.put(&vk)?;
    Ok(Reply::written(
        "Virtual key rotated successfully",
        "virtual_key",
        vk_view(&vk, true),
    ))
}

/// `DELETE /api/governance/virtual-keys/{id}`.
pub fn delete_vk(api: &Api<'_>, id: &str) -> ApiResult {
    if !api.store.delete::<VirtualKey>(id)? {
        return Err(ApiError::not_found(format!("Virtual key {id:?}")));
    }
    Ok(Reply::message("Virtual key deleted successfully"))
}

/// `PUT` (with a body) or `DELETE` (without) `/api/governance/virtual-keys/{id}/budgets/{budget_id}/override`:
/// raises one of the key's budgets by `amount` USD for `cycles` reset windows (the current one
/// and the next ones) or `forever`, or removes the raise. `budget_id` is the budget's id or its
/// position in the key's `budgets`.
pub fn override_budget(api: &Api<'_>, id: &str, budget_id: &str, body: Option<&[u8]>) -> ApiResult {
    use asbru_config::governance::BudgetOverride;
    let mut vk = load_vk(api, id)?;
    let position = vk
        .budgets
        .iter()
        .position(|b| b.id.as_deref() == Some(budget_id))
        .or_else(|| budget_id.parse::<usize>().ok().filter(|i| *i < vk.budgets.len()))
        .ok_or_else(|| ApiError::not_found(format!("budget {budget_id:?} of virtual key {id:?}")))?;
    let message = match body {
        Some(body) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Request {
                amount: f64,
                mode: String,
                #[serde(default)]
                cycles: Option<u32>,
            }
            let request: Request = parse(body)?;
            if !request.amount.is_finite() || request.amount < 0.0 {
                return Err(ApiError::bad_request("amount: a non-negative number of USD"));
            }
            match (request.mode.as_str(), request.cycles) {
                ("cycles", Some(n)) if n >= 1 => {}
                ("cycles", _) => return Err(ApiError::bad_request("cycles: at least 1 in cycles mode")),
                ("forever", _) => {}
                (other, _) => {
                    return Err(ApiError::bad_request(format!(
                        "mode: {other:?} is not cycles or forever"
                    )));
                }
            }
            vk.budgets[position].raise = Some(BudgetOverride {
                amount: request.amount,
                cycles: request.cycles.filter(|_| request.mode == "cycles"),
                mode: request.mode,
                starts_at: Some(crate::state::unix_now()),
            });
            "Budget override set successfully"
        }
        None => {
            vk.budgets[position].raise = None;
            "Budget override removed successfully"
        }
    };
    api.store.put(&vk)?;
    let budget = &vk.budgets[position];
    let extra = budget.raise.as_ref().map_or(0.0, |o| o.amount);
    Ok(Reply::ok(json!({
        "message": message,
        "budget": budget,
        "effective_max_limit": budget.max_limit + extra,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_and_queries() {
        let value = new_key_value();
        assert!(value.starts_with("sk-bf-") && value.len() == 38, "{value}");
        assert_ne!(value, new_key_value());
        let q = VkQuery::parse(Some("limit=500&offset=2&search=Prod%20App&team_id=t1&from_memory=true")).expect("ok");
        assert_eq!((q.limit, q.offset), (100, 2));
        assert_eq!(q.search.as_deref(), Some("prod app"));
        assert_eq!(q.team_id.as_deref(), Some("t1"));
        assert!(q.from_memory);
        assert_eq!(VkQuery::parse(None).expect("ok").limit, 25);
        assert_eq!(VkQuery::parse(Some("limit=x")).err().map(|e| e.status), Some(400));
    }
}
