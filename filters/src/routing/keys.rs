//! Key selection (as Bifrost's weighted key selection): weighted random choice among a provider's keys that serve the
//! model. Two passes over the key list, no allocation.

use crate::snapshot::{ProviderKey, ProviderRuntime};
use rand::Rng;

/// Why no key could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The provider has no usable key at all (none configured, or all env vars missing).
    #[error("no usable keys are configured for provider {provider}")]
    NoneConfigured {
        /// Provider name.
        provider: String,
    },
    /// Keys exist, but none serves this model.
    #[error("no keys found for provider: {provider} and model: {model}")]
    NoneForModel {
        /// Provider name.
        provider: String,
        /// Model name.
        model: String,
    },
}

/// The chosen key: its index in the provider's key list and the key. `None` for keyless providers.
pub type Choice<'a> = Option<(usize, &'a ProviderKey)>;

/// Picks a key for `model`, avoiding the indices in `avoid` (keys that already failed this
/// request) unless they are the only ones left.
pub fn select<'a, R: Rng + ?Sized>(
    provider: &'a ProviderRuntime,
    model: &str,
    avoid: &[usize],
    rng: &mut R,
) -> Result<Choice<'a>, KeyError> {
    select_within(provider, Some(model), avoid, None, rng)
}

/// Like [`select`], restricted to the keys whose id or name is in `allowed` (a virtual key's
/// `key_ids`), when given. The restriction is never relaxed. Without a model (a call on a stored
/// response whose model is unknown), every key is a candidate.
pub fn select_within<'a, R: Rng + ?Sized>(
    provider: &'a ProviderRuntime,
    model: Option<&str>,
    avoid: &[usize],
    allowed: Option<&[String]>,
    rng: &mut R,
) -> Result<Choice<'a>, KeyError> {
    if provider.keyless {
        return Ok(None);
    }
    if provider.keys.is_empty() {
        return Err(KeyError::NoneConfigured {
            provider: provider.name.clone(),
        });
    }
    let keys = &provider.keys;
    let permitted = |i: usize| allowed.is_none_or(|ids| ids.iter().any(|id| *id == keys[i].id || *id == keys[i].name));
    let pick = pick_weighted(keys, model, |i| permitted(i) && !avoid.contains(&i), rng)
        .or_else(|| pick_weighted(keys, model, permitted, rng));
    match pick {
        Some(i) => Ok(Some((i, &keys[i]))),
        None => Err(KeyError::NoneForModel {
            provider: provider.name.clone(),
            model: model.unwrap_or("*").to_string(),
        }),
    }
}

fn pick_weighted<R: Rng + ?Sized>(
    keys: &[ProviderKey],
    model: Option<&str>,
    eligible: impl Fn(usize) -> bool,
    rng: &mut R,
) -> Option<usize> {
    let candidate = |(i, k): &(usize, &ProviderKey)| eligible(*i) && model.is_none_or(|m| k.serves(m));
    let (count, total) = keys
        .iter()
        .enumerate()
        .filter(candidate)
        .fold((0usize, 0.0f64), |(n, w), (_, k)| (n + 1, w + k.weight.max(0.0)));
    if count == 0 {
        return None;
    }
    if total <= 0.0 {
        let nth = rng.random_range(0..count);
        return keys.iter().enumerate().filter(candidate).nth(nth).map(|(i, _)| i);
    }
    let mut point = rng.random::<f64>() * total;
    let mut last = None;
    for (i, key) in keys.iter().enumerate().filter(candidate) {
        let weight = key.weight.max(0.0);
        if weight > 0.0 {
            last = Some(i);
            if point < weight {
                return Some(i);
            }
            point -= weight;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use asbru_config::load_str;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn provider(src: &str) -> std::sync::Arc<ProviderRuntime> {
        let loaded = load_str(src, "t.yaml").expect("valid");
        let (snap, _) = Snapshot::build_with(&loaded.config, &|_| None);
        snap.provider("openai").expect("openai").clone()
    }

    #[test]
    fn weights_are_respected() {
        let p = provider(
            "providers:\n  openai:\n    keys:\n      - {name: a, value: ka, weight: 3}\n      - {name: b, value: kb, weight: 1}\n      - {name: z, value: kz, weight: 0}\n",
        );
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..20_000 {
            let (i, _) = select(&p, "m", &[], &mut rng).expect("ok").expect("keyed");
            counts[i] += 1;
        }
        assert_eq!(counts[2], 0, "zero weight is never picked while others have weight");
        let share = f64::from(counts[0]) / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "share of a = {share}");
    }

    #[test]
    fn model_filter_and_avoidance() {
        let p = provider(
            "providers:\n  openai:\n    keys:\n      - {name: a, value: ka, models: [x]}\n      - {name: b, value: kb, models: [y]}\n      - {name: c, value: kc, models: [y]}\n",
        );
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(select(&p, "x", &[], &mut rng).expect("ok").map(|c| c.0), Some(0));
        for _ in 0..50 {
            assert_eq!(select(&p, "y", &[1], &mut rng).expect("ok").map(|c| c.0), Some(2));
        }
        // Only the avoided key serves x: it is used again rather than failing.
        assert_eq!(select(&p, "x", &[0], &mut rng).expect("ok").map(|c| c.0), Some(0));
        assert!(matches!(
            select(&p, "z", &[], &mut rng),
            Err(KeyError::NoneForModel { .. })
        ));
    }

    #[test]
    fn all_zero_weights_are_uniform_and_no_keys_is_an_error() {
        let p = provider(
            "providers:\n  openai:\n    keys:\n      - {value: ka, weight: 0}\n      - {value: kb, weight: 0}\n",
        );
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = [false; 2];
        for _ in 0..100 {
            seen[select(&p, "m", &[], &mut rng).expect("ok").expect("keyed").0] = true;
        }
        assert_eq!(seen, [true, true]);
        let p = provider("providers:\n  openai:\n    keys: [{value: env.NOPE_NOT_SET}]\n");
        assert!(matches!(
            select(&p, "m", &[], &mut rng),
            Err(KeyError::NoneConfigured { .. })
        ));
    }
}
