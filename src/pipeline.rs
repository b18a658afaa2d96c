//! The composition root: the table of filters by name, and the chain built from it and the
//! config's `plugins` list, following Bifrost's plugin model.
//!
//! - `auth`, `routing_rules`, `routing`, `governance`, `telemetry` and `logging` are built in and
//!   always loaded, in that order. A `plugins` entry may configure them; it never removes one (`enabled: false`
//!   on a built-in is refused with a warning, and a list without `governance` leaves budgets on).
//! - Optional filters run only when a `plugins` entry names them. `placement` (`pre_builtin`,
//!   `builtin`, `post_builtin`; default `post_builtin`) puts them before the built-ins, between
//!   governance and telemetry, or after them; `order` sorts entries of one placement (lower
//!   first, then as listed).
//!
//! Adding a filter: one file in `filters/`, one line in [`TABLE`].

use std::sync::Arc;

use asbru_filters::auth::AuthFilter;
use asbru_filters::governance::GovernanceFilter;
use asbru_filters::logging::LoggingFilter;
use asbru_filters::response_headers::ResponseHeadersFilter;
use asbru_filters::routing::RoutingFilter;
use asbru_filters::routing_rules::RoutingRulesFilter;
use asbru_filters::telemetry::{Metrics, TelemetryFilter};
use asbru_filters::{Filter, FilterChain};
use serde::Deserialize;
use serde_json::Value;

/// What a constructor may use besides its own config.
pub struct Services {
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The request log, when logging is on.
    pub request_log: Option<Arc<crate::request_log::RequestLog>>,
}

/// Builds a filter from its `config` (`null` when the entry has none).
pub type Constructor = fn(&Services, &Value) -> Result<Arc<dyn Filter>, String>;

/// Whether a filter is always loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Always loaded, at a fixed place.
    Builtin,
    /// Loaded when a `plugins` entry names it.
    Optional,
}

/// Every filter asbru ships, built-ins in their order.
pub const TABLE: &[(&str, Kind, Constructor)] = &[
    ("auth", Kind::Builtin, |_, _| Ok(Arc::new(AuthFilter))),
    ("routing_rules", Kind::Builtin, |_, _| Ok(Arc::new(RoutingRulesFilter))),
    ("routing", Kind::Builtin, |_, _| Ok(Arc::new(RoutingFilter))),
    ("governance", Kind::Builtin, |_, _| Ok(Arc::new(GovernanceFilter))),
    ("telemetry", Kind::Builtin, |s, _| {
        Ok(Arc::new(TelemetryFilter::new(s.metrics.clone())))
    }),
    ("logging", Kind::Builtin, |s, _| {
        let sink = s
            .request_log
            .clone()
            .map(|log| log as Arc<dyn asbru_filters::logging::LogSink>);
        Ok(Arc::new(LoggingFilter::new(sink)))
    }),
    ("otel", Kind::Optional, |_, c| crate::otel_export::filter(c)),
    ("response_headers", Kind::Optional, |_, c| {
        Ok(Arc::new(ResponseHeadersFilter::from_config(c)?))
    }),
];

/// Built-ins that optional filters with `placement: builtin` follow.
const BUILTIN_SPLIT: usize = 4;

/// Where an optional filter goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Before every built-in.
    PreBuiltin,
    /// After governance, before telemetry and logging.
    Builtin,
    /// After every built-in.
    #[default]
    PostBuiltin,
}

/// One `plugins` entry (Bifrost's fields; others, such as `path` or `version`, are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct PluginEntry {
    /// The filter's name.
    pub name: String,
    /// Whether to load it (built-ins are always loaded).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its settings.
    #[serde(default)]
    pub config: Value,
    /// Where it goes.
    #[serde(default)]
    pub placement: Placement,
    /// Order within its placement.
    #[serde(default)]
    pub order: i64,
}

fn yes() -> bool {
    true
}

/// Why the chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `plugins` is not a list of entries.
    #[error("plugins: {0}")]
    Malformed(String),
    /// A filter refused its config.
    #[error("plugins: {name}: {reason}")]
    Config {
        /// The filter.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The chain for a config's `plugins` value, and the warnings to log.
pub fn build(plugins: Option<&Value>, services: &Services) -> Result<(FilterChain, Vec<String>), PipelineError> {
    let entries: Vec<PluginEntry> = match plugins {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| PipelineError::Malformed(e.to_string()))?,
    };
    let mut warnings = Vec::new();
    let config_of = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| &e.config)
            .unwrap_or(&Value::Null)
    };
    let make = |name: &str, make: Constructor, config: &Value| {
        make(services, config).map_err(|reason| PipelineError::Config {
            name: name.to_string(),
            reason,
        })
    };
    let mut builtins = Vec::new();
    for (name, kind, constructor) in TABLE {
        if *kind == Kind::Builtin {
            builtins.push(make(name, *constructor, config_of(name))?);
        }
    }
    let mut optional: Vec<(Placement, i64, usize, Arc<dyn Filter>)> = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        match TABLE.iter().find(|(name, _, _)| *name == entry.name) {
            Some((_, Kind::Builtin, _)) => {
                if !entry.enabled {
                    warnings.push(format!(
                        "plugins: {:?} is built in and always loaded; `enabled: false` is ignored",
                        entry.name
                    ));
                }
            }
            Some((name, Kind::Optional, constructor)) => {
                if entry.enabled {
                    let filter = make(name, *constructor, &entry.config)?;
                    optional.push((entry.placement, entry.order, position, filter));
                }
            }
            None => warnings.push(format!(
                "plugins: {:?} is not a filter this version of asbru has; the entry is ignored",
                entry.name
            )),
        }
    }
    optional.sort_by_key(|(placement, order, position, _)| (*placement, *order, *position));
    let placed = |p: Placement| optional.iter().filter(move |o| o.0 == p).map(|o| o.3.clone());
    let mut chain: Vec<Arc<dyn Filter>> = placed(Placement::PreBuiltin).collect();
    chain.extend(builtins[..BUILTIN_SPLIT].iter().cloned());
    chain.extend(placed(Placement::Builtin));
    chain.extend(builtins[BUILTIN_SPLIT..].iter().cloned());
    chain.extend(placed(Placement::PostBuiltin));
    Ok((FilterChain::new(chain), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn services() -> Services {
        Services {
            metrics: Arc::new(Metrics::new()),
            request_log: None,
        }
    }

    #[test]
    fn builtins_always_load_in_order() {
        let (chain, warnings) = build(None, &services()).expect("chain");
        assert_eq!(
            chain.names(),
            ["auth", "routing_rules", "routing", "governance", "telemetry", "logging"]
        );
        assert!(warnings.is_empty());
        let list = json!([{"name": "governance", "enabled": false}, {"name": "semantic_cache"}]);
        let (chain, warnings) = build(Some(&list), &services()).expect("chain");
        assert!(chain.names().contains(&"governance"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn optional_filters_are_placed() {
        let list = json!([
            {"name": "response_headers", "placement": "pre_builtin", "config": {"headers": {"x-a": "1"}}},
            {"name": "logging", "config": {}},
        ]);
        let (chain, _) = build(Some(&list), &services()).expect("chain");
        assert_eq!(chain.names()[0], "response_headers");
        let list = json!([{"name": "response_headers", "placement": "builtin"}]);
        let (chain, _) = build(Some(&list), &services()).expect("chain");
        assert_eq!(
            chain.names(),
            [
                "auth",
                "routing_rules",
                "routing",
                "governance",
                "response_headers",
                "telemetry",
                "logging"
            ]
        );
        let list = json!([{"name": "response_headers", "enabled": false}]);
        assert_eq!(build(Some(&list), &services()).expect("chain").0.names().len(), 6);
    }

    #[test]
    fn bad_entries_are_errors() {
        let bad = json!([{"name": "response_headers", "config": {"headers": {"bad header": "x"}}}]);
        assert!(matches!(
            build(Some(&bad), &services()),
            Err(PipelineError::Config { .. })
        ));
        assert!(matches!(
            build(Some(&json!({"name": "x"})), &services()),
            Err(PipelineError::Malformed(_))
        ));
    }
}
