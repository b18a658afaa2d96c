//! The `governance` section (Bifrost's config.json and Helm governance YAML): budgets, rate
//! limits, customers, teams, virtual keys, model configs, provider governance, routing rules,
//! pricing overrides and the admin auth config. Helm's camelCase section names are aliases.
//!
//! This module is the schema and its validation; enforcement lives in `asbru-filters`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole `governance` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// Spending caps, referenced by id.
    pub budgets: Vec<Budget>,
    /// Token and request caps, referenced by id.
    #[serde(alias = "rateLimits")]
    pub rate_limits: Vec<RateLimit>,
    /// Customers (top of the hierarchy).
    pub customers: Vec<Customer>,
    /// Teams, optionally under a customer.
    pub teams: Vec<Team>,
    /// Virtual keys issued to callers.
    #[serde(alias = "virtualKeys")]
    pub virtual_keys: Vec<VirtualKey>,
    /// Per-model budgets and limits.
    #[serde(alias = "modelConfigs")]
    pub model_configs: Vec<ModelConfig>,
    /// Per-provider budgets and limits.
    pub providers: Vec<ProviderGovernance>,
    /// CEL routing rules.
    #[serde(alias = "routingRules")]
    pub routing_rules: Vec<RoutingRule>,
    /// Prices that win over the bundled pricing table.
    #[serde(alias = "pricingOverrides")]
    pub pricing_overrides: Vec<PricingOverride>,
    /// Admin authentication (kept as given: Bifrost and Helm spell its fields differently).
    #[serde(alias = "authConfig")]
    pub auth_config: Option<Value>,
    /// Model prices synced into the config store (a datasheet); not part of the file format.
    #[serde(skip)]
    pub model_prices: Vec<ModelPrice>,
    /// Several gateways sharing one PostgreSQL store meter budgets and rate limits together,
    /// by leases (an asbru extension; unrelated to Bifrost enterprise's `cluster_config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// What a node does when the config store cannot be reached and its leases run out.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreDown {
    /// Refuse what no lease covers (402 for budgets, 429 for rate limits).
    #[default]
    FailClosed,
    /// Admit against the configured limits on this node alone until the store is back.
    FailOpen,
}

/// `governance.cluster`: budgets and rate limits metered across nodes by leases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Turns cluster metering on (needs a PostgreSQL config store).
    pub enabled: bool,
    /// What to do when the store is down and a lease is spent.
    pub on_store_down: StoreDown,
    /// Share of what is left of a limit one lease takes (0 < f <= 1).
    pub lease_fraction: f64,
    /// A lease not renewed for this long belongs to a node presumed dead: it stays counted as
    /// spent (never handed back blind) and is shown as stranded.
    pub lease_ttl_seconds: u64,
    /// How long a request waits for a lease before it is refused.
    pub lease_wait_ms: u64,
    /// A lease nothing was admitted against for this long is given back.
    pub idle_return_seconds: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            on_store_down: StoreDown::FailClosed,
            lease_fraction: 0.1,
            lease_ttl_seconds: 10,
            lease_wait_ms: 50,
            idle_return_seconds: 5,
        }
    }
}

impl ClusterConfig {
    /// Whether cluster metering is on.
    pub fn is_on(cluster: Option<&ClusterConfig>) -> bool {
        cluster.is_some_and(|c| c.enabled)
    }
}

/// A budget: a spending cap in USD that resets every `reset_duration`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Id (required when declared in `budgets`; generated for inline budgets).
    pub id: Option<String>,
    /// Cap in USD.
    pub max_limit: f64,
    /// `30s`, `5m`, `1h`, `1d`, `1w`, `1M` (months), `1Y`.
    pub reset_duration: String,
    /// Snap resets to UTC calendar boundaries.
    pub calendar_aligned: Option<bool>,
    /// Usage so far (USD), as persisted.
    pub current_usage: Option<f64>,
    /// Last reset, RFC 3339.
    pub last_reset: Option<String>,
    /// A temporary raise of the limit (set through the management API's budget override).
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub raise: Option<BudgetOverride>,
}

/// A budget override: `amount` USD more for `cycles` reset windows, or until removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetOverride {
    /// USD added to `max_limit`.
    pub amount: f64,
    /// `cycles` (the current window and the next `cycles - 1`) or `forever`.
    pub mode: String,
    /// How many windows, in `cycles` mode.
    pub cycles: Option<u32>,
    /// When it was set, Unix seconds.
    pub starts_at: Option<i64>,
}

/// A rate limit over tokens and/or requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Id.
    pub id: Option<String>,
    /// Token cap per window.
    pub token_max_limit: Option<u64>,
    /// Token window.
    pub token_reset_duration: Option<String>,
    /// Request cap per window.
    pub request_max_limit: Option<u64>,
    /// Request window.
    pub request_reset_duration: Option<String>,
    /// Snap resets to UTC calendar boundaries.
    pub calendar_aligned: Option<bool>,
    /// Tokens used in the current window, as persisted.
    pub token_current_usage: Option<u64>,
    /// Requests made in the current window, as persisted.
    pub request_current_usage: Option<u64>,
    /// Start of the current token window, RFC 3339.
    pub token_last_reset: Option<String>,
    /// Start of the current request window, RFC 3339.
    pub request_last_reset: Option<String>,
}

/// A customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Customer {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline.
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
}

/// A team.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Team {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owning customer.
    pub customer_id: Option<String>,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline.
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
}

/// A virtual key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualKey {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The secret callers send (or `env.NAME`).
    pub value: String,
    /// Inactive keys are refused.
    pub is_active: Option<bool>,
    /// Owning team (exclusive with `customer_id`).
    pub team_id: Option<String>,
    /// Owning customer (exclusive with `team_id`).
    pub customer_id: Option<String>,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline (several allowed).
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
    /// Providers this key may use; empty means none (unless `version: 1`).
    pub provider_configs: Vec<VirtualKeyProvider>,
    /// Every configured provider is allowed, with every model (Bifrost v2.1).
    pub allow_all_providers: Option<bool>,
    /// Expiry, RFC 3339.
    pub expires_at: Option<String>,
    /// Snap resets to UTC calendar boundaries.
    pub calendar_aligned: Option<bool>,
    /// Keep prompts and completions of this key's requests out of the request log.
    pub disable_content_logging: Option<bool>,
}

/// One provider a virtual key may use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualKeyProvider {
    /// Provider name.
    pub provider: String,
    /// Load-balancing weight; `null` keeps the provider out of balancing (explicit use only).
    pub weight: Option<f64>,
    /// Models allowed; `["*"]` or leaving the field out is all, `[]` is none, a `regex:` prefix
    /// marks a pattern.
    pub allowed_models: Option<Vec<String>>,
    /// Models refused (win over `allowed_models`).
    pub blacklisted_models: Vec<String>,
    /// Provider keys this VK may use, by name or id (Helm also spells it `keys`); empty is all.
    #[serde(alias = "keys")]
    pub key_ids: Vec<String>,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline.
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
}

/// Budgets and limits for a model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Id.
    pub id: String,
    /// Model name.
    pub model_name: String,
    /// Provider, when the config applies to one provider only.
    pub provider: Option<String>,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline.
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
    /// `global` (default) or a narrower scope.
    pub scope: Option<String>,
    /// The scope's id.
    pub scope_id: Option<String>,
}

/// Budgets and limits for a provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderGovernance {
    /// Provider name.
    pub name: String,
    /// A budget by id.
    pub budget_id: Option<String>,
    /// Budgets given inline.
    pub budgets: Vec<Budget>,
    /// A rate limit by id.
    pub rate_limit_id: Option<String>,
    /// A rate limit given inline.
    pub rate_limit: Option<RateLimit>,
    /// Accepted for compatibility.
    pub send_back_raw_request: Option<bool>,
    /// Accepted for compatibility.
    pub send_back_raw_response: Option<bool>,
}

/// A CEL routing rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingRule {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Disabled rules are skipped.
    pub enabled: Option<bool>,
    /// The condition.
    pub cel_expression: String,
    /// Weighted targets.
    pub targets: Vec<RoutingTarget>,
    /// `provider/model` or `provider/` strings (objects in newer versions).
    pub fallbacks: Vec<Value>,
    /// `global`, `customer`, `team` or `virtual_key`.
    pub scope: Option<String>,
    /// The scope's id.
    pub scope_id: Option<String>,
    /// Lower first.
    pub priority: Option<i64>,
    /// Re-evaluate rules after a match.
    pub chain_rule: Option<bool>,
    /// Accepted for compatibility.
    pub query: Option<Value>,
}

/// A routing target; missing fields are inherited from the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingTarget {
    /// Provider.
    pub provider: Option<String>,
    /// Model; empty means the request's.
    pub model: Option<String>,
    /// Pinned key.
    pub key_id: Option<String>,
    /// Weight.
    pub weight: Option<f64>,
}

/// A price that wins over the bundled table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PricingOverride {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// USD per input token.
    pub input_cost_per_token: Option<f64>,
    /// USD per output token.
    pub output_cost_per_token: Option<f64>,
    /// USD per cached input token read.
    pub cache_read_input_token_cost: Option<f64>,
    /// USD per input token written to the cache.
    pub cache_creation_input_token_cost: Option<f64>,
    /// USD per generated image (image models billed per image: `dall-e-3`, `dall-e-2`).
    pub output_cost_per_image: Option<f64>,
    /// USD per input character (text-to-speech models: `tts-1`).
    pub input_cost_per_character: Option<f64>,
    /// USD per second of input audio (transcription models: `whisper-1`).
    pub input_cost_per_second: Option<f64>,
    /// Scope of the override.
    pub scope: Option<String>,
    /// The scope's id.
    pub scope_id: Option<String>,
}

/// A row of the model pricing table (the bundled defaults, or a synced datasheet), same fields as
/// an override.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelPrice {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// USD per input token.
    pub input_cost_per_token: Option<f64>,
    /// USD per output token.
    pub output_cost_per_token: Option<f64>,
    /// USD per cached input token read.
    pub cache_read_input_token_cost: Option<f64>,
    /// USD per input token written to the cache.
    pub cache_creation_input_token_cost: Option<f64>,
    /// USD per generated image (image models billed per image: `dall-e-3`, `dall-e-2`).
    pub output_cost_per_image: Option<f64>,
    /// USD per input character (text-to-speech models: `tts-1`).
    pub input_cost_per_character: Option<f64>,
    /// USD per second of input audio (transcription models: `whisper-1`).
    pub input_cost_per_second: Option<f64>,
}

/// A reset period: `30s`, `5m`, `1h`, `1d`, `1w` are fixed lengths; `1M` and `1Y` are calendar
/// units (rolling 30 and 365 days unless calendar-aligned). `m` is minutes and `M` is months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A fixed number of seconds.
    Seconds(u64),
    /// Calendar months.
    Months(u32),
    /// Calendar years.
    Years(u32),
}

/// Parses a reset duration.
pub fn parse_period(text: &str) -> Option<Period> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    Some(match unit {
        's' => Period::Seconds(number),
        'm' => Period::Seconds(number.checked_mul(60)?),
        'h' => Period::Seconds(number.checked_mul(3600)?),
        'd' => Period::Seconds(number.checked_mul(86_400)?),
        'w' => Period::Seconds(number.checked_mul(604_800)?),
        'M' => Period::Months(u32::try_from(number).ok()?),
        'Y' => Period::Years(u32::try_from(number).ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("30s"), Some(Period::Seconds(30)));
        assert_eq!(parse_period("5m"), Some(Period::Seconds(300)));
        assert_eq!(parse_period("1h"), Some(Period::Seconds(3600)));
        assert_eq!(parse_period("1d"), Some(Period::Seconds(86_400)));
        assert_eq!(parse_period("1w"), Some(Period::Seconds(604_800)));
        assert_eq!(parse_period("1M"), Some(Period::Months(1)));
        assert_eq!(parse_period("2Y"), Some(Period::Years(2)));
        for bad in ["", "M", "0d", "1x", "-1h", "1.5h"] {
            assert_eq!(parse_period(bad), None, "{bad}");
        }
    }
}
