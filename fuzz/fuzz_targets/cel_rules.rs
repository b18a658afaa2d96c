//! Routing rules: the first line of the input is a rule's CEL expression, the rest the request
//! body. Compiling and evaluating either gives a decision, no match, or a compile warning;
//! never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use asbru_config::Config;
use asbru_config::catalog::{RequestType, Wire};
use asbru_filters::governance::Registry;
use asbru_filters::governance::runtime::key_hash;
use asbru_filters::routing_rules::CompiledRules;
use asbru_filters::{GatewayRequest, Live};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "providers:\n  openai: {keys: [{value: sk-a}]}\n  groq: {keys: [{value: sk-g}]}\ngovernance:\n  virtual_keys:\n    - {id: vk-1, name: one, value: sk-bf-one, allow_all_providers: true, budgets: [{max_limit: 10, reset_duration: 1d}]}\n  routing_rules:\n    - {id: r1, name: fuzzed, cel_expression: 'true', targets: [{provider: groq, model: llama}]}\n";

fn base() -> &'static Config {
    static BASE_CONFIG: OnceLock<Config> = OnceLock::new();
    BASE_CONFIG.get_or_init(|| asbru_config::load_str(BASE, "fuzz.yaml").expect("base config").config)
}

fuzz_target!(|input: &[u8]| {
    let (expression, body) = match input.iter().position(|&b| b == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &b""[..]),
    };
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let mut config = base().clone();
    let Some(governance) = config.governance.as_mut() else {
        return;
    };
    governance.routing_rules[0].cel_expression = expression.to_string();
    let registry = Arc::new(Registry::new());
    let live = Live::build_with(&config, &registry, 1_800_000_000, &|_| None).0;
    let (rules, _warnings) = CompiledRules::build(&config, &live);
    let request = GatewayRequest {
        ingress: Wire::OpenAi,
        request_type: RequestType::ChatCompletion,
        stream: false,
        model_requested: "openai/gpt-4o-mini".to_string(),
        default_provider: None,
        fallbacks: Vec::new(),
        credentials: Default::default(),
        require_vk: false,
        estimate: Default::default(),
        now: 1_800_000_100,
        arrived_ms: 1_800_000_100_000,
        body: body.to_vec().into(),
        headers: vec![(
            http::HeaderName::from_static("x-tier"),
            http::HeaderValue::from_static("free"),
        )],
        query: Some("a=1&b=two".into()),
        pin: None,
    };
    let vk = live.governance.key(&key_hash("sk-bf-one")).cloned();
    let _ = rules.decide(&live, &request, vk.as_deref());
    let _ = rules.decide(&live, &request, None);
});
