//! Criterion micro-benches for the per-request work: route match, body head read and model
//! rewrite (1 KB and 100 KB), key selection and the filter chain.
//!
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use asbru::routes::RouteTable;
use asbru_filters::routing::keys;
use asbru_filters::{FilterChain, GatewayRequest};
use asbru_providers::formats::openai::RequestHead;
use asbru_store::Snapshot;
use asbru_store::catalog::RequestType;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Method;

fn chat_body(content_len: usize) -> Vec<u8> {
    let content: String = "lorem ipsum ".chars().cycle().take(content_len).collect();
    format!(
        r#"{{"model":"openai/gpt-4o-mini","messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"{content}"}}],"temperature":0.2,"fallbacks":["groq/llama-3.1-8b-instant"],"stream":false}}"#
    )
    .into_bytes()
}

fn snapshot() -> Snapshot {
    let yaml = "providers:\n  openai:\n    keys:\n      - {name: a, value: sk-a, weight: 3}\n      - {name: b, value: sk-b, weight: 1, models: [gpt-4o]}\n      - {name: c, value: sk-c, weight: 1}\n  groq: {keys: [{value: sk-g}]}\n";
    let loaded = asbru_store::load_str(yaml, "bench.yaml").expect("valid bench config");
    Snapshot::build_with(&loaded.config, &|_| None).0
}

fn route_match(c: &mut Criterion) {
    let table = RouteTable::new();
    c.bench_function("route_match/chat", |b| {
        b.iter(|| table.find(black_box(&Method::POST), black_box("/v1/chat/completions")))
    });
}

fn body_rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("body_head_and_rewrite");
    for (name, size) in [("1KB", 1024), ("100KB", 100 * 1024)] {
        let body = chat_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let head = RequestHead::parse(black_box(&body)).expect("valid body");
                black_box(head.upstream_body(&body, "gpt-4o-mini"))
            })
        });
    }
    group.finish();
}

fn key_selection(c: &mut Criterion) {
    let snap = snapshot();
    let openai = snap.provider("openai").expect("openai").clone();
    c.bench_function("key_selection/3_keys", |b| {
        b.iter(|| {
            let choice = keys::select(&openai, black_box("gpt-4o-mini"), &[], &mut rand::rng());
            black_box(choice.map(|c| c.map(|(i, _)| i)))
        })
    });
}

fn filter_chain(c: &mut Criterion) {
    let snap = snapshot();
    let chain = FilterChain::standard();
    let request = GatewayRequest {
        request_type: RequestType::ChatCompletion,
        stream: false,
        model_requested: "openai/gpt-4o-mini".to_string(),
        default_provider: None,
        fallbacks: vec!["groq/llama-3.1-8b-instant".to_string()],
    };
    c.bench_function("filter_chain/routing", |b| {
        b.iter(|| black_box(chain.run(&snap, black_box(&request)).map(|d| d.plan.len())))
    });
}

criterion_group!(benches, route_match, body_rewrite, key_selection, filter_chain);
criterion_main!(benches);
