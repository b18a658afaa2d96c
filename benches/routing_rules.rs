//! Criterion benches for CEL routing rules: 20 rules over three scopes (the key's, its team's
//! and global) with mixed header, model and budget conditions, none matching until the last;
//! a first-rule match; and the extra cost of a rule that reads `request_body.messages` on a
//! 4 KB body.
//!
//! Run: `cargo bench --bench routing_rules`.

use std::hint::black_box;

use asbru_config::catalog::RequestType;
use asbru_filters::governance::runtime::key_hash;
use asbru_filters::governance::{Estimate, Registry};
use asbru_filters::routing_rules::CompiledRules;
use asbru_filters::{GatewayRequest, Live};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue};

const BASE: &str = "providers:\n  openai: {keys: [{value: sk-a}]}\n  groq: {keys: [{value: sk-g}]}\ngovernance:\n  customers: [{id: acme, name: Acme, budgets: [{max_limit: 1000, reset_duration: 1M}]}]\n  teams: [{id: ml, name: ML, customer_id: acme, budgets: [{max_limit: 1000, reset_duration: 1w}]}]\n  virtual_keys:\n    - {id: vk-bench, name: bench, value: sk-bf-bench, team_id: ml, allow_all_providers: true, budgets: [{max_limit: 100, reset_duration: 1d}], rate_limit: {request_max_limit: 1000000, request_reset_duration: 1m}}\n  routing_rules:\n";

/// Twenty rules: 4 on the key, 6 on its team, 10 global; only the last global one matches.
fn twenty_rules() -> String {
    let mut rules = String::new();
    let conditions = [
        r#"headers["x-tier"] == "free""#,
        r#"model == "gpt-3.5-turbo""#,
        "budget_used > 90.0",
        r#"model.startsWith("o1") && headers["x-region"] == "eu""#,
        r#"team_name == "finance""#,
        "request > 95.0",
        r#"provider == "anthropic""#,
        r#"virtual_key_name == "other" || model == "gpt-4""#,
        r#"headers["x-priority"] == "low" && budget_used > 50.0"#,
        r#"customer_name == "Globex""#,
    ];
    for i in 0..20 {
        let scope = match i {
            0..=3 => "scope: virtual_key, scope_id: vk-bench, ",
            4..=9 => "scope: team, scope_id: ml, ",
            _ => "",
        };
        let expression = if i == 19 {
            r#"model == "gpt-4o-mini" && budget_used < 90.0"#.to_string()
        } else {
            conditions[i % conditions.len()].to_string()
        };
        rules.push_str(&format!(
            "    - {{id: r{i}, name: rule {i}, {scope}priority: {i}, cel_expression: '{expression}', targets: [{{provider: groq, model: llama}}]}}\n"
        ));
    }
    rules
}

fn setup(rules: &str) -> (Live, CompiledRules) {
    let yaml = format!("{BASE}{rules}");
    let loaded = asbru_config::load_str(&yaml, "bench.yaml").expect("valid bench config");
    let registry = std::sync::Arc::new(Registry::new());
    let live = Live::build_with(&loaded.config, &registry, 1_800_000_000, &|_| None).0;
    let (compiled, warnings) = CompiledRules::build(&loaded.config, &live);
    assert!(warnings.is_empty(), "{warnings:?}");
    (live, compiled)
}

fn request(body: Vec<u8>) -> GatewayRequest {
    GatewayRequest {
        ingress: asbru_config::catalog::Wire::OpenAi,
        request_type: RequestType::ChatCompletion,
        stream: false,
        model_requested: "openai/gpt-4o-mini".to_string(),
        default_provider: None,
        fallbacks: Vec::new(),
        credentials: Default::default(),
        require_vk: false,
        estimate: Estimate::default(),
        now: 1_800_000_100,
        arrived_ms: 1_800_000_100_000,
        body: body.into(),
        headers: vec![
            (HeaderName::from_static("x-tier"), HeaderValue::from_static("paid")),
            (HeaderName::from_static("x-region"), HeaderValue::from_static("us")),
            (HeaderName::from_static("x-priority"), HeaderValue::from_static("high")),
            (
                HeaderName::from_static("user-agent"),
                HeaderValue::from_static("bench/1.0"),
            ),
        ],
        query: None,
        pin: None,
    }
}

fn body_4kb() -> Vec<u8> {
    let mut messages = Vec::new();
    for i in 0..16 {
        let content: String = "lorem ipsum dolor sit amet ".chars().cycle().take(220).collect();
        messages.push(format!(
            r#"{{"role":"{}","content":"{content} {i}"}}"#,
            if i % 2 == 0 { "user" } else { "assistant" }
        ));
    }
    format!(
        r#"{{"model":"openai/gpt-4o-mini","messages":[{}]}}"#,
        messages.join(",")
    )
    .into_bytes()
}

fn rules(c: &mut Criterion) {
    let (live, compiled) = setup(&twenty_rules());
    let vk = live.governance.key(&key_hash("sk-bf-bench")).cloned();
    let vk = vk.as_deref();
    let req = request(Vec::new());
    let decision = compiled.decide(&live, &req, vk).expect("the last rule matches");
    assert_eq!(decision.rule.id.as_ref(), "r19");
    c.bench_function("routing_rules/20_rules_last_matches", |b| {
        b.iter(|| compiled.decide(black_box(&live), black_box(&req), black_box(vk)))
    });
    // The same with none of the headers the rules read: each such rule ends on a missing key.
    let mut bare = request(Vec::new());
    bare.headers.truncate(0);
    assert!(compiled.decide(&live, &bare, vk).is_some());
    c.bench_function("routing_rules/20_rules_last_matches_headers_missing", |b| {
        b.iter(|| compiled.decide(black_box(&live), black_box(&bare), black_box(vk)))
    });

    let (first_live, first) =
        setup("    - {id: r0, name: r0, cel_expression: 'model == \"gpt-4o-mini\"', targets: [{provider: groq}]}\n");
    c.bench_function("routing_rules/first_rule_matches", |b| {
        b.iter(|| first.decide(black_box(&first_live), black_box(&req), None))
    });

    let body = body_4kb();
    assert!(body.len() > 4000, "{}", body.len());
    let with_body = request(body);
    let (plain_live, plain) =
        setup("    - {id: m, name: m, cel_expression: 'model == \"other\"', targets: [{provider: groq}]}\n");
    let (body_live, body_rule) = setup(
        "    - {id: b, name: b, cel_expression: 'size(request_body.messages) > 100', targets: [{provider: groq}]}\n",
    );
    assert!(body_rule.decide(&body_live, &with_body, None).is_none());
    c.bench_function("routing_rules/one_rule_model", |b| {
        b.iter(|| plain.decide(black_box(&plain_live), black_box(&with_body), None))
    });
    c.bench_function("routing_rules/one_rule_request_body_4KB", |b| {
        b.iter(|| body_rule.decide(black_box(&body_live), black_box(&with_body), None))
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
