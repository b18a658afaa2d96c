//! `GET /api/openapi.json`: the management API as an OpenAPI 3.1 document. Paths come from the
//! route table the router is built from (so no route can be missing), operations from
//! [`operations`], and body schemas from the config types themselves (`utoipa::ToSchema`).

use std::sync::LazyLock;

use asbru_config::governance::{
    Budget, Customer, ModelConfig, PricingOverride, ProviderGovernance, RateLimit, RoutingRule, RoutingTarget, Team,
    VirtualKey, VirtualKeyProvider,
};
use asbru_config::model::{AliasTarget, CustomProviderConfig, KeyConfig, NetworkConfig, ProviderConfig, UrlKeyConfig};
use serde_json::Value;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{ComponentsBuilder, Content, InfoBuilder, OpenApiBuilder, Ref, Required, ResponseBuilder};

use super::{ApiRoute, Kind, ROUTE_TABLE};

/// One operation: method, summary, and the schema of its JSON body.
type Op = (HttpMethod, &'static str, Option<&'static str>);

/// The operations of a route.
pub(crate) fn operations(route: ApiRoute) -> Vec<Op> {
    use HttpMethod::{Delete, Get, Post, Put};

    let kind_schema = |kind: Kind| match kind {
        Kind::Teams => "Team",
        Kind::Customers => "Customer",
        Kind::ModelConfigs => "ModelConfig",
        Kind::RoutingRules => "RoutingRule",
        Kind::Providers => "ProviderGovernance",
        Kind::PricingOverrides => "PricingOverride",
        Kind::Budgets => "Budget",
        Kind::RateLimits => "RateLimit",
    };
    match route {
        ApiRoute::OpenApi => vec![(Get, "This document", None)],
        ApiRoute::Logs(route) => {
            use super::logs::{Chart, LogRoute};
            match route {
                LogRoute::List => vec![
                    (
                        Get,
                        "Request logs: filters (providers, models, status, objects, virtual_key_ids, selected_key_ids, start_time, end_time, min/max latency, tokens, cost, content_search, missing_cost_only), limit, offset, sort_by, order",
                        None,
                    ),
                    (
                        Delete,
                        "Delete logs: a body {\"ids\": [...]}, or the rows the query's filters select",
                        None,
                    ),
                ],
                LogRoute::Entry => vec![(Get, "One request log", None)],
                LogRoute::Stats => vec![(Get, "Totals over the logs the filters select", None)],
                LogRoute::Histogram(chart) => vec![(
                    Get,
                    match chart {
                        Chart::Requests => "Requests, successes and errors per time bucket",
                        Chart::Tokens => "Tokens per time bucket",
                        Chart::Cost => "Cost per time bucket, by model",
                        Chart::Models => "Requests per time bucket, by model",
                        Chart::Latency => "Latency mean and percentiles per time bucket",
                    },
                    None,
                )],
                LogRoute::FilterData => vec![(Get, "Distinct providers, models and keys in the logs", None)],
                LogRoute::Dropped => vec![(Get, "Log records lost (queue full or database down)", None)],
                LogRoute::Stream => vec![(Get, "Live tail: server-sent events, one per finished request", None)],
            }
        }
        ApiRoute::Plugins => vec![
            (Get, "Stored plugin entries", None),
            (Post, "Store a plugin entry (applies at the next start)", None),
        ],
        ApiRoute::Plugin => vec![
            (Get, "Get a stored plugin entry", None),
            (Put, "Replace it (applies at the next start)", None),
            (Delete, "Delete it (applies at the next start)", None),
        ],
        ApiRoute::Audit => vec![(
            Get,
            "The audit trail of management writes, newest first (limit, offset)",
            None,
        )],
        ApiRoute::Version => vec![(Get, "The gateway's version", None)],
        ApiRoute::Config => vec![
            (Get, "Client and auth settings, store status", None),
            (Put, "Change auth_config", None),
        ],
        ApiRoute::Providers => vec![
            (Get, "List providers (keys redacted)", None),
            (
                Post,
                "Create a provider: its name in `provider`, then its settings",
                Some("ProviderConfig"),
            ),
        ],
        ApiRoute::Provider => vec![
            (Get, "Get a provider", None),
            (
                Put,
                "Update a provider (each block sent replaces the stored one)",
                Some("ProviderConfig"),
            ),
            (Delete, "Delete a provider and its keys", None),
        ],
        ApiRoute::ProviderKeys => vec![
            (Get, "List a provider's keys (redacted)", None),
            (Post, "Add a key", Some("KeyConfig")),
        ],
        ApiRoute::ProviderKey => vec![
            (Get, "Get a key (redacted)", None),
            (
                Put,
                "Replace a key (a redacted or absent value keeps the secret)",
                Some("KeyConfig"),
            ),
            (Delete, "Delete a key", None),
        ],
        ApiRoute::TestProvider => vec![(
            Post,
            "One minimal request per key ({key_id?, model?}): status and latency per key",
            None,
        )],
        ApiRoute::Keys => vec![(Get, "Every provider's keys (redacted)", None)],
        ApiRoute::VirtualKeys => vec![
            (
                Get,
                "List virtual keys (limit, offset, search, customer_id, team_id, from_memory)",
                None,
            ),
            (
                Post,
                "Create a virtual key (the value is made by the server)",
                Some("VirtualKey"),
            ),
        ],
        ApiRoute::VirtualKey => vec![
            (Get, "Get a virtual key (value redacted)", None),
            (
                Put,
                "Replace a virtual key's settings (reset_budget_usage zeroes its budgets)",
                Some("VirtualKey"),
            ),
            (Delete, "Delete a virtual key", None),
        ],
        ApiRoute::RotateVirtualKey => vec![(Post, "Give a virtual key a new value", None)],
        ApiRoute::BudgetOverride => vec![
            (
                Put,
                "Raise a budget by {amount} USD for {cycles} windows or forever ({mode}); reply {budget, effective_max_limit}",
                None,
            ),
            (Delete, "Remove the raise", None),
        ],
        ApiRoute::Entities(Kind::Budgets | Kind::RateLimits) => vec![(Get, "List (read-only)", None)],
        ApiRoute::Entities(kind) => vec![(Get, "List", None), (Post, "Create", Some(kind_schema(kind)))],
        ApiRoute::Entity(kind) => vec![
            (Get, "Get one", None),
            (Put, "Replace", Some(kind_schema(kind))),
            (Delete, "Delete (refused while still referenced)", None),
        ],
    }
}

/// Routes answered before the router, with their operations.
const SESSION_PATHS: &[(&str, HttpMethod, &str)] = &[
    (
        "/api/session/login",
        HttpMethod::Post,
        "Log in: {username, password} -> session token and cookie",
    ),
    ("/api/session/logout", HttpMethod::Post, "End the session"),
    (
        "/api/session/is-auth-enabled",
        HttpMethod::Get,
        "Whether admin auth is on",
    ),
    (
        "/api/governance/virtual-keys/quota",
        HttpMethod::Get,
        "The calling virtual key's caps and usage (authenticated by the key)",
    ),
];

fn path_parameters(path: &str) -> Vec<utoipa::openapi::path::Parameter> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .build()
        })
        .collect()
}

fn operation(path: &str, summary: &str, schema: Option<&str>) -> utoipa::openapi::path::Operation {
    let json = |content: Content| ResponseBuilder::new().content("application/json", content);
    let mut op = OperationBuilder::new()
        .summary(Some(summary))
        .parameters(Some(path_parameters(path)))
        .response("200", json(Content::new(None::<Ref>)).description("Success").build())
        .response(
            "default",
            json(Content::new(Some(Ref::from_schema_name("ApiError"))))
                .description("Error: 400 invalid, 401 not authenticated, 404 unknown id, 405 wrong method, 409 duplicate or in use, 413 body too large, 429 too many failed logins, 503 no config store")
                .build(),
        );
    if let Some(schema) = schema {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", Content::new(Some(Ref::from_schema_name(schema))))
                .required(Some(Required::True))
                .build(),
        ));
    }
    op.build()
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document.
pub fn document() -> Value {
    DOCUMENT.clone()
}

fn build() -> Value {
    let mut paths = Paths::new();
    for (path, route) in ROUTE_TABLE {
        for (method, summary, schema) in operations(*route) {
            paths.add_path_operation(path, vec![method], operation(path, summary, schema));
        }
    }
    for (path, method, summary) in SESSION_PATHS {
        paths.add_path_operation(path, vec![method.clone()], operation(path, summary, None));
    }
    let error: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> = serde_json::from_value(serde_json::json!({
        "type": "object",
        "properties": {
            "is_bifrost_error": {"type": "boolean"},
            "status_code": {"type": "integer"},
            "error": {"type": "object", "properties": {"message": {"type": "string"}}}
        }
    }))
    .unwrap_or_else(|_| utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::default()));
    let components = ComponentsBuilder::new()
        .schema("ApiError", error)
        .schema_from::<ProviderConfig>()
        .schema_from::<KeyConfig>()
        .schema_from::<NetworkConfig>()
        .schema_from::<CustomProviderConfig>()
        .schema_from::<UrlKeyConfig>()
        .schema_from::<AliasTarget>()
        .schema_from::<VirtualKey>()
        .schema_from::<VirtualKeyProvider>()
        .schema_from::<Team>()
        .schema_from::<Customer>()
        .schema_from::<Budget>()
        .schema_from::<asbru_config::governance::BudgetOverride>()
        .schema_from::<RateLimit>()
        .schema_from::<ModelConfig>()
        .schema_from::<ProviderGovernance>()
        .schema_from::<RoutingRule>()
        .schema_from::<RoutingTarget>()
        .schema_from::<PricingOverride>()
        .build();
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("asbru management API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Bifrost-compatible management API of the asbru LLM gateway"))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build();
    serde_json::to_value(&doc).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_method_is_documented_with_resolvable_schemas() {
        let doc = document();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
        for (path, route) in ROUTE_TABLE {
            let ops = operations(*route);
            assert!(!ops.is_empty(), "{path} has no operation");
            for (method, _, schema) in ops {
                let method = serde_json::to_value(&method).expect("method");
                let name = method.as_str().expect("name").to_lowercase();
                let op = &doc["paths"][path][&name];
                assert!(op.is_object(), "{path} {name} missing");
                if let Some(schema) = schema {
                    assert!(
                        doc["components"]["schemas"][schema].is_object(),
                        "{schema} not in components"
                    );
                }
            }
        }
        for (path, ..) in SESSION_PATHS {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert!(doc["paths"]["/api/governance/virtual-keys/{id}"]["put"]["parameters"][0]["name"] == "id");
    }
}
