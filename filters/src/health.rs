//! Each provider's recent health: successes and failures over the last minute, in six buckets of
//! ten seconds. The forwarder records every try; filters read it through [`crate::Live::health`]
//! (a routing rule that avoids a failing provider, a log line). Lock-free: a bucket is reset by
//! the first writer of a new ten-second period, so the figures are approximate at the edges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const BUCKET_SECONDS: i64 = 10;
const BUCKETS: usize = 6;
/// Retries always allowed per provider and ten seconds, whatever the traffic.
pub const MIN_RETRIES: u64 = 3;

#[derive(Debug, Default)]
struct Bucket {
    period: AtomicI64,
    successes: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
}

/// One provider's window.
#[derive(Debug, Default)]
pub struct HealthWindow {
    buckets: [Bucket; BUCKETS],
}

/// What a window holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// Tries that got an answer with a success status.
    pub successes: u64,
    /// Tries that failed (connection error, timeout, 429, 5xx).
    pub failures: u64,
}

impl Health {
    /// Failures over all tries, 0 when there were none.
    pub fn error_rate(&self) -> f64 {
        let total = self.successes + self.failures;
        if total == 0 {
            0.0
        } else {
            self.failures as f64 / total as f64
        }
    }
}

impl HealthWindow {
    /// Records one try at Unix second `now`.
    pub fn record(&self, now: i64, ok: bool) {
        let bucket = self.current(now);
        let counter = if ok { &bucket.successes } else { &bucket.failures };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The bucket of Unix second `now`, reset if it belongs to an older period.
    fn current(&self, now: i64) -> &Bucket {
        let period = now.div_euclid(BUCKET_SECONDS);
        let bucket = &self.buckets[period.rem_euclid(BUCKETS as i64) as usize];
        let seen = bucket.period.load(Ordering::Relaxed);
        if seen != period
            && bucket
                .period
                .compare_exchange(seen, period, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            bucket.successes.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }

    /// Takes one retry from the provider's retry budget, as Envoy's retry budget does: retries in
    /// the current ten seconds may be at most a fifth of the tries (and always at least
    /// [`MIN_RETRIES`]). `false` when the budget is spent: the caller moves on instead.
    pub fn take_retry(&self, now: i64) -> bool {
        let bucket = self.current(now);
        let tries = bucket.successes.load(Ordering::Relaxed) + bucket.failures.load(Ordering::Relaxed);
        let allowed = (tries / 5).max(MIN_RETRIES);
        let used = bucket.retries.fetch_add(1, Ordering::Relaxed);
        if used >= allowed {
            bucket.retries.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The last minute as of Unix second `now`.
    pub fn read(&self, now: i64) -> Health {
        let current = now.div_euclid(BUCKET_SECONDS);
        let mut health = Health::default();
        for bucket in &self.buckets {
            let period = bucket.period.load(Ordering::Relaxed);
            if period > current - BUCKETS as i64 && period <= current {
                health.successes += bucket.successes.load(Ordering::Relaxed);
                health.failures += bucket.failures.load(Ordering::Relaxed);
            }
        }
        health
    }
}

/// One provider key's cooldown: a key that answered 401 or 403, or 429 three times within ten
/// seconds, is skipped by key choice until `until` (a circuit breaker per key, across requests).
#[derive(Debug, Default)]
pub struct KeyCooldown {
    until: AtomicI64,
    limited_since: AtomicI64,
    limited: AtomicU64,
}

/// 429s within ten seconds that cool a key down.
pub const COOLDOWN_AFTER_429S: u64 = 3;

impl KeyCooldown {
    /// Whether the key is cooling down at Unix second `now`.
    pub fn cooling(&self, now: i64) -> bool {
        now < self.until.load(Ordering::Relaxed)
    }

    /// Records an answer that speaks against the key; returns `true` when it starts a cooldown
    /// of `seconds`.
    pub fn refused(&self, status: u16, now: i64, seconds: i64) -> bool {
        let cool = match status {
            401 | 403 => true,
            429 => {
                let since = self.limited_since.load(Ordering::Relaxed);
                if now - since >= BUCKET_SECONDS {
                    self.limited_since.store(now, Ordering::Relaxed);
                    self.limited.store(1, Ordering::Relaxed);
                    false
                } else {
                    self.limited.fetch_add(1, Ordering::Relaxed) + 1 >= COOLDOWN_AFTER_429S
                }
            }
            _ => false,
        };
        if cool && !self.cooling(now) {
            self.until.store(now + seconds, Ordering::Relaxed);
            self.limited.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Every provider key's cooldown, by provider and key id, kept across config changes.
#[derive(Debug, Default)]
pub struct CooldownBoard {
    keys: Mutex<HashMap<(String, String), Arc<KeyCooldown>>>,
}

impl CooldownBoard {
    /// For each provider, its keys' cooldowns in key order; entries of keys gone are dropped.
    pub fn resolve<'a>(
        &self,
        providers: impl Iterator<Item = (&'a String, Vec<&'a str>)>,
    ) -> HashMap<String, Vec<Arc<KeyCooldown>>> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut resolved = HashMap::new();
        let mut kept = std::collections::HashSet::new();
        for (provider, ids) in providers {
            let list: Vec<Arc<KeyCooldown>> = ids
                .into_iter()
                .map(|id| {
                    let key = (provider.clone(), id.to_string());
                    kept.insert(key.clone());
                    keys.entry(key).or_default().clone()
                })
                .collect();
            resolved.insert(provider.clone(), list);
        }
        keys.retain(|k, _| kept.contains(k));
        resolved
    }
}

/// Every provider's window by name, kept across config changes (a rebuilt config keeps the
/// history of the providers that survive). Locked only when a config is built.
#[derive(Debug, Default)]
pub struct HealthBoard {
    windows: Mutex<HashMap<String, Arc<HealthWindow>>>,
}

impl HealthBoard {
    /// The windows of `names`, created as needed; windows of other names are dropped.
    pub fn resolve<'a>(&self, names: impl Iterator<Item = &'a String>) -> HashMap<String, Arc<HealthWindow>> {
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let resolved: HashMap<String, Arc<HealthWindow>> = names
            .map(|name| (name.clone(), windows.entry(name.clone()).or_default().clone()))
            .collect();
        windows.retain(|name, _| resolved.contains_key(name));
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_only() {
        let window = HealthWindow::default();
        window.record(1000, true);
        window.record(1005, false);
        window.record(1031, true);
        assert_eq!(
            window.read(1031),
            Health {
                successes: 2,
                failures: 1
            }
        );
        assert!((window.read(1031).error_rate() - 1.0 / 3.0).abs() < 1e-9);
        // A minute later the first bucket has aged out; reusing its slot resets it.
        assert_eq!(
            window.read(1061),
            Health {
                successes: 1,
                failures: 0
            }
        );
        window.record(1062, false);
        assert_eq!(
            window.read(1062),
            Health {
                successes: 1,
                failures: 1
            }
        );
        assert_eq!(window.read(2000), Health::default());
    }

    #[test]
    fn the_retry_budget_is_a_fifth_of_the_tries_and_at_least_three() {
        let window = HealthWindow::default();
        let granted = (0..10).filter(|_| window.take_retry(100)).count();
        assert_eq!(granted as u64, MIN_RETRIES, "quiet provider: the minimum");
        for _ in 0..50 {
            window.record(101, true);
        }
        let more = (0..20).filter(|_| window.take_retry(102)).count();
        assert_eq!(more, 10 - 3, "a fifth of 50 tries, minus those taken");
        assert!(window.take_retry(111), "a new ten seconds, a new budget");
    }

    #[test]
    fn keys_cool_down_on_auth_failures_and_repeated_429s() {
        let key = KeyCooldown::default();
        assert!(!key.refused(500, 0, 30));
        assert!(!key.refused(429, 100, 30) && !key.refused(429, 101, 30));
        assert!(key.refused(429, 102, 30), "third 429 within ten seconds");
        assert!(key.cooling(131) && !key.cooling(132));
        let other = KeyCooldown::default();
        assert!(other.refused(401, 0, 30));
        assert!(!other.refused(401, 5, 30), "already cooling");
        let board = CooldownBoard::default();
        let name = "openai".to_string();
        let first = board.resolve([(&name, vec!["a", "b"])].into_iter());
        first["openai"][1].refused(403, 0, 60);
        let again = board.resolve([(&name, vec!["b"])].into_iter());
        assert!(again["openai"][0].cooling(10), "the cooldown survives a rebuild");
    }

    #[test]
    fn board_keeps_surviving_windows() {
        let board = HealthBoard::default();
        let names = ["a".to_string(), "b".to_string()];
        let first = board.resolve(names.iter());
        first["a"].record(10, true);
        let second = board.resolve(names[..1].iter());
        assert_eq!(second["a"].read(10).successes, 1);
        assert!(!second.contains_key("b"));
    }
}
