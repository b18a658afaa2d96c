//! [`Live`]: what a request reads, swapped whole on a config change. The snapshot (providers,
//! keys, limits) and the governance view built from the same config travel together, so one
//! load gives a request a consistent picture.

use std::sync::Arc;

use asbru_store::{Config, Snapshot};

use crate::governance::{Governance, Registry};

/// The config a request sees.
#[derive(Debug)]
pub struct Live {
    /// Providers and process settings.
    pub snapshot: Snapshot,
    /// Virtual keys, caps and prices.
    pub governance: Governance,
}

impl Live {
    /// Builds both views of `config`, reading `env.NAME` through `lookup` and keeping the
    /// meters of `registry`. Returns the view and the warnings to log.
    pub fn build_with(
        config: &Config,
        registry: &Arc<Registry>,
        now: i64,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> (Live, Vec<String>) {
        let (snapshot, mut warnings) = Snapshot::build_with(config, lookup);
        let (governance, more) = Governance::build(config, registry, now, lookup);
        warnings.extend(more);
        (Live { snapshot, governance }, warnings)
    }

    /// Builds from the process environment.
    pub fn build(config: &Config, registry: &Arc<Registry>, now: i64) -> (Live, Vec<String>) {
        Live::build_with(config, registry, now, &|name| std::env::var(name).ok())
    }

    /// A view with no providers and no governance.
    pub fn empty() -> Live {
        Live {
            snapshot: Snapshot::empty(),
            governance: Governance::default(),
        }
    }
}
