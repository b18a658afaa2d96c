//! CEL routing rules through the real gateway: each semantic of Bifrost's rules in its own test
//! (scope precedence, priority, inheritance, weights, rule fallbacks, chains with a cycle,
//! missing headers, budget thresholds, request-body rules, governance on the final target), and
//! rules written through the management API taking effect live.

use asbru::server::RunningGateway;

use crate::support::*;

const VK: &str = "sk-bf-rules-test-key-0001";

/// Three OpenAI-wire providers on one mock, a customer, a team in it and a key in the team
/// that may use every provider, and the given rules.
fn rules_gateway(upstream: &str, rules: &str, extra: &str) -> RunningGateway {
    let providers: String = ["openai", "groq", "mistral"]
        .iter()
        .map(|p| provider_yaml(p, upstream, ""))
        .collect();
    gateway(&format!(
        "providers:\n{providers}governance:\n  customers: [{{id: c1, name: Acme}}]\n  teams: [{{id: t1, name: Research, customer_id: c1}}]\n  virtual_keys:\n    - {{id: vk1, name: research-key, value: {VK}, team_id: t1, allow_all_providers: true}}\n  routing_rules:\n{rules}{extra}"
    ))
}

async fn chat(gw: &RunningGateway, model: &str, headers: &[(&str, &str)]) -> Reply {
    chat_body(
        gw,
        &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
        headers,
    )
    .await
}

async fn chat_body(gw: &RunningGateway, body: &str, headers: &[(&str, &str)]) -> Reply {
    send(gw.addr, "POST", "/v1/chat/completions", headers, body.as_bytes()).await
}

fn served(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status(), 200, "{}", reply.text());
    (
        reply.header("x-bifrost-provider").unwrap_or_default(),
        reply.header("x-bifrost-resolved-model").unwrap_or_default(),
    )
}

fn pair(provider: &str, model: &str) -> (String, String) {
    (provider.to_string(), model.to_string())
}

#[tokio::test]
async fn a_header_rule_reroutes_and_a_missing_header_is_no_match() {
    let upstream = default_mock();
    let rules = r#"    - {id: free, name: free tier to mini, cel_expression: 'headers["x-tier"] == "free" && model.startsWith("gpt-4o")', targets: [{provider: groq, model: llama-3.1-8b-instant}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    let free = chat(&gw, "openai/gpt-4o", &[("x-tier", "free")]).await;
    assert_eq!(served(&free), pair("groq", "llama-3.1-8b-instant"));
    assert_eq!(free.header("x-bifrost-routing-info-rule-id").as_deref(), Some("free"));
    assert_eq!(
        free.header("x-bifrost-routing-info-rule-name").as_deref(),
        Some("free tier to mini")
    );
    assert_eq!(
        free.header("x-bifrost-routing-info-primary-provider").as_deref(),
        Some("openai")
    );
    assert_eq!(
        free.header("x-bifrost-routing-info-primary-model").as_deref(),
        Some("gpt-4o")
    );
    let paid = chat(&gw, "openai/gpt-4o", &[("x-tier", "paid")]).await;
    assert_eq!(served(&paid), pair("openai", "gpt-4o"));
    let missing = chat(&gw, "openai/gpt-4o", &[]).await;
    assert_eq!(
        served(&missing),
        pair("openai", "gpt-4o"),
        "a missing header is no match, not an error"
    );
    assert!(missing.header("x-bifrost-routing-info-rule-id").is_none());
    // Credentials are never visible to rules.
    let gw2 = rules_gateway(
        &upstream.base_url(),
        "    - {id: leak, name: leak, cel_expression: '\"authorization\" in headers || \"x-bf-vk\" in headers', targets: [{provider: groq}]}\n",
        "",
    );
    let with_key = chat(&gw2, "openai/gpt-4o", &[("authorization", &format!("Bearer {VK}"))]).await;
    assert_eq!(served(&with_key).0, "openai");
}

#[tokio::test]
async fn scopes_go_key_team_customer_global_and_priority_orders_within_one() {
    let upstream = default_mock();
    let rules = r#"    - {id: g-late, name: g-late, cel_expression: 'true', priority: 5, targets: [{model: global-late}]}
    - {id: g-early, name: g-early, cel_expression: 'true', priority: 1, targets: [{model: global-early}]}
    - {id: cust, name: cust, cel_expression: 'true', scope: customer, scope_id: c1, priority: 0, targets: [{model: customer}]}
    - {id: team, name: team, cel_expression: 'headers["x-skip-team"] != "yes"', scope: team, scope_id: t1, priority: 9, targets: [{model: team}]}
    - {id: key, name: key, cel_expression: 'headers["x-key-rule"] == "on"', scope: virtual_key, scope_id: vk1, priority: 9, targets: [{model: key}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    let vk = ("x-bf-vk", VK);
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[]).await),
        pair("openai", "global-early")
    );
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[vk, ("x-key-rule", "on")]).await),
        pair("openai", "key"),
        "the key's own rule wins over every other scope, whatever the priorities"
    );
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[vk, ("x-skip-team", "no")]).await),
        pair("openai", "team")
    );
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[vk, ("x-skip-team", "yes")]).await),
        pair("openai", "customer"),
        "the team's rule does not match, so the customer's does"
    );
}

#[tokio::test]
async fn targets_inherit_what_they_leave_out_and_pin_keys() {
    let upstream = default_mock();
    let rules = r#"    - {id: model-only, name: m, cel_expression: 'model == "a"', targets: [{model: a-rewritten}]}
    - {id: provider-only, name: p, cel_expression: 'model == "b"', targets: [{provider: mistral}]}
    - {id: pinned, name: k, cel_expression: 'model == "c"', targets: [{provider: groq, key_id: k-groq}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    assert_eq!(served(&chat(&gw, "openai/a", &[]).await), pair("openai", "a-rewritten"));
    assert_eq!(served(&chat(&gw, "groq/b", &[]).await), pair("mistral", "b"));
    let pinned = chat(&gw, "openai/c", &[]).await;
    assert_eq!(served(&pinned), pair("groq", "c"));
    assert_eq!(pinned.header("x-bifrost-routing-info-key").as_deref(), Some("k-groq"));
}

#[tokio::test]
async fn weighted_targets_split_traffic_and_zero_weights_are_uniform() {
    let upstream = default_mock();
    let rules = r#"    - {id: split, name: split, cel_expression: 'model == "split"', targets: [{provider: groq, weight: 0.8}, {provider: mistral, weight: 0.2}]}
    - {id: zero, name: zero, cel_expression: 'model == "zero"', targets: [{provider: groq, weight: 0}, {provider: mistral, weight: 0}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    let mut groq = 0;
    for _ in 0..200 {
        if served(&chat(&gw, "openai/split", &[]).await).0 == "groq" {
            groq += 1;
        }
    }
    // 200 draws at p = 0.8: mean 160, standard deviation about 5.7; 130..=190 is over 5 sigma.
    assert!((130..=190).contains(&groq), "groq served {groq} of 200");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        seen.insert(served(&chat(&gw, "openai/zero", &[]).await).0);
    }
    assert_eq!(seen.len(), 2, "all-zero weights pick uniformly: {seen:?}");
}

#[tokio::test]
async fn a_rules_fallbacks_are_tried_when_its_target_fails() {
    let upstream = default_mock();
    let dead = format!("http://{}", dead_address());
    let providers = format!(
        "{}{}",
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("groq", &dead, "")
    );
    let gw = gateway(&format!(
        "providers:\n{providers}governance:\n  routing_rules:\n    - {{id: r, name: r, cel_expression: 'true', targets: [{{provider: groq, model: fast}}], fallbacks: ['openai/']}}\n"
    ));
    let reply = chat(&gw, "openai/gpt-4o", &[]).await;
    assert_eq!(
        served(&reply),
        pair("openai", "fast"),
        "`openai/` keeps the rule's model"
    );
    assert_eq!(reply.header("x-bifrost-fallback-index").as_deref(), Some("1"));
}

#[tokio::test]
async fn chained_rules_rewrite_again_and_a_cycle_stops() {
    let upstream = default_mock();
    let rules = r#"    - {id: a-to-b, name: a-to-b, cel_expression: 'model == "a"', chain_rule: true, targets: [{model: b}]}
    - {id: b-to-c, name: b-to-c, cel_expression: 'model == "b"', chain_rule: true, targets: [{provider: groq, model: c}]}
    - {id: x-to-y, name: x-to-y, cel_expression: 'model == "x"', chain_rule: true, targets: [{model: y}]}
    - {id: y-to-x, name: y-to-x, cel_expression: 'model == "y"', chain_rule: true, targets: [{model: x}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    let chained = chat(&gw, "openai/a", &[]).await;
    assert_eq!(served(&chained), pair("groq", "c"));
    assert_eq!(
        chained.header("x-bifrost-routing-info-rule-id").as_deref(),
        Some("b-to-c")
    );
    let cycle = chat(&gw, "openai/x", &[]).await;
    assert_eq!(
        served(&cycle),
        pair("openai", "x"),
        "x -> y -> x, then x-to-y would apply again: stop"
    );
}

#[tokio::test]
async fn budget_used_routes_once_a_budget_fills() {
    let upstream = default_mock();
    // Each request costs $0.24 (12 prompt tokens at $0.01 and 6 completion tokens at $0.02).
    let extra = "  pricing_overrides: [{provider: openai, model: gpt-4o, input_cost_per_token: 0.01, output_cost_per_token: 0.02}]\n";
    let providers: String = ["openai", "groq"]
        .iter()
        .map(|p| provider_yaml(p, &upstream.base_url(), ""))
        .collect();
    let gw = gateway(&format!(
        "providers:\n{providers}governance:\n  virtual_keys:\n    - {{id: vk1, name: k, value: {VK}, allow_all_providers: true, budgets: [{{max_limit: 1.0, reset_duration: 1h}}]}}\n  routing_rules:\n    - {{id: shed, name: shed, cel_expression: 'budget_used >= 40.0', targets: [{{provider: groq, model: cheap}}]}}\n{extra}"
    ));
    let body = r#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let vk = [("x-bf-vk", VK)];
    assert_eq!(served(&chat_body(&gw, body, &vk).await), pair("openai", "gpt-4o"));
    assert_eq!(
        served(&chat_body(&gw, body, &vk).await),
        pair("openai", "gpt-4o"),
        "24% used"
    );
    assert_eq!(
        served(&chat_body(&gw, body, &vk).await),
        pair("groq", "cheap"),
        "48% used: the rule sheds to the cheap model"
    );
}

#[tokio::test]
async fn request_body_rules_read_the_parsed_body() {
    let upstream = default_mock();
    let rules = r#"    - {id: long, name: long, cel_expression: 'size(request_body.messages) > 2', targets: [{model: long-context}]}
    - {id: tools, name: tools, cel_expression: 'has(request_body.tools) && request_body.messages.exists(m, m.role == "tool")', targets: [{provider: mistral}]}
    - {id: big, name: big, cel_expression: 'prompt_bytes > 5000', targets: [{provider: groq}]}
"#;
    let gw = rules_gateway(&upstream.base_url(), rules, "");
    let short = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(served(&chat_body(&gw, short, &[]).await), pair("openai", "gpt-4o"));
    let long = r#"{"model":"openai/gpt-4o","messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}"#;
    assert_eq!(served(&chat_body(&gw, long, &[]).await), pair("openai", "long-context"));
    let tools = r#"{"model":"openai/gpt-4o","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"tool","tool_call_id":"1","content":"r"}]}"#;
    assert_eq!(served(&chat_body(&gw, tools, &[]).await), pair("mistral", "gpt-4o"));
    let big = format!(
        r#"{{"model":"openai/gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(6000)
    );
    assert_eq!(served(&chat_body(&gw, &big, &[]).await), pair("groq", "gpt-4o"));
}

#[tokio::test]
async fn governance_still_checks_where_a_rule_sends_the_request() {
    let upstream = default_mock();
    let providers: String = ["openai", "groq"]
        .iter()
        .map(|p| provider_yaml(p, &upstream.base_url(), ""))
        .collect();
    let gw = gateway(&format!(
        "providers:\n{providers}governance:\n  virtual_keys:\n    - {{id: vk1, name: k, value: {VK}, provider_configs: [{{provider: openai, weight: 1}}]}}\n  routing_rules:\n    - {{id: r, name: r, cel_expression: 'true', targets: [{{provider: groq}}]}}\n"
    ));
    let refused = chat(&gw, "openai/gpt-4o", &[("x-bf-vk", VK)]).await;
    assert_eq!(refused.status(), 403, "{}", refused.text());
    assert!(refused.text().contains("groq"), "{}", refused.text());
}

#[tokio::test]
async fn rules_written_through_the_api_apply_live_and_bad_ones_are_refused() {
    let upstream = default_mock();
    let dir = temp_dir("rules-api");
    let gw = gateway(&format!(
        "server: {{data_dir: \"{}\"}}\nconfig_store: {{enabled: true, type: sqlite, config: {{path: \"{}/config.db\"}}}}\nproviders:\n{}{}",
        dir.display(),
        dir.display(),
        provider_yaml("openai", &upstream.base_url(), ""),
        provider_yaml("groq", &upstream.base_url(), "")
    ));
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[("x-app", "batch")]).await).0,
        "openai"
    );
    let rule = r#"{"name":"batch to groq","cel_expression":"headers[\"x-app\"] == \"batch\"","targets":[{"provider":"groq","weight":1}]}"#;
    let created = send(gw.addr, "POST", "/api/governance/routing-rules", &[], rule.as_bytes()).await;
    assert_eq!(created.status(), 200, "{}", created.text());
    let id = created.json()["routing_rule"]["id"].as_str().expect("id").to_string();
    let routed = chat(&gw, "openai/gpt-4o", &[("x-app", "batch")]).await;
    assert_eq!(served(&routed).0, "groq", "live at once");
    assert_eq!(
        routed.header("x-bifrost-routing-info-rule-id").as_deref(),
        Some(id.as_str())
    );
    let metrics = metrics_when(gw.addr, |m| m.contains("routing_rule_name=\"batch to groq\"")).await;
    assert!(
        metrics.contains("routing_rule_name=\"batch to groq\""),
        "the rule labels the metrics"
    );

    for (body, expected) in [
        (
            r#"{"name":"bad","cel_expression":"model ==","targets":[]}"#,
            "does not parse",
        ),
        (
            r#"{"name":"typo","cel_expression":"modle == \"x\"","targets":[]}"#,
            "not a routing rule variable",
        ),
    ] {
        let refused = send(gw.addr, "POST", "/api/governance/routing-rules", &[], body.as_bytes()).await;
        assert_eq!(refused.status(), 400, "{}", refused.text());
        assert!(refused.text().contains(expected), "{}", refused.text());
    }
    let disabled = r#"{"name":"batch to groq","enabled":false,"cel_expression":"headers[\"x-app\"] == \"batch\"","targets":[{"provider":"groq"}]}"#;
    let put = send(
        gw.addr,
        "PUT",
        &format!("/api/governance/routing-rules/{id}"),
        &[],
        disabled.as_bytes(),
    )
    .await;
    assert_eq!(put.status(), 200, "{}", put.text());
    assert_eq!(
        served(&chat(&gw, "openai/gpt-4o", &[("x-app", "batch")]).await).0,
        "openai",
        "disabled"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
