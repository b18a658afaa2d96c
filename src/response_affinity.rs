//! Which provider account holds a stored Responses API object. OpenAI (and Azure) keep a
//! response under the key that created it, so reading it back (`GET /v1/responses/{id}`),
//! deleting or cancelling it, and continuing from it (`previous_response_id`) must reach the same
//! provider and key. The gateway remembers that for the responses it relayed, in memory and
//! bounded: two generations of at most [`GENERATION`] ids each, the older dropped when the newer
//! fills. Lookups and inserts take no lock.
//!
//! An id the gateway does not know (created before a restart, or long evicted) goes to the
//! provider its request names, with the key selection of any request.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// Ids per generation: at most twice this many are remembered.
pub const GENERATION: usize = 20_000;

/// Where a stored response lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAt {
    /// Provider name.
    pub provider: Arc<str>,
    /// The provider key's id; `None` for a keyless provider or a request's own key.
    pub key_id: Option<Arc<str>>,
    /// Who created it: [`ResponseAffinity::owner_of`] the credential the client presented.
    /// Another caller is told the response does not exist.
    pub owner: u64,
    /// The model that created it.
    pub model: Arc<str>,
}

type Generation = papaya::HashMap<Box<str>, StoredAt>;

struct Generations {
    current: Arc<Generation>,
    previous: Arc<Generation>,
}

/// The files a batch object (or a list of them) names: its input, output and error files.
pub fn batch_files(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let objects: Vec<&serde_json::Value> = match value.get("data").and_then(serde_json::Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![&value],
    };
    objects
        .into_iter()
        .flat_map(|object| {
            ["output_file_id", "error_file_id"]
                .into_iter()
                .filter_map(|field| object.get(field)?.as_str().map(str::to_string))
        })
        .collect()
}

/// The bounded id → account map.
pub struct ResponseAffinity {
    generations: ArcSwap<Generations>,
    capacity: usize,
    /// Keyed per process: owners are compared, never shown or kept.
    hasher: std::hash::RandomState,
}

impl Default for ResponseAffinity {
    fn default() -> Self {
        ResponseAffinity::with_capacity(GENERATION)
    }
}

impl ResponseAffinity {
    /// A map keeping up to `capacity` ids per generation.
    pub fn with_capacity(capacity: usize) -> ResponseAffinity {
        ResponseAffinity {
            generations: ArcSwap::from_pointee(Generations {
                current: Arc::default(),
                previous: Arc::default(),
            }),
            capacity: capacity.max(1),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The owner id of a caller presenting `credential` (a virtual key, or the key a client
    /// sent); every caller without one shares owner 0.
    pub fn owner_of(&self, credential: Option<&str>) -> u64 {
        use std::hash::BuildHasher;
        credential.map_or(0, |c| self.hasher.hash_one(c).max(1))
    }

    /// Remembers where response `id` lives.
    pub fn remember(&self, id: &str, at: StoredAt) {
        let generations = self.generations.load();
        let current = generations.current.pin();
        current.insert(id.into(), at);
        if current.len() >= self.capacity {
            let full = Arc::clone(&generations.current);
            // Only the first to see the full generation rotates it.
            self.generations.rcu(|now| {
                if Arc::ptr_eq(&now.current, &full) {
                    Arc::new(Generations {
                        current: Arc::default(),
                        previous: Arc::clone(&full),
                    })
                } else {
                    Arc::clone(now)
                }
            });
        }
    }

    /// Where response `id` lives, if the gateway relayed it.
    pub fn find(&self, id: &str) -> Option<StoredAt> {
        let generations = self.generations.load();
        if let Some(found) = generations.current.pin().get(id) {
            return Some(found.clone());
        }
        generations.previous.pin().get(id).cloned()
    }

    /// A provider's list of objects (`{"data": [{"id"}, ...]}`) narrowed to those `owner`
    /// created through the gateway; `None` when the body is not such a list.
    pub fn owned_list(&self, body: &[u8], owner: u64) -> Option<Vec<u8>> {
        let mut list: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        let data = list.get_mut("data")?.as_array_mut()?;
        data.retain(|item| {
            item.get("id")
                .and_then(serde_json::Value::as_str)
                .and_then(|id| self.find(id))
                .is_some_and(|at| at.owner == owner)
        });
        serde_json::to_vec(&list).ok()
    }

    /// Forgets `id` (the object was deleted).
    pub fn forget(&self, id: &str) {
        let generations = self.generations.load();
        generations.current.pin().remove(id);
        generations.previous.pin().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(provider: &str) -> StoredAt {
        StoredAt {
            provider: provider.into(),
            key_id: Some("k1".into()),
            owner: 7,
            model: "gpt-4o".into(),
        }
    }

    #[test]
    fn remembers_within_two_generations_and_forgets() {
        let map = ResponseAffinity::with_capacity(2);
        map.remember("resp_1", at("openai"));
        assert_eq!(map.find("resp_1"), Some(at("openai")));
        map.remember("resp_2", at("azure"));
        // The first generation filled and rotated: both ids are still known.
        map.remember("resp_3", at("openai"));
        assert!(map.find("resp_1").is_some() && map.find("resp_3").is_some());
        map.remember("resp_4", at("openai"));
        // A second rotation drops the oldest generation.
        assert_eq!(map.find("resp_1"), None);
        assert_eq!(map.find("resp_4"), Some(at("openai")));
        map.forget("resp_4");
        assert_eq!(map.find("resp_4"), None);
        assert_eq!(map.find("nope"), None);
        assert_eq!(map.owner_of(None), 0);
        assert_eq!(map.owner_of(Some("sk-bf-a")), map.owner_of(Some("sk-bf-a")));
        assert_ne!(map.owner_of(Some("sk-bf-a")), map.owner_of(Some("sk-bf-b")));
    }
}
