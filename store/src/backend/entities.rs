//! Governance entities in the store: each kind is a typed document keyed by its id; virtual keys
//! are also indexed by the SHA-256 of their value, so a caller's key is found without reading
//! (or decrypting) every row.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ConfigStore, StoreError, StoredDoc, Tx};
use crate::secrets::{self, Cipher, EncryptionStatus};
use asbru_config::env::{self, Resolved};
use asbru_config::governance::{
    Budget, Customer, GovernanceConfig, ModelConfig, ModelPrice, PricingOverride, ProviderGovernance, RateLimit,
    RoutingRule, Team, VirtualKey,
};

/// The kinds of stored entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// [`Budget`].
    Budget,
    /// [`RateLimit`].
    RateLimit,
    /// [`Customer`].
    Customer,
    /// [`Team`].
    Team,
    /// [`VirtualKey`].
    VirtualKey,
    /// [`ModelConfig`].
    ModelConfig,
    /// [`ProviderGovernance`].
    ProviderGovernance,
    /// [`RoutingRule`].
    RoutingRule,
    /// [`PricingOverride`].
    PricingOverride,
    /// [`ModelPrice`].
    ModelPrice,
    /// [`Plugin`].
    Plugin,
}

impl EntityKind {
    /// The `kind` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Budget => "budget",
            EntityKind::RateLimit => "rate_limit",
            EntityKind::Customer => "customer",
            EntityKind::Team => "team",
            EntityKind::VirtualKey => "virtual_key",
            EntityKind::ModelConfig => "model_config",
            EntityKind::ProviderGovernance => "provider_governance",
            EntityKind::RoutingRule => "routing_rule",
            EntityKind::PricingOverride => "pricing_override",
            EntityKind::ModelPrice => "model_price",
            EntityKind::Plugin => "plugin",
        }
    }
}

/// A plugin's stored settings.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct Plugin {
    /// Plugin name (its id).
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
    /// Its configuration.
    pub config: Value,
    /// Where a custom plugin is loaded from.
    pub path: Option<String>,
    /// `pre_builtin`, `builtin` or `post_builtin`.
    pub placement: Option<String>,
    /// Order within the placement.
    pub order: Option<i64>,
}

/// A document the store keeps by kind and id.
pub trait Entity: Serialize + DeserializeOwned {
    /// Its kind.
    const KIND: EntityKind;
    /// Its id; entities without one cannot be stored.
    fn entity_id(&self) -> Option<String>;
    /// The secret it is looked up by (virtual keys).
    fn lookup_value(&self) -> Option<&str> {
        None
    }
}

macro_rules! entity {
    ($t:ty, $kind:ident, |$x:ident| $id:expr) => {
        impl Entity for $t {
            const KIND: EntityKind = EntityKind::$kind;
            fn entity_id(&self) -> Option<String> {
                let $x = self;
                $id
            }
        }
    };
}

entity!(Budget, Budget, |b| b.id.clone());
entity!(RateLimit, RateLimit, |r| r.id.clone());
entity!(Customer, Customer, |c| Some(c.id.clone()));
entity!(Team, Team, |t| Some(t.id.clone()));
entity!(ModelConfig, ModelConfig, |m| Some(m.id.clone()));
entity!(ProviderGovernance, ProviderGovernance, |p| Some(p.name.clone()));
entity!(RoutingRule, RoutingRule, |r| Some(r.id.clone()));
entity!(PricingOverride, PricingOverride, |p| Some(format!(
    "{}/{}",
    p.provider, p.model
)));
entity!(Plugin, Plugin, |p| Some(p.name.clone()));
entity!(ModelPrice, ModelPrice, |p| Some(format!("{}/{}", p.provider, p.model)));

impl Entity for VirtualKey {
    const KIND: EntityKind = EntityKind::VirtualKey;
    fn entity_id(&self) -> Option<String> {
        Some(self.id.clone())
    }
    fn lookup_value(&self) -> Option<&str> {
        Some(&self.value)
    }
}

/// Where one governance kind lives in [`GovernanceConfig`].
pub struct Field<T> {
    /// The config's list of this kind.
    pub get: fn(&GovernanceConfig) -> &Vec<T>,
    /// Sets the config's list of this kind.
    pub set: fn(&mut GovernanceConfig, Vec<T>),
    /// Whether the file seeds it (model price rows are a synced datasheet, never seeded).
    pub seeded: bool,
}

/// Something done once per governance entity kind.
pub trait KindVisitor {
    /// Called for kind `T`.
    fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError>;
}

/// Every governance entity kind, in one list: loading a config from the store, seeding it from
/// the file and deciding whether the store holds data all walk this list, so a new kind cannot
/// be forgotten by one of them.
pub fn each_governance_kind<V: KindVisitor>(v: &mut V) -> Result<(), StoreError> {
    macro_rules! kind {
        ($t:ty, $field:ident, $seeded:expr) => {
            v.kind::<$t>(Field {
                get: |g| &g.$field,
                set: |g, items| g.$field = items,
                seeded: $seeded,
            })?
        };
    }
    kind!(Budget, budgets, true);
    kind!(RateLimit, rate_limits, true);
    kind!(Customer, customers, true);
    kind!(Team, teams, true);
    kind!(VirtualKey, virtual_keys, true);
    kind!(ModelConfig, model_configs, true);
    kind!(ProviderGovernance, providers, true);
    kind!(RoutingRule, routing_rules, true);
    kind!(PricingOverride, pricing_overrides, true);
    kind!(ModelPrice, model_prices, false);
    Ok(())
}

/// Whether the store holds any provider, or any governance entity of a kind the file seeds
/// (synced price rows alone do not make a store the source of truth).
pub fn store_has_data(store: &dyn ConfigStore) -> Result<bool, StoreError> {
    struct Any<'a>(&'a dyn ConfigStore, bool);
    impl KindVisitor for Any<'_> {
        fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
            if !self.1 && field.seeded {
                self.1 = !self.0.list::<T>()?.is_empty();
            }
            Ok(())
        }
    }
    let mut any = Any(store, !store.providers()?.is_empty());
    each_governance_kind(&mut any)?;
    Ok(any.1)
}

/// The store's governance entities of every kind, into `config`.
pub fn load_governance(store: &dyn ConfigStore, config: &mut GovernanceConfig) -> Result<(), StoreError> {
    struct Load<'a>(&'a dyn ConfigStore, &'a mut GovernanceConfig);
    impl KindVisitor for Load<'_> {
        fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
            (field.set)(self.1, self.0.list::<T>()?);
            Ok(())
        }
    }
    each_governance_kind(&mut Load(store, config))
}

/// Replaces, inside `tx`, every seeded kind with the file's `governance`.
pub fn replace_governance(tx: &mut dyn Tx, governance: &GovernanceConfig) -> Result<(), StoreError> {
    struct Replace<'a>(&'a mut dyn Tx, &'a GovernanceConfig);
    impl KindVisitor for Replace<'_> {
        fn kind<T: Entity>(&mut self, field: Field<T>) -> Result<(), StoreError> {
            if !field.seeded {
                return Ok(());
            }
            for old in self.0.list::<T>()? {
                if let Some(id) = old.entity_id() {
                    self.0.delete::<T>(&id)?;
                }
            }
            for item in (field.get)(self.1) {
                self.0.put(item)?;
            }
            Ok(())
        }
    }
    each_governance_kind(&mut Replace(tx, governance))
}

/// SHA-256 of a virtual key's value, hex: how virtual keys are found.
pub fn value_hash(value: &str) -> String {
    format!("{:x}", Sha256::digest(value.as_bytes()))
}

/// The field holding an entity's secret, for kinds that have one.
const SECRET_FIELD: &str = "value";

fn decode<T: Entity>(stored: StoredDoc, cipher: Option<&Cipher>) -> Result<T, StoreError> {
    let mut doc = stored.doc;
    if T::KIND == EntityKind::VirtualKey
        && let Some(Value::String(sealed)) = doc.get_mut(SECRET_FIELD)
    {
        *sealed = secrets::open(cipher, sealed, &stored.status)?;
    }
    serde_json::from_value(doc).map_err(|e| StoreError::Corrupt(format!("{} row: {e}", T::KIND.as_str())))
}

impl dyn Tx + '_ {
    /// Creates or replaces an entity. A virtual key's value is sealed when a cipher is set.
    pub fn put<T: Entity>(&mut self, entity: &T) -> Result<(), StoreError> {
        let id = entity
            .entity_id()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| StoreError::Conflict(format!("a {} needs an id", T::KIND.as_str())))?;
        let mut doc = serde_json::to_value(entity).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // An `env.NAME` value is hashed as resolved now; if unset, the key cannot be looked up.
        let hash = entity.lookup_value().and_then(|v| match env::resolve(v) {
            Resolved::Value(v) => Some(value_hash(&v)),
            Resolved::MissingEnv(_) => None,
        });
        let mut status = EncryptionStatus::Plaintext;
        if let Some(secret) = entity.lookup_value() {
            let (sealed, sealed_status) = secrets::seal(self.cipher(), secret)?;
            doc[SECRET_FIELD] = Value::String(sealed);
            status = sealed_status;
        }
        self.put_entity(T::KIND, &id, &doc, hash.as_deref(), status)
    }

    /// All entities of a kind, by id.
    pub fn list<T: Entity>(&mut self) -> Result<Vec<T>, StoreError> {
        let docs = self.entities(T::KIND)?;
        docs.into_iter().map(|doc| decode(doc, self.cipher())).collect()
    }

    /// One entity.
    pub fn get<T: Entity>(&mut self, id: &str) -> Result<Option<T>, StoreError> {
        let doc = self.entity(T::KIND, id)?;
        doc.map(|doc| decode(doc, self.cipher())).transpose()
    }

    /// Deletes one entity; `false` if it did not exist.
    pub fn delete<T: Entity>(&mut self, id: &str) -> Result<bool, StoreError> {
        self.delete_entity(T::KIND, id)
    }

    /// The virtual key whose value is `value`.
    pub fn virtual_key_by_value(&mut self, value: &str) -> Result<Option<VirtualKey>, StoreError> {
        let doc = self.entity_by_hash(EntityKind::VirtualKey, &value_hash(value))?;
        doc.map(|doc| decode(doc, self.cipher())).transpose()
    }
}

impl dyn ConfigStore + '_ {
    /// Creates or replaces an entity.
    pub fn put<T: Entity>(&self, entity: &T) -> Result<(), StoreError> {
        self.transaction(&mut |tx| tx.put(entity))
    }

    /// All entities of a kind.
    pub fn list<T: Entity>(&self) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.transaction(&mut |tx| {
            out = tx.list()?;
            Ok(())
        })?;
        Ok(out)
    }

    /// One entity.
    pub fn get<T: Entity>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.transaction(&mut |tx| {
            out = tx.get(id)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// Deletes one entity.
    pub fn delete<T: Entity>(&self, id: &str) -> Result<bool, StoreError> {
        let mut deleted = false;
        self.transaction(&mut |tx| {
            deleted = tx.delete::<T>(id)?;
            Ok(())
        })?;
        Ok(deleted)
    }

    /// The virtual key whose value is `value`.
    pub fn virtual_key_by_value(&self, value: &str) -> Result<Option<VirtualKey>, StoreError> {
        let mut out = None;
        self.transaction(&mut |tx| {
            out = tx.virtual_key_by_value(value)?;
            Ok(())
        })?;
        Ok(out)
    }
}
