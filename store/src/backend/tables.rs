//! The relational layout of governance entities (migration 6): which table holds each kind,
//! which columns are taken from its document, and which child rows it owns. Both backends
//! render their SQL from these descriptions, so the layout is written once.

use super::entities::EntityKind;

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    Text,
    /// A floating-point number.
    Real,
    /// An integer.
    Integer,
    /// A boolean.
    Bool,
}

/// A column filled from a JSON member of the document (or of an array element).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// The JSON member it comes from.
    pub member: &'static str,
    /// Its type.
    pub kind: ColumnType,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        member: name,
        kind: ColumnType::Text,
    }
}

const fn real(name: &'static str) -> Column {
    Column {
        name,
        member: name,
        kind: ColumnType::Real,
    }
}

/// Rows a document owns in another table: one per element of one of its arrays.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// The child table.
    pub table: &'static str,
    /// Its column naming the parent.
    pub parent: &'static str,
    /// The document's array.
    pub array: &'static str,
    /// Columns from each element; a `position` column holds the element's index.
    pub columns: &'static [Column],
    /// One row per string of this array inside each element (key pins), instead of one per
    /// element; the element's `provider` goes along.
    pub nested: Option<&'static str>,
}

/// The table of one kind and what is taken from its documents.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    /// Columns taken from the document.
    pub columns: &'static [Column],
    /// Child rows.
    pub children: &'static [Child],
    /// Whether rows carry `lookup_hash` (virtual keys).
    pub lookup: bool,
}

const BUDGET_ID: Column = text("budget_id");
const RATE_LIMIT_ID: Column = text("rate_limit_id");
const NONE: &[Column] = &[];
const CAPS: &[Column] = &[BUDGET_ID, RATE_LIMIT_ID];
const BUDGETS: &[Column] = &[real("max_limit"), text("reset_duration")];
const CUSTOMERS: &[Column] = &[text("name"), BUDGET_ID, RATE_LIMIT_ID];
const TEAMS: &[Column] = &[text("name"), text("customer_id"), BUDGET_ID, RATE_LIMIT_ID];
const VIRTUAL_KEYS: &[Column] = &[
    text("name"),
    text("team_id"),
    text("customer_id"),
    BUDGET_ID,
    RATE_LIMIT_ID,
];
const VK_BUDGETS: &[Column] = &[
    real("max_limit"),
    text("reset_duration"),
    Column {
        name: "calendar_aligned",
        member: "calendar_aligned",
        kind: ColumnType::Bool,
    },
];
const VK_PROVIDER_CONFIGS: &[Column] = &[text("provider"), real("weight"), BUDGET_ID, RATE_LIMIT_ID];
const MODEL_CONFIGS: &[Column] = &[text("model_name"), text("provider"), BUDGET_ID, RATE_LIMIT_ID];
const ROUTING_RULES: &[Column] = &[
    text("name"),
    text("scope"),
    text("scope_id"),
    Column {
        name: "priority",
        member: "priority",
        kind: ColumnType::Integer,
    },
];
const RULE_TARGETS: &[Column] = &[text("provider"), text("model"), text("key_id"), real("weight")];
const PRICES: &[Column] = &[text("provider"), text("model")];

const VK_CHILDREN: &[Child] = &[
    Child {
        table: "virtual_key_budgets",
        parent: "virtual_key_id",
        array: "budgets",
        columns: VK_BUDGETS,
        nested: None,
    },
    Child {
        table: "virtual_key_provider_configs",
        parent: "virtual_key_id",
        array: "provider_configs",
        columns: VK_PROVIDER_CONFIGS,
        nested: None,
    },
    Child {
        table: "virtual_key_key_pins",
        parent: "virtual_key_id",
        array: "provider_configs",
        columns: NONE,
        nested: Some("key_ids"),
    },
];

const RULE_CHILDREN: &[Child] = &[Child {
    table: "routing_rule_targets",
    parent: "rule_id",
    array: "targets",
    columns: RULE_TARGETS,
    nested: None,
}];

const fn plain(name: &'static str, columns: &'static [Column]) -> Table {
    Table {
        name,
        columns,
        children: &[],
        lookup: false,
    }
}

/// The table of `kind`.
pub fn table(kind: EntityKind) -> Table {
    match kind {
        EntityKind::Budget => plain("budgets", BUDGETS),
        EntityKind::RateLimit => plain("rate_limits", NONE),
        EntityKind::Customer => plain("customers", CUSTOMERS),
        EntityKind::Team => plain("teams", TEAMS),
        EntityKind::VirtualKey => Table {
            name: "virtual_keys",
            columns: VIRTUAL_KEYS,
            children: VK_CHILDREN,
            lookup: true,
        },
        EntityKind::ModelConfig => plain("model_configs", MODEL_CONFIGS),
        EntityKind::ProviderGovernance => plain("provider_governance", CAPS),
        EntityKind::RoutingRule => Table {
            name: "routing_rules",
            columns: ROUTING_RULES,
            children: RULE_CHILDREN,
            lookup: false,
        },
        EntityKind::PricingOverride => plain("pricing_overrides", PRICES),
        EntityKind::ModelPrice => plain("model_prices", PRICES),
        EntityKind::Plugin => plain("plugins", NONE),
    }
}

/// The columns that must not be NULL: a document without the member gets this fallback.
pub fn not_null_fallback(table: &str, column: &str) -> Option<&'static str> {
    match (table, column) {
        ("customers" | "teams" | "virtual_keys", "name") => Some("id"),
        ("model_configs", "model_name") | ("pricing_overrides" | "model_prices", "provider" | "model") => Some("''"),
        _ => None,
    }
}
