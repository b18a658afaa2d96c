//! The resolved governance config: virtual keys indexed by the SHA-256 of their value, each with
//! its chain of scopes (provider config, key, team, customer), provider and model scopes, and the
//! pricing table. Built once per snapshot; every cap points at its live [`Meter`].

use std::collections::HashMap;
use std::sync::Arc;

use asbru_config::Config;
use asbru_config::env::{self, Resolved};
use asbru_config::governance::{Budget, GovernanceConfig, RateLimit};
use sha2::{Digest, Sha256};

use super::meter::{Meter, Registry, Unit};
use super::window::Window;
use crate::pricing::{PricingTable, to_micros};

/// Output tokens reserved for a request that does not set `max_tokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// A spending cap.
#[derive(Debug)]
pub struct BudgetCap {
    /// How messages name it: `budget 'budget-dev'` or `budget #2`.
    pub name: String,
    /// Cap in micro-dollars.
    pub max_micros: i64,
    /// An override's extra micro-dollars, and until when it holds (`None`: until removed).
    pub raise: Option<(i64, Option<i64>)>,
    /// The reset duration as configured.
    pub duration: String,
    /// The reset window.
    pub window: Window,
    /// Live usage.
    pub meter: Arc<Meter>,
}

impl BudgetCap {
    /// The limit in force at `now`, an override included while it holds.
    pub fn max_at(&self, now: i64) -> i64 {
        match self.raise {
            Some((extra, until)) if until.is_none_or(|u| now < u) => self.max_micros.saturating_add(extra),
            _ => self.max_micros,
        }
    }
}

/// One side of a rate limit: a cap on tokens or on requests.
#[derive(Debug)]
pub struct LimitCap {
    /// Cap per window.
    pub max: i64,
    /// The reset duration as configured.
    pub duration: String,
    /// The reset window.
    pub window: Window,
    /// Live count.
    pub meter: Arc<Meter>,
}

/// A rate limit.
#[derive(Debug)]
pub struct RateCap {
    /// How messages name it.
    pub name: String,
    /// Token cap, counted from actual usage.
    pub tokens: Option<LimitCap>,
    /// Request cap, counted at admission.
    pub requests: Option<LimitCap>,
}

/// Where caps attach: a provider config, a key, a team, a customer, a provider or a model.
#[derive(Debug)]
pub struct Scope {
    /// How messages name the scope: `virtual key 'vk-1'`, `team 'ml'`, ...
    pub label: String,
    /// Its budgets.
    pub budgets: Vec<BudgetCap>,
    /// Its rate limit.
    pub rate: Option<Box<RateCap>>,
}

/// Which models a provider config allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRule {
    /// Every model.
    All,
    /// These names only (an empty list allows none).
    Only(Vec<String>),
}

/// One provider a virtual key may use.
#[derive(Debug)]
pub struct ProviderAccess {
    /// Provider name.
    pub provider: String,
    /// Load-balancing weight; `None` keeps it out of balancing.
    pub weight: Option<f64>,
    /// Allowed models.
    pub allowed: ModelRule,
    /// Refused models (win over `allowed`).
    pub blacklisted: Vec<String>,
    /// Provider keys it may use, by id or name; empty means all.
    pub key_ids: Arc<[String]>,
    /// Its caps.
    pub scope: Scope,
}

impl ProviderAccess {
    /// Whether `model` may be used through this provider config.
    pub fn allows(&self, model: &str) -> bool {
        if self.blacklisted.iter().any(|m| m == model) {
            return false;
        }
        match &self.allowed {
            ModelRule::All => true,
            ModelRule::Only(list) => list.iter().any(|m| m == model),
        }
    }
}

/// A virtual key's owner, as facts carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A virtual key, resolved.
#[derive(Debug)]
pub struct VirtualKeyRuntime {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Inactive keys are refused.
    pub active: bool,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// The key's own caps.
    pub scope: Scope,
    /// Providers it may use.
    pub provider_configs: Vec<ProviderAccess>,
    /// Every provider and model is allowed.
    pub allow_all_providers: bool,
    /// Prompts and completions of its requests stay out of the request log.
    pub disable_content_logging: bool,
    /// Its team's caps.
    pub team: Option<Arc<Scope>>,
    /// Its customer's caps (directly or through the team).
    pub customer: Option<Arc<Scope>>,
    /// Its team, by id and name.
    pub team_ref: Option<Box<EntityRef>>,
    /// Its customer (directly or through the team), by id and name.
    pub customer_ref: Option<Box<EntityRef>>,
    /// Model configs scoped to this key.
    pub model_scopes: Vec<ModelScope>,
}

impl VirtualKeyRuntime {
    /// The provider config for `provider`, if any.
    pub fn access(&self, provider: &str) -> Option<&ProviderAccess> {
        self.provider_configs.iter().find(|p| p.provider == provider)
    }
}

/// A model config's caps.
#[derive(Debug)]
pub struct ModelScope {
    /// Model name.
    pub model: String,
    /// Provider, when it applies to one only.
    pub provider: Option<String>,
    /// Its caps.
    pub scope: Scope,
}

impl ModelScope {
    /// Whether this config covers `model` at `provider`.
    pub fn covers(&self, provider: &str, model: &str) -> bool {
        self.model == model && self.provider.as_deref().is_none_or(|p| p == provider)
    }
}

/// A meter with the limit and window of the cap it counts for.
#[derive(Debug, Clone)]
pub struct MeterLimit {
    /// The meter.
    pub meter: Arc<Meter>,
    /// Its limit in force.
    pub max: i64,
    /// Its reset window.
    pub window: Window,
}

/// SHA-256 of a virtual key's value.
pub type KeyHash = [u8; 32];

/// Hashes a presented key.
pub fn key_hash(value: &str) -> KeyHash {
    Sha256::digest(value.as_bytes()).into()
}

/// All governance state a request reads.
#[derive(Debug, Default)]
pub struct Governance {
    keys: HashMap<KeyHash, Arc<VirtualKeyRuntime>>,
    /// Requests without a virtual key are refused.
    pub vk_required: bool,
    /// Provider-level caps.
    pub providers: HashMap<String, Scope>,
    /// Global model configs.
    pub models: Vec<ModelScope>,
    /// Prices.
    pub pricing: PricingTable,
    /// Output tokens reserved when a request sets no `max_tokens`.
    pub default_max_output_tokens: u64,
    /// Any cap at all is configured (else admission is skipped).
    pub has_caps: bool,
    /// Where settlements are journaled, when usage is persisted.
    pub journal: Option<Arc<dyn super::meter::SpendJournal>>,
    /// Cluster mode: where leased meters get their share.
    pub leases: Option<Arc<dyn super::meter::LeaseSource>>,
}

impl Governance {
    /// The key whose value hashes to `hash`.
    pub fn key(&self, hash: &KeyHash) -> Option<&Arc<VirtualKeyRuntime>> {
        self.keys.get(hash)
    }

    /// Every virtual key.
    pub fn virtual_keys(&self) -> impl Iterator<Item = &Arc<VirtualKeyRuntime>> {
        self.keys.values()
    }

    /// Whether any virtual key is configured.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Every cap's meter with its limit in force at `now` and its window, each meter once (a
    /// shared budget appears in many scopes). For the cluster lease manager.
    pub fn limits(&self, now: i64) -> Vec<MeterLimit> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut scope = |scope: &Scope| {
            for cap in &scope.budgets {
                if seen.insert(Arc::as_ptr(&cap.meter)) {
                    out.push(MeterLimit {
                        meter: cap.meter.clone(),
                        max: cap.max_at(now),
                        window: cap.window,
                    });
                }
            }
            if let Some(rate) = &scope.rate {
                for cap in [&rate.tokens, &rate.requests].into_iter().flatten() {
                    if seen.insert(Arc::as_ptr(&cap.meter)) {
                        out.push(MeterLimit {
                            meter: cap.meter.clone(),
                            max: cap.max,
                            window: cap.window,
                        });
                    }
                }
            }
        };
        for provider in self.providers.values() {
            scope(provider);
        }
        for model in &self.models {
            scope(&model.scope);
        }
        for vk in self.keys.values() {
            scope(&vk.scope);
            for access in &vk.provider_configs {
                scope(&access.scope);
            }
            for model in &vk.model_scopes {
                scope(&model.scope);
            }
            if let Some(team) = &vk.team {
                scope(team);
            }
            if let Some(customer) = &vk.customer {
                scope(customer);
            }
        }
        out
    }

    /// Builds the governance view of `config`, creating or reusing meters in `registry`.
    /// Returns it and the warnings to log.
    pub fn build(
        config: &Config,
        registry: &Registry,
        now: i64,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> (Governance, Vec<String>) {
        let empty = GovernanceConfig::default();
        let gov = config.governance.as_ref().unwrap_or(&empty);
        registry.begin_build();
        let mut b = Builder {
            registry,
            now,
            budgets: gov.budgets.iter().filter_map(|x| Some((x.id.clone()?, x))).collect(),
            rates: gov
                .rate_limits
                .iter()
                .filter_map(|x| Some((x.id.clone()?, x)))
                .collect(),
            used: 0,
            warnings: Vec::new(),
        };
        let deny_by_default = !config.empty_list_allows_all();

        let customer_names: HashMap<&str, &str> =
            gov.customers.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
        let team_names: HashMap<&str, &str> = gov.teams.iter().map(|t| (t.id.as_str(), t.name.as_str())).collect();
        let entity = |id: &str, names: &HashMap<&str, &str>| EntityRef {
            id: id.to_string(),
            name: names.get(id).copied().unwrap_or_default().to_string(),
        };
        let customers: HashMap<&str, Arc<Scope>> = gov
            .customers
            .iter()
            .map(|c| {
                let owner = format!("customer:{}", c.id);
                let scope = b.scope(
                    format!("customer '{}'", c.id),
                    &owner,
                    (&c.budget_id, &c.budgets),
                    (&c.rate_limit_id, &c.rate_limit),
                    None,
                );
                (c.id.as_str(), Arc::new(scope))
            })
            .collect();
        let teams: HashMap<&str, (Arc<Scope>, Option<&str>)> = gov
            .teams
            .iter()
            .map(|t| {
                let owner = format!("team:{}", t.id);
                let scope = b.scope(
                    format!("team '{}'", t.id),
                    &owner,
                    (&t.budget_id, &t.budgets),
                    (&t.rate_limit_id, &t.rate_limit),
                    None,
                );
                (t.id.as_str(), (Arc::new(scope), t.customer_id.as_deref()))
            })
            .collect();

        let mut model_configs = Vec::new();
        let mut vk_model_configs: HashMap<&str, Vec<ModelScope>> = HashMap::new();
        for m in &gov.model_configs {
            let owner = format!("model:{}", m.id);
            let scope = b.scope(
                format!("model config '{}' ({})", m.id, m.model_name),
                &owner,
                (&m.budget_id, &m.budgets),
                (&m.rate_limit_id, &m.rate_limit),
                None,
            );
            let model_scope = ModelScope {
                model: m.model_name.clone(),
                provider: m.provider.clone(),
                scope,
            };
            match (m.scope.as_deref(), m.scope_id.as_deref()) {
                (None | Some("global"), _) => model_configs.push(model_scope),
                (Some("virtual_key"), Some(vk)) => vk_model_configs.entry(vk).or_default().push(model_scope),
                (Some(other), _) => b.warnings.push(format!(
                    "model config {:?}: scope {other:?} is not enforced by this version of asbru",
                    m.id
                )),
            }
        }

        let providers: HashMap<String, Scope> = gov
            .providers
            .iter()
            .map(|p| {
                let owner = format!("provider:{}", p.name);
                let scope = b.scope(
                    format!("provider '{}'", p.name),
                    &owner,
                    (&p.budget_id, &p.budgets),
                    (&p.rate_limit_id, &p.rate_limit),
                    None,
                );
                (p.name.clone(), scope)
            })
            .collect();

        let mut keys = HashMap::new();
        for vk in &gov.virtual_keys {
            let value = match env::resolve_with(&vk.value, lookup) {
                Resolved::Value(v) if !v.is_empty() => v,
                Resolved::Value(_) => {
                    b.warnings
                        .push(format!("virtual key {:?} has an empty value and cannot be used", vk.id));
                    continue;
                }
                Resolved::MissingEnv(var) => {
                    b.warnings.push(format!(
                        "virtual key {:?}: environment variable {var} is not set; the key cannot be used",
                        vk.id
                    ));
                    continue;
                }
            };
            let aligned = vk.calendar_aligned;
            let owner = format!("vk:{}", vk.id);
            let label = format!("virtual key '{}'", vk.id);
            let scope = b.scope(
                label.clone(),
                &owner,
                (&vk.budget_id, &vk.budgets),
                (&vk.rate_limit_id, &vk.rate_limit),
                aligned,
            );
            let provider_configs = vk
                .provider_configs
                .iter()
                .map(|pc| {
                    let owner = format!("vk:{}:provider:{}", vk.id, pc.provider);
                    let scope = b.scope(
                        format!("provider config '{}' of {label}", pc.provider),
                        &owner,
                        (&pc.budget_id, &pc.budgets),
                        (&pc.rate_limit_id, &pc.rate_limit),
                        aligned,
                    );
                    let allowed = match &pc.allowed_models {
                        None => ModelRule::All,
                        Some(list) if list.iter().any(|m| m == "*") => ModelRule::All,
                        Some(list) if list.is_empty() && !deny_by_default => ModelRule::All,
                        Some(list) => ModelRule::Only(list.clone()),
                    };
                    ProviderAccess {
                        provider: pc.provider.clone(),
                        weight: pc.weight,
                        allowed,
                        blacklisted: pc.blacklisted_models.clone(),
                        key_ids: pc.key_ids.clone().into(),
                        scope,
                    }
                })
                .collect();
            let team = vk.team_id.as_deref().and_then(|t| teams.get(t));
            let customer_id = vk.customer_id.as_deref().or_else(|| team.and_then(|t| t.1));
            let runtime = VirtualKeyRuntime {
                id: vk.id.clone(),
                name: vk.name.clone(),
                active: vk.is_active.unwrap_or(true),
                expires_at: vk.expires_at.as_deref().and_then(|t| {
                    let parsed = parse_time(t);
                    if parsed.is_none() {
                        b.warnings.push(format!(
                            "virtual key {:?}: expires_at {t:?} is not an RFC 3339 time; the key is treated as expired",
                            vk.id
                        ));
                        return Some(i64::MIN);
                    }
                    parsed
                }),
                scope,
                provider_configs,
                disable_content_logging: vk.disable_content_logging.unwrap_or(false),
                allow_all_providers: vk.allow_all_providers.unwrap_or(false)
                    || (!deny_by_default && vk.provider_configs.is_empty()),
                team: team.map(|t| t.0.clone()),
                customer: customer_id.and_then(|c| customers.get(c)).cloned(),
                team_ref: vk
                    .team_id
                    .as_deref()
                    .filter(|t| teams.contains_key(t))
                    .map(|t| Box::new(entity(t, &team_names))),
                customer_ref: customer_id
                    .filter(|c| customers.contains_key(c))
                    .map(|c| Box::new(entity(c, &customer_names))),
                model_scopes: vk_model_configs.remove(vk.id.as_str()).unwrap_or_default(),
            };
            keys.insert(key_hash(&value), Arc::new(runtime));
        }

        registry.end_build();
        let has_caps = b.used > 0;
        let governance = Governance {
            keys,
            vk_required: config.virtual_key_mandatory(),
            providers,
            models: model_configs,
            pricing: PricingTable::build(&gov.model_prices, &gov.pricing_overrides),
            default_max_output_tokens: config
                .client
                .default_max_output_tokens
                .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
            has_caps,
            journal: registry.journal(),
            leases: registry.leases(),
        };
        (governance, b.warnings)
    }
}

/// Parses an RFC 3339 time to Unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

struct Builder<'a> {
    registry: &'a Registry,
    now: i64,
    budgets: HashMap<String, &'a Budget>,
    rates: HashMap<String, &'a RateLimit>,
    /// Caps built (any at all turns admission on).
    used: usize,
    warnings: Vec<String>,
}

impl Builder<'_> {
    fn scope(
        &mut self,
        label: String,
        owner: &str,
        budgets: (&Option<String>, &[Budget]),
        rate: (&Option<String>, &Option<RateLimit>),
        aligned: Option<bool>,
    ) -> Scope {
        let mut caps = Vec::new();
        if let Some(id) = budgets.0 {
            match self.budgets.get(id).copied() {
                Some(budget) => {
                    caps.extend(self.budget(&format!("budget:{id}"), format!("budget '{id}'"), budget, aligned))
                }
                None => self.warnings.push(format!("{label}: budget {id:?} is not declared")),
            }
        }
        for (i, budget) in budgets.1.iter().enumerate() {
            let (meter_id, name) = match &budget.id {
                Some(id) => (format!("budget:{id}"), format!("budget '{id}'")),
                None => (format!("{owner}:budget:{i}"), format!("budget #{}", i + 1)),
            };
            caps.extend(self.budget(&meter_id, name, budget, aligned));
        }
        let rate = match rate {
            (Some(id), _) => match self.rates.get(id).copied() {
                Some(limit) => self.rate(&format!("rate_limit:{id}"), format!("'{id}'"), limit, aligned),
                None => {
                    self.warnings
                        .push(format!("{label}: rate limit {id:?} is not declared"));
                    None
                }
            },
            (None, Some(limit)) => {
                let (meter_id, name) = match &limit.id {
                    Some(id) => (format!("rate_limit:{id}"), format!("'{id}'")),
                    None => (format!("{owner}:rate_limit"), "(inline)".to_string()),
                };
                self.rate(&meter_id, name, limit, aligned)
            }
            (None, None) => None,
        };
        Scope {
            label,
            budgets: caps,
            // Boxed: most scopes have none, and an inline `RateCap` is large.
            rate: rate.map(Box::new),
        }
    }

    fn budget(&mut self, meter_id: &str, name: String, budget: &Budget, aligned: Option<bool>) -> Option<BudgetCap> {
        let aligned = budget.calendar_aligned.or(aligned).unwrap_or(false);
        let Some(window) = Window::parse(&budget.reset_duration, aligned) else {
            self.warnings.push(format!(
                "{name}: reset_duration {:?} is not a duration; the budget is not enforced",
                budget.reset_duration
            ));
            return None;
        };
        let initial = (
            to_micros(budget.current_usage.unwrap_or(0.0)),
            budget.last_reset.as_deref().and_then(parse_time),
        );
        self.used += 1;
        let raise = budget.raise.as_ref().map(|o| {
            let until = match (o.mode.as_str(), o.cycles) {
                ("cycles", Some(cycles)) => {
                    let (_, mut end) = window.first(o.starts_at.unwrap_or(self.now));
                    for _ in 1..cycles.max(1) {
                        end = window.end(end);
                    }
                    Some(end)
                }
                _ => None,
            };
            (to_micros(o.amount), until)
        });
        Some(BudgetCap {
            name,
            max_micros: to_micros(budget.max_limit),
            raise,
            duration: budget.reset_duration.clone(),
            window,
            meter: self
                .registry
                .meter(meter_id, Unit::UsdMicros, &window, initial, self.now),
        })
    }

    fn rate(&mut self, meter_id: &str, name: String, limit: &RateLimit, aligned: Option<bool>) -> Option<RateCap> {
        let aligned = limit.calendar_aligned.or(aligned).unwrap_or(false);
        let mut side = |unit: Unit,
                        max: Option<u64>,
                        duration: &Option<String>,
                        used: Option<u64>,
                        last_reset: &Option<String>|
         -> Option<LimitCap> {
            let max = max?;
            let duration = duration.clone().unwrap_or_else(|| "1h".to_string());
            let Some(window) = Window::parse(&duration, aligned) else {
                self.warnings.push(format!(
                    "rate limit {name}: reset duration {duration:?} is not a duration; that limit is not enforced"
                ));
                return None;
            };
            let id = format!("{meter_id}:{}", unit.as_str());
            self.used += 1;
            let initial = (
                i64::try_from(used.unwrap_or(0)).unwrap_or(i64::MAX),
                last_reset.as_deref().and_then(parse_time),
            );
            Some(LimitCap {
                max: i64::try_from(max).unwrap_or(i64::MAX),
                duration,
                window,
                meter: self.registry.meter(&id, unit, &window, initial, self.now),
            })
        };
        let tokens = side(
            Unit::Tokens,
            limit.token_max_limit,
            &limit.token_reset_duration,
            limit.token_current_usage,
            &limit.token_last_reset,
        );
        let requests = side(
            Unit::Requests,
            limit.request_max_limit,
            &limit.request_reset_duration,
            limit.request_current_usage,
            &limit.request_last_reset,
        );
        (tokens.is_some() || requests.is_some()).then_some(RateCap { name, tokens, requests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_raises_the_limit_until_it_ends() {
        let registry = Registry::new();
        let window = Window::parse("1h", false).expect("window");
        let meter = registry.meter("b", Unit::UsdMicros, &window, (0, None), 0);
        let cap = |raise| BudgetCap {
            name: "b".into(),
            max_micros: 100,
            raise,
            duration: "1h".into(),
            window,
            meter: meter.clone(),
        };
        assert_eq!(cap(None).max_at(10), 100);
        assert_eq!(cap(Some((50, None))).max_at(1_000_000), 150, "forever");
        let until = cap(Some((50, Some(3_600))));
        assert_eq!((until.max_at(3_599), until.max_at(3_600)), (150, 100));
    }
}
