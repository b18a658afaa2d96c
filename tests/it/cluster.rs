//! Cluster metering end to end: three gateway processes on loopback share one PostgreSQL store
//! (`governance.cluster`) and meter one budget or rate limit together by leases.
//!
//! Prices are pinned so costs are exact: `gpt-4o` costs nothing per input token and 100 µ$ per
//! output token, the mock reports 6 output tokens, and with `max_tokens: 6` a request reserves
//! exactly what it is charged, 600 µ$.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use asbru_bench::mock::{MockHandle, MockOptions};
use asbru_store::backend::ConfigStore;
use asbru_store::backend::postgres::PostgresStore;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// µ$ one request costs.
const REQUEST_MICROS: i64 = 600;
const METER: &str = "vk:vk-c:budget:0";

/// One gateway process.
struct Node {
    child: Option<std::process::Child>,
    addr: SocketAddr,
    config: PathBuf,
}

impl Node {
    fn start(config: &Path) -> Node {
        let addr = dead_address();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_asbru"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "warn,asbru::cluster=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn asbru");
        let node = Node {
            child: Some(child),
            addr,
            config: config.to_path_buf(),
        };
        asbru::server::wait_ready(addr).expect("gateway ready");
        node
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill_9();
        *self = Node::start(&self.config.clone());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Three nodes with their own data dirs on the store at `url`, metering `governance` together.
fn cluster(tag: &str, url: &str, upstream: &MockHandle, governance: &str) -> Vec<Node> {
    nodes(3, tag, url, upstream, governance)
}

/// `count` nodes with their own data dirs on the store at `url`.
fn nodes(count: usize, tag: &str, url: &str, upstream: &MockHandle, governance: &str) -> Vec<Node> {
    let root = temp_dir(tag);
    (0..count)
        .map(|i| {
            let dir = root.join(format!("node{i}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            let config = dir.join("asbru.yaml");
            std::fs::write(
                &config,
                format!(
                    "server: {{data_dir: \"{}\", grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 2}}\nconfig_store: {{enabled: true, type: postgres, config: {{url: \"{url}\", max_open_conns: 4, max_idle_conns: 1}}}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n  pricing_overrides:\n    - {{provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}}\n{governance}",
                    dir.display(),
                    upstream.base_url()
                ),
            )
            .expect("write config");
            Node::start(&config)
        })
        .collect()
}

fn budget_key(max_usd: f64, cluster: &str) -> String {
    format!(
        "  cluster: {{enabled: true{cluster}}}\n  virtual_keys:\n    - {{id: vk-c, name: C, value: sk-bf-c, budgets: [{{max_limit: {max_usd}, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n"
    )
}

async fn chat(addr: SocketAddr) -> u16 {
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-c")], body)
        .await
        .status()
}

/// Asserts that a request is admitted, with the refusal's body when it is not.
async fn admitted(addr: SocketAddr) {
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let reply = send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-c")], body).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
}

/// `count` concurrent requests spread over `nodes` in turn; their statuses.
async fn burst(nodes: &[Node], count: usize) -> Vec<u16> {
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            tokio::spawn(async move { chat(addr).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses
}

/// Stored usage of the test's budget, and the leases every node holds on it.
fn ledger(store: &PostgresStore) -> (i64, i64) {
    let spent = store
        .load_usage()
        .expect("usage")
        .into_iter()
        .find(|r| r.counter_id == METER)
        .map_or(0, |r| r.value);
    let leased = store
        .lease_totals()
        .expect("leases")
        .into_iter()
        .filter(|t| t.counter_id == METER)
        .map(|t| t.leased)
        .sum();
    (spent, leased)
}

/// Runs blocking store I/O from a test's runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The shared store, read from the test (its connections are closed off the runtime's
/// threads, as the synchronous client needs).
struct Shared(Option<PostgresStore>);

impl std::ops::Deref for Shared {
    type Target = PostgresStore;

    fn deref(&self) -> &PostgresStore {
        self.0.as_ref().expect("open")
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let store = self.0.take();
        blocking(move || drop(store));
    }
}

fn open(url: &str) -> Shared {
    Shared(Some(PostgresStore::open(url, 2, 1).expect("open store")))
}

/// Waits (bounded) until `check` holds, polling every 50 ms.
async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_over_three_nodes_never_overspends_a_shared_budget() {
    let Some(url) = blocking(|| postgres_url("cluster_storm")) else {
        return;
    };
    // Every request stays in flight for 300 ms, so all 300 are admitted or refused while the
    // others still hold their reservations.
    let upstream = mock(MockOptions {
        latency: Duration::from_millis(300),
        record: false,
        ..MockOptions::default()
    });
    let budget = 50 * REQUEST_MICROS;
    // A loaded test machine can take a while to run a fetch round: requests wait longer for
    // one here (the test is about overspend, not about the wait).
    let nodes = cluster(
        "cluster-storm",
        &url,
        &upstream,
        &budget_key(budget as f64 / 1e6, ", lease_wait_ms: 250"),
    );
    let statuses = burst(&nodes, 300).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 300, "only admissions and budget refusals: {statuses:?}");
    assert!(
        (upstream.state.request_count() as usize) <= 50,
        "{} reached the upstream",
        upstream.state.request_count()
    );
    assert!(ok >= 45, "at least 45 of the 50 that fit were admitted, got {ok}");
    let store = blocking(|| open(&url));
    assert!(
        until(Duration::from_secs(15), || blocking(|| ledger(&store)).0
            == ok as i64 * REQUEST_MICROS)
        .await,
        "every admitted request's spend reached the store: {:?}",
        blocking(|| ledger(&store))
    );
    let (spent, leased) = blocking(|| ledger(&store));
    assert!(
        spent + leased <= budget,
        "usage {spent} + leases {leased} within {budget}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_round_robin_spend_a_budget_exactly() {
    let Some(url) = blocking(|| postgres_url("cluster_seq")) else {
        return;
    };
    let upstream = default_mock();
    let nodes = cluster("cluster-seq", &url, &upstream, &budget_key(0.006, ""));
    let mut admitted = 0;
    for i in 0..15 {
        let status = chat(nodes[i % 3].addr).await;
        assert!(matches!(status, 200 | 402), "{status}");
        admitted += usize::from(status == 200);
    }
    assert_eq!(admitted, 10, "a budget that fits ten admits ten over three nodes");
    assert_eq!(upstream.state.request_count(), 10);
    let store = blocking(|| open(&url));
    assert!(
        until(Duration::from_secs(15), || blocking(|| ledger(&store)).0
            == 10 * REQUEST_MICROS)
        .await
    );

    // Any node's management API shows the spend over all nodes, not just its own third.
    let mut shown = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let reply = send(
            nodes[0].addr,
            "GET",
            "/api/governance/virtual-keys?from_memory=true",
            &[],
            b"",
        )
        .await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        shown = reply.json()["virtual_keys"][0]["usage"]["scopes"][0]["budgets"][0].clone();
        if shown["current_usage"]
            .as_f64()
            .is_some_and(|u| (u - 0.006).abs() < 1e-9)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["current_usage"].as_f64(), Some(0.006), "{shown}");
    assert_eq!(shown["remaining"].as_f64(), Some(0.0), "{shown}");

    // Each node reports its leases and fetches (the usage over all nodes as of its last
    // report, once a second).
    let mut metrics = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        metrics = send(nodes[1].addr, "GET", "/metrics", &[], b"").await.text();
        if metrics.contains("asbru_cluster_usage{meter=\"vk:vk-c:budget:0\"} 6000") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in [
        "asbru_cluster_store_up 1",
        "asbru_cluster_lease_held{meter=\"vk:vk-c:budget:0\"}",
        "asbru_cluster_usage{meter=\"vk:vk-c:budget:0\"} 6000",
        "asbru_cluster_lease_fetches_total{meter=\"vk:vk-c:budget:0\",result=\"granted\"}",
        "asbru_cluster_lease_fetch_seconds_count",
        "asbru_cluster_lease_wait_seconds_count",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_holding_a_lease_strands_at_most_one_slice_and_its_restart_settles_it() {
    let Some(url) = blocking(|| postgres_url("cluster_kill")) else {
        return;
    };
    let upstream = default_mock();
    // 100 requests fit; a first slice is a tenth of that: ten requests.
    let budget = 100 * REQUEST_MICROS;
    let slice = budget / 10;
    let mut nodes = cluster("cluster-kill", &url, &upstream, &budget_key(budget as f64 / 1e6, ""));
    admitted(nodes[0].addr).await;
    for _ in 0..2 {
        assert_eq!(chat(nodes[0].addr).await, 200);
    }
    nodes[0].kill_9();
    let store = blocking(|| open(&url));
    let (_, held) = blocking(|| ledger(&store));
    assert!(held > 0, "the killed node's lease is still counted");
    // The others serve on until the budget, less the dead node's lease, is spent.
    let mut served = 3;
    for i in 0..200 {
        match chat(nodes[1 + i % 2].addr).await {
            200 => served += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(served <= 100, "no overspend: {served}");
    let stranded = 100 - served;
    assert!(
        stranded as i64 * REQUEST_MICROS <= slice,
        "{stranded} requests' worth stranded, more than one slice"
    );
    assert_eq!(upstream.state.request_count() as usize, served);
    // Restarted on its data dir, the node replays its journal and settles its lease: the rest
    // of the budget is usable again, to the last request.
    nodes[0].restart();
    assert!(
        until(Duration::from_secs(10), || blocking(|| ledger(&store)).1 <= slice).await,
        "{:?}",
        blocking(|| ledger(&store))
    );
    for i in 0..(stranded + 30) {
        let status = chat(nodes[i % 3].addr).await;
        if status == 200 {
            served += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        served, 100,
        "after the restart the whole budget is spent, and not a request more"
    );
    assert_eq!(upstream.state.request_count(), 100);
    assert!(
        until(Duration::from_secs(15), || blocking(|| ledger(&store)).0 == budget).await,
        "{:?}",
        blocking(|| ledger(&store))
    );
}

/// A loopback TCP proxy in front of PostgreSQL that can cut every connection and refuse new
/// ones, as a stopped server would.
struct Cuttable {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cuttable {
    async fn start(target: SocketAddr) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let (flag, cuts) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::Acquire) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cuttable { addr, down, generation }
    }

    /// A proxy in front of the PostgreSQL that `url` names, and `url` pointed at it.
    async fn in_front_of(url: &str) -> (Cuttable, String) {
        let proxy = Cuttable::start(postgres_port(url)).await;
        let via_proxy = url.replace(
            &format!("port={}", postgres_port(url).port()),
            &format!("port={}", proxy.addr.port()),
        );
        (proxy, via_proxy)
    }

    fn stop(&self) {
        self.down.store(true, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    fn resume(&self) {
        self.down.store(false, Ordering::Release);
    }
}

/// PostgreSQL's address in a `host=... port=...` connection string.
fn postgres_port(url: &str) -> SocketAddr {
    let port = url
        .split_whitespace()
        .find_map(|part| part.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_nodes_serve_within_their_leases_then_fail_closed_and_resume_exactly() {
    let Some(url) = blocking(|| postgres_url("cluster_down")) else {
        return;
    };
    let (proxy, via_proxy) = Cuttable::in_front_of(&url).await;
    let upstream = default_mock();
    let budget = 200 * REQUEST_MICROS;
    let nodes = cluster(
        "cluster-down",
        &via_proxy,
        &upstream,
        &budget_key(budget as f64 / 1e6, ""),
    );
    // Each node takes a lease.
    for node in &nodes {
        admitted(node.addr).await;
    }
    proxy.stop();
    // Within their leases the nodes keep serving; once those are spent they refuse.
    let mut during = Vec::new();
    let begun = Instant::now();
    for i in 0..90 {
        during.push(chat(nodes[i % 3].addr).await);
    }
    let served_down = during.iter().filter(|s| **s == 200).count();
    assert!(served_down > 0, "nodes served within their leases: {during:?}");
    assert!(during.iter().all(|s| matches!(s, 200 | 402)), "{during:?}");
    assert!(
        during[during.len() - 3..].iter().all(|s| *s == 402),
        "spent leases fail closed: {during:?}"
    );
    // Hold the outage for 10 s in all.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(begun.elapsed())).await;
    proxy.resume();
    let store = blocking(|| open(&url));
    let mut resumed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !resumed {
        resumed = chat(nodes[0].addr).await == 200;
        if !resumed {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(resumed, "serving resumed once the store was back");
    let admitted = upstream.state.request_count() as i64;
    assert!(admitted * REQUEST_MICROS <= budget);
    assert!(
        until(Duration::from_secs(30), || blocking(|| ledger(&store)).0
            == admitted * REQUEST_MICROS)
        .await,
        "spend is exact after the outage: {:?} for {admitted} requests",
        blocking(|| ledger(&store))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_rate_limit_holds_over_three_nodes() {
    let Some(url) = blocking(|| postgres_url("cluster_rate")) else {
        return;
    };
    let upstream = default_mock();
    let governance = "  cluster: {enabled: true, idle_return_seconds: 1}\n  virtual_keys:\n    - {id: vk-c, name: C, value: sk-bf-c, rate_limit: {request_max_limit: 100, request_reset_duration: 1m}, provider_configs: [{provider: openai, weight: 1}]}\n";
    let nodes = cluster("cluster-rate", &url, &upstream, governance);
    let statuses = burst(&nodes, 150).await;
    let mut ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    assert!(ok <= 100, "at most 100 requests in the minute over all nodes, got {ok}");
    assert!(ok >= 50, "a burst is served from the nodes' leases: {ok}");
    // What the burst left on nodes whose requests had given up is handed back once idle, and
    // the rest of the minute's 100 is served: not one more.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while ok < 100 && Instant::now() < deadline {
        match chat(nodes[i % 3].addr).await {
            200 => ok += 1,
            429 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected status {other}"),
        }
        i += 1;
    }
    assert_eq!(ok, 100, "the whole limit is usable over the nodes");
    for node in &nodes {
        assert_eq!(chat(node.addr).await, 429, "the 101st request in the minute is refused");
    }
    assert_eq!(upstream.state.request_count() as usize, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_on_the_node_alone_while_the_store_is_down_and_spend_is_exact_after() {
    let Some(url) = blocking(|| postgres_url("cluster_open")) else {
        return;
    };
    let (proxy, via_proxy) = Cuttable::in_front_of(&url).await;
    let upstream = default_mock();
    let budget = 100 * REQUEST_MICROS;
    let node = nodes(
        1,
        "cluster-open",
        &via_proxy,
        &upstream,
        &budget_key(budget as f64 / 1e6, ", on_store_down: fail_open"),
    );
    let addr = node[0].addr;
    admitted(addr).await;
    proxy.stop();
    // The lease (a tenth of the budget) is spent, then requests are refused until the node
    // notices the store is gone; from then on it admits on its own.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let status = chat(addr).await;
        assert!(matches!(status, 200 | 402), "{status}");
        seen.push(status);
        let refused_then_admitted = seen
            .iter()
            .position(|s| *s == 402)
            .is_some_and(|at| seen[at..].contains(&200));
        if refused_then_admitted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_refusal = seen.iter().position(|s| *s == 402).expect("the lease ran out");
    assert!(
        seen[first_refusal..].contains(&200),
        "fail_open admits once the outage is noticed: {seen:?}"
    );
    let metrics = send(addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("asbru_cluster_store_up 0"), "{metrics}");
    proxy.resume();
    let store = blocking(|| open(&url));
    let admitted = upstream.state.request_count() as i64;
    assert!(
        until(Duration::from_secs(30), || blocking(|| ledger(&store)).0
            == admitted * REQUEST_MICROS)
        .await,
        "the spend admitted during the outage reaches the store: {:?} for {admitted} requests",
        blocking(|| ledger(&store))
    );
    let metrics = send(addr, "GET", "/metrics", &[], b"").await.text();
    assert!(metrics.contains("asbru_cluster_store_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_node_admits_its_first_requests_for_a_model_with_no_price_under_many_budgets() {
    let Some(url) = blocking(|| postgres_url("cluster_cold")) else {
        return;
    };
    let upstream = default_mock();
    // Four budgets a request meets (customer, team, key, the key's provider config) and a
    // rate limit, on a model with no price: each request reserves 0 µ$, which an empty lease
    // still has no room for. Every cap must ask for its lease in the first round, or a first
    // request walks the caps one fetch round at a time and runs out of waits.
    let governance = "  cluster: {enabled: true}\n  customers: [{id: cu, name: Cu, budgets: [{max_limit: 10, reset_duration: 1M}]}]\n  teams: [{id: te, name: Te, customer_id: cu, budgets: [{max_limit: 10, reset_duration: 1w}]}]\n  virtual_keys:\n    - {id: vk-c, name: C, value: sk-bf-c, team_id: te, budgets: [{max_limit: 10, reset_duration: 1d}], rate_limit: {request_max_limit: 1000, request_reset_duration: 1h}, provider_configs: [{provider: openai, weight: 1, budgets: [{max_limit: 10, reset_duration: 1h}]}]}\n";
    let node = nodes(1, "cluster-cold", &url, &upstream, governance);
    let addr = node[0].addr;
    let body = br#"{"model":"openai/model-with-no-price","messages":[{"role":"user","content":"hi"}]}"#;
    let first = send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-c")], body).await;
    assert_eq!(first.status(), 200, "{}", first.text());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-c")], body)
                    .await
                    .status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_store_is_gone_before_its_first_lease_refuses_in_bounded_time_and_says_why() {
    let Some(url) = blocking(|| postgres_url("cluster_unanswered")) else {
        return;
    };
    let (proxy, via_proxy) = Cuttable::in_front_of(&url).await;
    let upstream = default_mock();
    let node = nodes(
        1,
        "cluster-unanswered",
        &via_proxy,
        &upstream,
        &budget_key(100.0 * REQUEST_MICROS as f64 / 1e6, ""),
    );
    let addr = node[0].addr;
    proxy.stop();
    let body = br#"{"model":"openai/gpt-4o","max_tokens":6,"messages":[{"role":"user","content":"hi"}]}"#;
    let begun = Instant::now();
    let reply = send(addr, "POST", "/v1/chat/completions", &[("x-bf-vk", "sk-bf-c")], body).await;
    let waited = begun.elapsed();
    assert_eq!(reply.status(), 402, "{}", reply.text());
    assert!(
        reply.text().contains("holds no lease on it yet"),
        "the refusal says the store never answered: {}",
        reply.text()
    );
    // One longer wait for the first lease (2 s), then the configured 50 ms ones.
    assert!(waited < Duration::from_secs(5), "refused after {waited:?}");
    assert_eq!(upstream.state.request_count(), 0);
    proxy.resume();
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        status = chat(addr).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "leases are fetched once the store is back");
}
