//! Config rebuild at scale: building the live view (`Live`) for 1,000 and 100,000 virtual keys,
//! each with a budget and a rate limit, and the key lookup a request does, at both sizes. The
//! resident memory the 100,000-key view adds is printed once.
//!
//! Run: `cargo bench --bench rebuild`.

use std::hint::black_box;
use std::sync::Arc;

use asbru_config::Config;
use asbru_config::governance::{Budget, GovernanceConfig, RateLimit, VirtualKey, VirtualKeyProvider};
use asbru_filters::Live;
use asbru_filters::governance::Registry;
use asbru_filters::governance::runtime::key_hash;
use criterion::{Criterion, criterion_group, criterion_main};

fn config(keys: usize) -> Config {
    let mut config = asbru_config::load_str("providers:\n  openai: {keys: [{value: sk-x}]}\n", "bench.yaml")
        .expect("valid")
        .config;
    let virtual_keys = (0..keys)
        .map(|i| VirtualKey {
            id: format!("vk-{i}"),
            name: format!("key {i}"),
            value: format!("sk-bf-bench-{i:08}"),
            budgets: vec![Budget {
                max_limit: 100.0,
                reset_duration: "1M".into(),
                ..Budget::default()
            }],
            rate_limit: Some(RateLimit {
                request_max_limit: Some(1000),
                request_reset_duration: Some("1m".into()),
                ..RateLimit::default()
            }),
            provider_configs: vec![VirtualKeyProvider {
                provider: "openai".into(),
                weight: Some(1.0),
                ..VirtualKeyProvider::default()
            }],
            ..VirtualKey::default()
        })
        .collect();
    config.governance = Some(GovernanceConfig {
        virtual_keys,
        ..GovernanceConfig::default()
    });
    config
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10);
    for keys in [1_000usize, 100_000] {
        let config = config(keys);
        let registry = Arc::new(Registry::new());
        if keys == 100_000 {
            let before = rss_kib();
            let live = Live::build_with(&config, &registry, 1_800_000_000, &|_| None).0;
            let after = rss_kib();
            eprintln!(
                "rebuild/{keys}: the live view adds about {} MiB of resident memory",
                after.saturating_sub(before) / 1024
            );
            drop(live);
        }
        group.bench_function(format!("live_view_{keys}_virtual_keys"), |b| {
            b.iter(|| black_box(Live::build_with(&config, &registry, 1_800_000_000, &|_| None).0))
        });
        let live = Live::build_with(&config, &registry, 1_800_000_000, &|_| None).0;
        let value = format!("sk-bf-bench-{:08}", keys / 2);
        group.bench_function(format!("key_lookup_among_{keys}"), |b| {
            b.iter(|| black_box(live.governance.key(&key_hash(black_box(&value))).is_some()))
        });
    }
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
