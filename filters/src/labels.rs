//! The label rule for every metric label derived from a request: a `model` label is the model's
//! name only when the model is known, that is configured (in a provider key's `models` or
//! `aliases`, or a model config) or priced; any other model folds into [`OTHER`]. A client can
//! therefore never grow a metric's cardinality by inventing model names.

use std::collections::{HashMap, HashSet};

use crate::snapshot::ModelFilter;

use crate::live::Live;
use crate::pricing::strip_date_suffix;

/// The label every unknown model folds into.
pub const OTHER: &str = "other";

/// The known models of every configured provider, as of one config.
#[derive(Debug, Default)]
pub struct KnownModels {
    by_provider: HashMap<String, HashSet<String>>,
}

impl KnownModels {
    /// Collects the known models of `live`'s providers.
    pub fn of(live: &Live) -> KnownModels {
        let gov = &live.governance;
        let mut by_provider: HashMap<String, HashSet<String>> = HashMap::new();
        for (name, provider) in &live.snapshot.providers {
            let set = by_provider.entry(name.clone()).or_default();
            for key in &provider.keys {
                if let ModelFilter::Only(models) = &key.models {
                    set.extend(models.iter().cloned());
                }
                set.extend(key.aliases.keys().cloned());
            }
            set.extend(gov.pricing.models_of(name).cloned());
        }
        let scopes = gov
            .models
            .iter()
            .chain(gov.virtual_keys().flat_map(|vk| vk.model_scopes.iter()));
        for scope in scopes {
            for (name, set) in by_provider.iter_mut() {
                if scope.provider.as_deref().is_none_or(|p| p == name) {
                    set.insert(scope.model.clone());
                }
            }
        }
        KnownModels { by_provider }
    }

    /// The label for `model` at `provider`: the name itself when known, the dated name's base
    /// when only that is known (`gpt-4o-2024-08-06` → `gpt-4o`), else [`OTHER`].
    pub fn label<'a>(&'a self, provider: &str, model: &'a str) -> &'a str {
        let Some(set) = self.by_provider.get(provider) else {
            return OTHER;
        };
        if set.contains(model) {
            return model;
        }
        match strip_date_suffix(model) {
            Some(base) if set.contains(base) => base,
            _ => OTHER,
        }
    }

    /// Every known `(provider, model)` pair.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_provider
            .iter()
            .flat_map(|(p, models)| models.iter().map(move |m| (p.as_str(), m.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Registry;
    use std::sync::Arc;

    #[test]
    fn configured_and_priced_models_are_known_others_fold() {
        let yaml = "providers:\n  openai:\n    keys:\n      - {value: k, models: [house-model], aliases: {fast: gpt-4o-mini}}\ngovernance:\n  model_configs:\n    - {id: m1, model_name: tuned-1}\n";
        let loaded = asbru_config::load_str(yaml, "t.yaml").expect("valid");
        let live = Live::build_with(&loaded.config, &Arc::new(Registry::new()), 0, &|_| None).0;
        let known = KnownModels::of(&live);
        assert_eq!(known.label("openai", "house-model"), "house-model");
        assert_eq!(known.label("openai", "fast"), "fast");
        assert_eq!(known.label("openai", "tuned-1"), "tuned-1");
        assert_eq!(known.label("openai", "gpt-4o"), "gpt-4o");
        assert_eq!(known.label("openai", "gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(known.label("openai", "gpt-4o-2031-01-01"), "gpt-4o");
        assert_eq!(known.label("openai", "made-up-9000"), OTHER);
        assert_eq!(known.label("nowhere", "gpt-4o"), OTHER);
    }
}
