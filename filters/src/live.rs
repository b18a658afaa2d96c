//! [`Live`]: what a request reads, swapped whole on a config change. The snapshot (providers,
//! keys, limits), the governance view built from the same config, each provider's health window
//! and the filters' compiled per-config state travel together, so one load gives a request a
//! consistent picture.

use std::collections::HashMap;
use std::sync::Arc;

use asbru_config::Config;

use crate::snapshot::Snapshot;

use crate::health::{CooldownBoard, Health, HealthBoard, HealthWindow, KeyCooldown};
use crate::policy::{Governance, Registry};
use crate::slots::Slots;

/// The config a request sees.
#[derive(Debug)]
pub struct Live {
    /// Providers and process settings.
    pub snapshot: Snapshot,
    /// Virtual keys, caps and prices.
    pub governance: Governance,
    /// Each provider's health window, by name.
    pub health: HashMap<String, Arc<HealthWindow>>,
    /// Each provider's keys' cooldowns, in key order.
    pub cooldowns: HashMap<String, Vec<Arc<KeyCooldown>>>,
    /// Filters' compiled per-config state (see [`crate::Filter::on_config`]).
    pub slots: Slots,
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
        let live = Live {
            snapshot,
            governance,
            health: HashMap::new(),
            cooldowns: HashMap::new(),
            slots: Slots::default(),
        };
        (live, warnings)
    }

    /// Builds from the process environment.
    pub fn build(config: &Config, registry: &Arc<Registry>, now: i64) -> (Live, Vec<String>) {
        Live::build_with(config, registry, now, &|name| std::env::var(name).ok())
    }

    /// Serves each provider with the concurrency gate `board` kept for it, so a rebuild does
    /// not reset the requests counted in flight.
    pub fn with_gates(mut self, board: &crate::concurrency::GateBoard) -> Live {
        for (name, provider) in self.snapshot.providers.iter_mut() {
            let Some(fresh) = provider.gate.clone() else {
                continue;
            };
            let kept = board.keep(name, &fresh);
            if !Arc::ptr_eq(&kept, &fresh)
                && let Some(provider) = Arc::get_mut(provider)
            {
                provider.gate = Some(kept);
            }
        }
        self
    }

    /// Attaches the health windows of this config's providers from `board`.
    pub fn with_health(mut self, board: &HealthBoard) -> Live {
        self.health = board.resolve(self.snapshot.provider_names.iter());
        self
    }

    /// A view with no providers and no governance.
    pub fn empty() -> Live {
        Live {
            snapshot: Snapshot::empty(),
            governance: Governance::default(),
            health: HashMap::new(),
            cooldowns: HashMap::new(),
            slots: Slots::default(),
        }
    }

    /// Attaches the cooldowns of this config's provider keys from `board`.
    pub fn with_cooldowns(mut self, board: &CooldownBoard) -> Live {
        let providers = self
            .snapshot
            .providers
            .iter()
            .map(|(name, p)| (name, p.keys.iter().map(|k| k.id.as_str()).collect()));
        self.cooldowns = board.resolve(providers);
        self
    }

    /// Whether key `index` of `provider` is cooling down at Unix second `now`.
    pub fn key_cooling(&self, provider: &str, index: usize, now: i64) -> bool {
        self.cooldowns
            .get(provider)
            .and_then(|keys| keys.get(index))
            .is_some_and(|k| k.cooling(now))
    }

    /// A provider's last minute as of Unix second `now`; empty for an unknown provider.
    pub fn provider_health(&self, provider: &str, now: i64) -> Health {
        self.health.get(provider).map(|w| w.read(now)).unwrap_or_default()
    }

    /// A filter's compiled per-config state.
    pub fn slot<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.slots.get()
    }
}
