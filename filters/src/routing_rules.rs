//! Routing rules: Bifrost's CEL rules (`governance.routing_rules`), as a filter on the request
//! hook that runs before the routing filter. A rule whose expression matches rewrites where the
//! request goes (provider, model, key pin, fallbacks); the routing filter then plans from that
//! ([`RouteOverride`]), and governance checks the final target as usual.
//!
//! Semantics follow Bifrost's routing rules:
//! - rules are tried by scope, the caller's virtual key first, then its team, its customer, then
//!   global rules; within a scope by ascending `priority`; the first match wins;
//! - a target's provider, model and key are each inherited from the request when unset, and a
//!   target is picked by weight (all zero: uniformly);
//! - `headers["x-missing"]` is an evaluation error, which counts as no match;
//! - `chain_rule: true` evaluates the rules again on the rewritten request, up to
//!   `client.routing_chain_max_depth` (10) times, stopping when a rule matches a second time.
//!
//! Expressions are compiled when the config is installed, never per request. A request builds
//! one activation that resolves variables on first use: `headers`, `params`, `request_body` and
//! `provider_health` cost nothing unless a rule reads them. Besides Bifrost's variables
//! (`model`, `provider`, `request_type`, `headers`, `params`, `virtual_key_id`/`_name`,
//! `team_id`/`_name`, `customer_id`/`_name`, `budget_used`, `tokens_used`, `request`), asbru adds
//! `request_body` (the parsed JSON body, up to [`MAX_RULE_BODY_BYTES`]), `prompt_bytes`,
//! `time_of_day_utc` (hours, 0 to 24), `day_of_week` (0 is Sunday) and `provider_health`
//! (each provider's error rate over the last minute, in percent).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use asbru_config::Config;
use asbru_config::governance::RoutingRule;
use cel::common::types::{CelDouble, CelInt, CelMap, CelMapKey, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use http::HeaderValue;
use rand::Rng;

use crate::ctx::{GatewayRequest, RequestCtx, RouteOverride, RuleRef};
use crate::filter::{Filter, Flow};
use crate::live::Live;
use crate::policy::VirtualKeyRuntime;
use crate::policy::runtime::Scope;
use crate::slots::Slots;

/// Largest body `request_body` exposes; a larger body reads as an empty map.
pub const MAX_RULE_BODY_BYTES: usize = 256 * 1024;

/// How many times chained rules may rewrite one request when the config does not say.
pub const DEFAULT_CHAIN_DEPTH: usize = 10;

/// The routing rules filter.
pub struct RoutingRulesFilter;

impl Filter for RoutingRulesFilter {
    fn name(&self) -> &'static str {
        "routing_rules"
    }

    fn on_config(&self, live: &Live, config: &Config, slots: &mut Slots) {
        let (rules, warnings) = CompiledRules::build(config, live);
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        if !rules.rules.is_empty() {
            slots.insert(rules);
        }
    }

    fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        let Some(rules) = live.slot::<CompiledRules>() else {
            return Flow::Continue;
        };
        let Some(decision) = rules.decide(live, &ctx.request, ctx.facts.vk.as_deref()) else {
            return Flow::Continue;
        };
        for (name, value) in [
            ("x-bifrost-routing-info-provider", decision.route.provider.as_str()),
            ("x-bifrost-routing-info-model", decision.route.model.as_str()),
            (
                "x-bifrost-routing-info-primary-provider",
                decision.primary_provider.as_str(),
            ),
            ("x-bifrost-routing-info-primary-model", decision.primary_model.as_str()),
            ("x-bifrost-routing-info-rule-id", &decision.rule.id),
            ("x-bifrost-routing-info-rule-name", &decision.rule.name),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                ctx.response_headers.push((http::HeaderName::from_static(name), value));
            }
        }
        if let Some(key) = decision
            .route
            .key_id
            .as_deref()
            .and_then(|k| HeaderValue::from_str(k).ok())
        {
            ctx.response_headers
                .push((http::HeaderName::from_static("x-bifrost-routing-info-key"), key));
        }
        ctx.facts.routing_rule = Some(decision.rule);
        ctx.facts.route = Some(decision.route);
        Flow::Continue
    }
}

/// One target of a rule.
#[derive(Debug, Clone)]
struct Target {
    provider: Option<String>,
    model: Option<String>,
    key_id: Option<String>,
    weight: f64,
}

/// One compiled rule.
struct Rule {
    reference: RuleRef,
    program: cel::Program,
    targets: Vec<Target>,
    fallbacks: Option<Vec<String>>,
    chain: bool,
    /// Unix second of the last evaluation error logged (one line per rule per minute).
    last_error_log: AtomicI64,
}

/// The rules of one config, compiled and ordered for evaluation.
pub struct CompiledRules {
    env: Arc<cel::Env>,
    rules: Vec<Rule>,
    global: Vec<usize>,
    by_virtual_key: HashMap<String, Vec<usize>>,
    by_team: HashMap<String, Vec<usize>>,
    by_customer: HashMap<String, Vec<usize>>,
    max_depth: usize,
}

/// What the rules decided for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The last rule that matched.
    pub rule: RuleRef,
    /// Where the request goes.
    pub route: RouteOverride,
    /// The provider the request named (empty when it named none).
    pub primary_provider: String,
    /// The model the request named.
    pub primary_model: String,
}

impl CompiledRules {
    /// Compiles the enabled rules of `config`. A rule that does not parse, or whose targets name
    /// providers `live` does not have, is left out with a warning (`asbru check` and the
    /// management API refuse such rules; this guards a store written by an older version).
    pub fn build(config: &Config, live: &Live) -> (CompiledRules, Vec<String>) {
        let env = Arc::new(cel::Env::stdlib());
        let mut compiled = CompiledRules {
            env: env.clone(),
            rules: Vec::new(),
            global: Vec::new(),
            by_virtual_key: HashMap::new(),
            by_team: HashMap::new(),
            by_customer: HashMap::new(),
            max_depth: config
                .client
                .routing_chain_max_depth
                .map_or(DEFAULT_CHAIN_DEPTH, |d| {
                    usize::try_from(d).unwrap_or(DEFAULT_CHAIN_DEPTH)
                })
                .clamp(1, 32),
        };
        let mut warnings = Vec::new();
        let Some(governance) = &config.governance else {
            return (compiled, warnings);
        };
        let mut ordered: Vec<&RoutingRule> = governance
            .routing_rules
            .iter()
            .filter(|r| r.enabled != Some(false))
            .collect();
        // Stable: equal priorities keep their configured order.
        ordered.sort_by_key(|r| r.priority.unwrap_or(0));
        for rule in ordered {
            let compiled_program =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.compile(&rule.cel_expression)));
            let program = match compiled_program {
                Ok(Ok(program)) => program,
                Ok(Err(e)) => {
                    warnings.push(format!(
                        "routing rule {:?} is not used: its cel_expression does not parse: {}",
                        rule.id,
                        e.errors.first().map(|e| e.msg.as_str()).unwrap_or("syntax error")
                    ));
                    continue;
                }
                Err(_) => {
                    warnings.push(format!(
                        "routing rule {:?} is not used: its cel_expression could not be compiled",
                        rule.id
                    ));
                    continue;
                }
            };
            let mut targets = Vec::new();
            for t in &rule.targets {
                if let Some(provider) = &t.provider
                    && !live.snapshot.has_provider(provider)
                {
                    warnings.push(format!(
                        "routing rule {:?}: target provider {provider:?} is not configured; that target is not used",
                        rule.id
                    ));
                    continue;
                }
                targets.push(Target {
                    provider: t.provider.clone().filter(|p| !p.is_empty()),
                    model: t.model.clone().filter(|m| !m.is_empty()),
                    key_id: t.key_id.clone().filter(|k| !k.is_empty()),
                    weight: t.weight.unwrap_or(1.0).max(0.0),
                });
            }
            if targets.is_empty() && !rule.targets.is_empty() {
                continue;
            }
            let fallbacks: Vec<String> = rule.fallbacks.iter().filter_map(fallback_text).collect();
            let index = compiled.rules.len();
            compiled.rules.push(Rule {
                reference: RuleRef {
                    id: Arc::from(rule.id.as_str()),
                    name: Arc::from(if rule.name.is_empty() {
                        rule.id.as_str()
                    } else {
                        rule.name.as_str()
                    }),
                },
                program,
                targets,
                fallbacks: (!fallbacks.is_empty()).then_some(fallbacks),
                chain: rule.chain_rule == Some(true),
                last_error_log: AtomicI64::new(i64::MIN),
            });
            let scope_id = rule.scope_id.clone().unwrap_or_default();
            match rule.scope.as_deref().unwrap_or("global") {
                "virtual_key" => compiled.by_virtual_key.entry(scope_id).or_default().push(index),
                "team" => compiled.by_team.entry(scope_id).or_default().push(index),
                "customer" => compiled.by_customer.entry(scope_id).or_default().push(index),
                _ => compiled.global.push(index),
            }
        }
        (compiled, warnings)
    }

    /// Evaluates the rules for a request; `None` when none matched.
    pub fn decide(&self, live: &Live, request: &GatewayRequest, vk: Option<&VirtualKeyRuntime>) -> Option<Decision> {
        // The request's provider (empty when it names none) and model.
        let (provider, model) = live.snapshot.split_model(&request.model_requested);
        let provider = provider.or(request.default_provider).unwrap_or_default();
        let primary_provider = provider.to_string();
        let primary_model = model.to_string();
        let facts = RequestFacts::new(live, request, vk);
        let mut current = (primary_provider.clone(), primary_model.clone(), None::<String>);
        let mut applied: Vec<usize> = Vec::new();
        let mut decision: Option<Decision> = None;
        for _ in 0..self.max_depth {
            let activation = Activation {
                facts: &facts,
                provider: &current.0,
                model: &current.1,
            };
            let Some(index) = self.first_match(&activation, vk, request.now) else {
                break;
            };
            if applied.contains(&index) {
                // A chain came back to a rule it already applied: stop, keep what it has.
                break;
            }
            applied.push(index);
            let rule = &self.rules[index];
            let target = pick(&rule.targets);
            let provider = target
                .and_then(|t| t.provider.clone())
                .unwrap_or_else(|| current.0.clone());
            let model = target
                .and_then(|t| t.model.clone())
                .unwrap_or_else(|| current.1.clone());
            let key = target.and_then(|t| t.key_id.clone()).or(current.2.take());
            let fallbacks = rule
                .fallbacks
                .clone()
                .or_else(|| decision.as_ref().and_then(|d| d.route.fallbacks.clone()));
            current = (provider.clone(), model.clone(), key.clone());
            decision = Some(Decision {
                rule: rule.reference.clone(),
                route: RouteOverride {
                    provider,
                    model,
                    fallbacks,
                    key_id: key,
                },
                primary_provider: primary_provider.clone(),
                primary_model: primary_model.clone(),
            });
            if !rule.chain {
                break;
            }
        }
        // A match that leaves the provider unknown (a bare model and a target that names none)
        // cannot be planned from: the request goes its usual way.
        decision.filter(|d| !d.route.provider.is_empty())
    }

    /// The first rule that matches, in scope and priority order.
    fn first_match(&self, activation: &Activation<'_, '_>, vk: Option<&VirtualKeyRuntime>, now: i64) -> Option<usize> {
        fn scoped<'m>(map: &'m HashMap<String, Vec<usize>>, id: Option<&str>) -> &'m [usize] {
            id.and_then(|id| map.get(id)).map(Vec::as_slice).unwrap_or_default()
        }
        let vk_rules = scoped(&self.by_virtual_key, vk.map(|v| v.id.as_str()));
        let team_rules = scoped(
            &self.by_team,
            vk.and_then(|v| v.team_ref.as_deref()).map(|t| t.id.as_str()),
        );
        let customer_rules = scoped(
            &self.by_customer,
            vk.and_then(|v| v.customer_ref.as_deref()).map(|c| c.id.as_str()),
        );
        let mut context = cel::Context::with_env(self.env.clone());
        context.set_variable_resolver(activation);
        // Scope precedence: the key's own rules, its team's, its customer's, then global.
        for list in [vk_rules, team_rules, customer_rules, self.global.as_slice()] {
            for &index in list {
                let rule = &self.rules[index];
                // The interpreter is a dependency: a panic in it is a non-match, never a crash.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rule.program.execute(&context)));
                match run {
                    Ok(Ok(cel::Value::Bool(true))) => return Some(index),
                    Ok(Ok(_)) => {}
                    // A missing key is no match, as Bifrost defines it, and is not logged.
                    Ok(Err(cel::ExecutionError::NoSuchKey(_))) => {}
                    Ok(Err(e)) => rule.log_error(&e, now),
                    Err(_) => rule.log_error(&"the CEL interpreter panicked", now),
                }
            }
        }
        None
    }

    /// How many rules are in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl Rule {
    /// Logs an evaluation error, at most once a minute per rule. Missing keys are no match, as
    /// Bifrost defines them, and are not logged.
    fn log_error(&self, error: &dyn std::fmt::Display, now: i64) {
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 60 {
            return;
        }
        if self
            .last_error_log
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                rule = %self.reference.id,
                "routing rule evaluation failed (counted as no match; logged once a minute): {error}"
            );
        }
    }
}

/// A rule's fallback as `provider/model` or `provider/` text: strings as written, objects
/// `{provider, model}`.
fn fallback_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.contains('/') => Some(s.clone()),
        serde_json::Value::Object(o) => {
            let provider = o.get("provider")?.as_str()?;
            let model = o.get("model").and_then(|m| m.as_str()).unwrap_or_default();
            Some(format!("{provider}/{model}"))
        }
        _ => None,
    }
}

/// A target by weight; uniformly when every weight is zero.
fn pick(targets: &[Target]) -> Option<&Target> {
    match targets.len() {
        0 => None,
        1 => targets.first(),
        n => {
            let total: f64 = targets.iter().map(|t| t.weight).sum();
            let mut rng = rand::rng();
            if total <= 0.0 {
                return targets.get(rng.random_range(0..n));
            }
            let mut point = rng.random::<f64>() * total;
            for target in targets {
                if point < target.weight {
                    return Some(target);
                }
                point -= target.weight;
            }
            targets.last()
        }
    }
}

/// What every evaluation of one request shares: the inputs, and the variables built on first
/// use.
struct RequestFacts<'a> {
    live: &'a Live,
    request: &'a GatewayRequest,
    vk: Option<&'a VirtualKeyRuntime>,
    headers: OnceLock<Box<dyn Val + 'a>>,
    params: OnceLock<Box<dyn Val + 'a>>,
    body: OnceLock<Box<dyn Val + 'a>>,
    health: OnceLock<Box<dyn Val + 'a>>,
    usage: OnceLock<Usage>,
}

/// Percent use of the request's caps, the fullest of each kind across its levels.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    budget: f64,
    tokens: f64,
    requests: f64,
}

impl<'a> RequestFacts<'a> {
    fn new(live: &'a Live, request: &'a GatewayRequest, vk: Option<&'a VirtualKeyRuntime>) -> RequestFacts<'a> {
        RequestFacts {
            live,
            request,
            vk,
            headers: OnceLock::new(),
            params: OnceLock::new(),
            body: OnceLock::new(),
            health: OnceLock::new(),
            usage: OnceLock::new(),
        }
    }

    fn usage(&self, provider: &str) -> Usage {
        *self.usage.get_or_init(|| {
            let mut usage = Usage::default();
            let Some(vk) = self.vk else {
                return usage;
            };
            let now = self.request.now;
            let mut scopes: Vec<&Scope> = vec![&vk.scope];
            scopes.extend(vk.access(provider).map(|a| &a.scope));
            scopes.extend(vk.team.as_deref());
            scopes.extend(vk.customer.as_deref());
            for scope in scopes {
                for cap in &scope.budgets {
                    let max = cap.max_at(now);
                    if max > 0 && cap.window.end(cap.meter.window_start()) > now {
                        usage.budget = usage.budget.max(percent(cap.meter.total(), max));
                    }
                }
                if let Some(rate) = &scope.rate {
                    for (cap, slot) in [(&rate.tokens, &mut usage.tokens), (&rate.requests, &mut usage.requests)] {
                        if let Some(cap) = cap
                            && cap.max > 0
                            && cap.window.end(cap.meter.window_start()) > now
                        {
                            *slot = slot.max(percent(cap.meter.total(), cap.max));
                        }
                    }
                }
            }
            usage
        })
    }
}

fn percent(used: i64, max: i64) -> f64 {
    (used.max(0) as f64 / max as f64 * 100.0).min(100.0)
}

/// The variables of one evaluation round: the shared facts, and the provider and model as the
/// rules so far left them.
struct Activation<'f, 'a> {
    facts: &'f RequestFacts<'a>,
    provider: &'f str,
    model: &'f str,
}

fn text<'b>(value: &'b str) -> Option<CowVal<'b, 'b>> {
    Some(CowVal::owned(CelString::from(value)))
}

fn number<'b>(value: f64) -> Option<CowVal<'b, 'b>> {
    Some(CowVal::owned(CelDouble::from(value)))
}

fn string_map<'v>(pairs: impl Iterator<Item = (&'v str, &'v str)>) -> Box<dyn Val + 'v> {
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for (key, value) in pairs {
        map.insert(CelMapKey::from(key), Box::new(CelString::from(value)));
    }
    Box::new(CelMap::from(map))
}

impl VariableResolver for Activation<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let facts = self.facts;
        let request = facts.request;
        let vk = facts.vk;
        match variable {
            "model" => text(self.model),
            "provider" => text(self.provider),
            "request_type" => text(request.request_type.as_str()),
            "virtual_key_id" => text(vk.map_or("", |v| v.id.as_str())),
            "virtual_key_name" => text(vk.map_or("", |v| v.name.as_str())),
            "team_id" => text(vk.and_then(|v| v.team_ref.as_deref()).map_or("", |t| t.id.as_str())),
            "team_name" => text(vk.and_then(|v| v.team_ref.as_deref()).map_or("", |t| t.name.as_str())),
            "customer_id" => text(vk.and_then(|v| v.customer_ref.as_deref()).map_or("", |c| c.id.as_str())),
            "customer_name" => text(
                vk.and_then(|v| v.customer_ref.as_deref())
                    .map_or("", |c| c.name.as_str()),
            ),
            "budget_used" => number(facts.usage(self.provider).budget),
            "tokens_used" => number(facts.usage(self.provider).tokens),
            "request" => number(facts.usage(self.provider).requests),
            "prompt_bytes" => Some(CowVal::owned(CelInt::from(
                i64::try_from(request.body.len()).unwrap_or(i64::MAX),
            ))),
            "time_of_day_utc" => number(request.now.rem_euclid(86_400) as f64 / 3600.0),
            "day_of_week" => Some(CowVal::owned(CelInt::from(
                (request.now.div_euclid(86_400) + 4).rem_euclid(7),
            ))),
            "headers" => {
                let value = facts.headers.get_or_init(|| {
                    string_map(
                        request
                            .headers
                            .iter()
                            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
                    )
                });
                Some(CowVal::Borrowed(value.as_ref()))
            }
            "params" => {
                let value = facts
                    .params
                    .get_or_init(|| query_map(request.query.as_deref().unwrap_or_default()));
                Some(CowVal::Borrowed(value.as_ref()))
            }
            "request_body" => {
                let value = facts.body.get_or_init(|| body_value(&request.body));
                Some(CowVal::Borrowed(value.as_ref()))
            }
            "provider_health" => {
                let value = facts.health.get_or_init(|| {
                    let live = facts.live;
                    let mut map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = HashMap::new();
                    for name in &live.snapshot.provider_names {
                        let rate = live.provider_health(name, request.now).error_rate() * 100.0;
                        map.insert(CelMapKey::from(name.as_str()), Box::new(CelDouble::from(rate)));
                    }
                    Box::new(CelMap::from(map))
                });
                Some(CowVal::Borrowed(value.as_ref()))
            }
            _ => None,
        }
    }
}

/// Query parameters as a map, keys lowercased, values percent-decoded (`+` is a space).
fn query_map<'v>(query: &str) -> Box<dyn Val + 'v> {
    let mut map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key).to_ascii_lowercase();
        map.insert(CelMapKey::from(key), Box::new(CelString::from(decode(value))));
    }
    Box::new(CelMap::from(map))
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body as a CEL value: its JSON object, read lazily (see [`crate::cel_json`]), or an empty
/// map when it is too large or not an object.
fn body_value<'v>(body: &'v [u8]) -> Box<dyn Val + 'v> {
    if body.len() > MAX_RULE_BODY_BYTES {
        return Box::new(CelMap::from(HashMap::new()));
    }
    crate::cel_json::object(body).unwrap_or_else(|| Box::new(CelMap::from(HashMap::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;

    fn live(yaml: &str) -> (Live, Config) {
        let loaded = asbru_config::load_str(yaml, "t.yaml").expect("valid");
        let registry = Arc::new(crate::policy::Registry::new());
        let live = Live::build_with(&loaded.config, &registry, 0, &|_| None).0;
        (live, loaded.config)
    }

    fn request(body: &[u8], headers: &[(&'static str, &'static str)]) -> GatewayRequest {
        GatewayRequest {
            ingress: asbru_config::catalog::Wire::OpenAi,
            request_type: asbru_config::catalog::RequestType::ChatCompletion,
            stream: false,
            model_requested: "openai/gpt-4o".to_string(),
            default_provider: None,
            fallbacks: Vec::new(),
            credentials: Default::default(),
            require_vk: false,
            estimate: Default::default(),
            now: 1_800_000_000,
            arrived_ms: 0,
            body: bytes::Bytes::copy_from_slice(body),
            headers: headers
                .iter()
                .map(|(n, v)| (http::HeaderName::from_static(n), HeaderValue::from_static(v)))
                .collect(),
            query: Some("Tier=Free&x=%41+b".into()),
            pin: None,
        }
    }

    #[test]
    fn variables_resolve_as_documented() {
        let (live, mut config) = live("providers:\n  openai: {keys: [{value: k}]}\n  groq: {keys: [{value: k}]}\n");
        let expression = r#"model == "gpt-4o" && provider == "openai" && request_type == "chat_completion" && headers["x-tier"] == "free" && params["tier"] == "Free" && params["x"] == "A b" && prompt_bytes > 10 && time_of_day_utc >= 0.0 && day_of_week >= 0 && day_of_week <= 6 && virtual_key_id == "" && budget_used == 0.0 && provider_health["openai"] == 0.0 && size(request_body.messages) == 1"#;
        assert_eq!(asbru_config::governance_check::cel_reference_error(expression), None);
        config.governance = Some(
            serde_json::from_value(serde_json::json!({"routing_rules": [
                {"id": "all", "name": "all", "cel_expression": expression, "targets": [{"provider": "groq"}]}
            ]}))
            .expect("governance"),
        );
        let (rules, warnings) = CompiledRules::build(&config, &live);
        assert!(warnings.is_empty(), "{warnings:?}");
        let body = br#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let decision = rules
            .decide(&live, &request(body, &[("x-tier", "free")]), None)
            .expect("every variable resolved as expected");
        assert_eq!(decision.route.provider, "groq");
        assert_eq!(decision.route.model, "gpt-4o", "the model is inherited");
        // Sunday 2027-01-03 00:00 UTC is day 0.
        let mut sunday = request(body, &[]);
        sunday.now = 1_798_934_400;
        let facts = RequestFacts::new(&live, &sunday, None);
        let activation = Activation {
            facts: &facts,
            provider: "openai",
            model: "gpt-4o",
        };
        let mut context = cel::Context::with_env(rules.env.clone());
        context.set_variable_resolver(&activation);
        let day = rules
            .env
            .compile("day_of_week == 0 && time_of_day_utc == 0.0")
            .expect("compiles");
        assert_eq!(day.execute(&context).expect("runs"), cel::Value::Bool(true));
    }

    /// Random expressions over the rule variables and random bodies: compiling and evaluating
    /// never panics and never matches by accident of an error.
    #[test]
    fn random_expressions_and_bodies_never_panic() {
        let (live, mut config) = live("providers:\n  openai: {keys: [{value: k}]}\n");
        let atoms = [
            "model",
            "provider",
            "headers",
            "headers[\"x-a\"]",
            "params",
            "request_body",
            "request_body.messages",
            "request_body.messages[0]",
            "request_body.messages[0].content",
            "request_body.n",
            "request_body.tools",
            "budget_used",
            "prompt_bytes",
            "provider_health",
            "provider_health[\"openai\"]",
            "\"s\"",
            "1",
            "-3",
            "2.5",
            "true",
            "null",
            "[1, \"a\"]",
            "{\"k\": 1}",
            "day_of_week",
            "time_of_day_utc",
            "b\"x\"",
            "1u",
            "9223372036854775807",
        ];
        let unary = [
            "size(%)",
            "!%",
            "-%",
            "has(%.x)",
            "%.startsWith(\"a\")",
            "string(%)",
            "int(%)",
            "double(%)",
            "type(%)",
            "%.exists(v, v == 1)",
            "%.all(v, true)",
            "%.map(v, v)",
            "%[0]",
            "%[\"k\"]",
            "%.matches(\"a+\")",
            "%.contains(\"a\")",
            "(%)",
        ];
        let binary = [
            " == ", " != ", " < ", " >= ", " + ", " - ", " * ", " / ", " % ", " && ", " || ", " in ",
        ];
        let bodies: [&[u8]; 6] = [
            br#"{"messages":[{"role":"user","content":"hi"}],"n":3,"tools":null}"#,
            br#"{"messages":"not a list","n":1e308}"#,
            br#"{"messages":[[[[[]]]]],"n":-9223372036854775808}"#,
            b"not json",
            br#"[1,2,3]"#,
            br#"{"n":"\ud800"}"#,
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut compiled = 0;
        for _ in 0..3000 {
            let mut expression = atoms[rng.random_range(0..atoms.len())].to_string();
            for _ in 0..rng.random_range(0..4) {
                if rng.random_bool(0.5) {
                    expression = unary[rng.random_range(0..unary.len())].replace('%', &expression);
                } else {
                    let other = atoms[rng.random_range(0..atoms.len())];
                    expression = format!("{expression}{}{other}", binary[rng.random_range(0..binary.len())]);
                }
            }
            if rng.random_bool(0.05) {
                // Truncated or garbled text.
                let cut = rng.random_range(0..expression.len().max(1));
                expression.truncate(cut);
                expression.push_str(["(", "\"", "[", ".", "&&"][rng.random_range(0..5)]);
            }
            let _ = asbru_config::governance_check::cel_syntax_error(&expression);
            let _ = asbru_config::governance_check::cel_reference_error(&expression);
            config.governance = Some(
                serde_json::from_value(serde_json::json!({"routing_rules": [
                    {"id": "f", "name": "f", "cel_expression": format!("({expression}) == true"), "targets": [{"model": "x"}]}
                ]}))
                .expect("governance"),
            );
            let (rules, _) = CompiledRules::build(&config, &live);
            if !rules.is_empty() {
                compiled += 1;
            }
            for body in bodies {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    rules.decide(&live, &request(body, &[("x-a", "1")]), None)
                }));
                assert!(outcome.is_ok(), "panicked on {expression:?} with body {body:?}");
            }
        }
        assert!(
            compiled > 1000,
            "the generator should mostly make valid expressions: {compiled}"
        );
    }
}
