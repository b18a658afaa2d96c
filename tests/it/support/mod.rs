//! Test support: starting gateways and mocks, and an HTTP client that records when each body
//! chunk arrived.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use asbru::server::{self, RunningGateway};
use asbru_bench::mock::{self, MockHandle, MockOptions};
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;
use serde_json::Value;

/// Starts a gateway from YAML text.
pub fn gateway(yaml: &str) -> RunningGateway {
    // A gateway builds OpenAI's tokenizer tables in the background on first need and uses the
    // byte bound until then; tests of budgets near their edge count exactly from their first
    // request, whichever test ran before, so the tables are built up front.
    for encoding in [
        asbru_filters::tokens::Encoding::O200k,
        asbru_filters::tokens::Encoding::Cl100k,
    ] {
        assert!(asbru_filters::tokens::load(encoding), "tokenizer tables");
    }
    let mut config = asbru_config::load_str(yaml, "test.yaml")
        .expect("test config is valid")
        .config;
    // Tests run from the file unless they name a store: no state shared between tests.
    if config.config_store.is_none() {
        config.config_store = Some(asbru_config::model::ConfigStoreConfig::disabled());
    }
    // Likewise the request log: tests that read it name a file of their own.
    if config.logs_store.is_none() {
        config.logs_store = Some(asbru_config::model::LogsStoreConfig {
            enabled: false,
            ..Default::default()
        });
    }
    server::spawn(&config).expect("gateway starts")
}

/// Starts a recording mock on a free port.
pub fn mock(options: MockOptions) -> MockHandle {
    let options = MockOptions {
        record: true,
        ..options
    };
    mock::spawn("127.0.0.1:0".parse().expect("addr"), options).expect("mock starts")
}

/// A mock with default behaviour.
pub fn default_mock() -> MockHandle {
    mock(MockOptions::default())
}

/// A loopback address nothing listens on.
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A response with its body chunks as they arrived.
pub struct Reply {
    pub head: ResponseHeader,
    pub chunks: Vec<(Instant, Bytes)>,
}

impl Reply {
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body()).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request to `addr` and reads the whole response, recording chunk arrival times.
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    // Building a connector loads the TLS roots (tens of ms), so tests share one. Sessions are
    // never released to its pool, so no connection outlives the test runtime that opened it.
    static CONNECTOR: std::sync::OnceLock<Connector> = std::sync::OnceLock::new();
    let connector = CONNECTOR.get_or_init(|| Connector::new(None));
    let peer = HttpPeer::new(addr, false, String::new());
    let (mut session, _) = connector.get_http_session(&peer).await.expect("connect to gateway");
    session.set_read_timeout(Some(Duration::from_secs(20)));
    let mut req = RequestHeader::build(method, path.as_bytes(), None).expect("request head");
    req.insert_header("host", "localhost").expect("host");
    if method != "GET" {
        req.insert_header("content-length", body.len().to_string())
            .expect("len");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req.insert_header("content-type", "application/json").expect("ct");
        }
    }
    for (k, v) in headers {
        req.insert_header(k.to_string(), *v).expect("header");
    }
    session.write_request_header(Box::new(req)).await.expect("write head");
    if method != "GET" {
        session
            .write_request_body(Bytes::copy_from_slice(body), true)
            .await
            .expect("write body");
    }
    session.finish_request_body().await.expect("finish body");
    session.read_response_header().await.expect("read response head");
    let head = session.response_header().expect("head").clone();
    let mut chunks = Vec::new();
    while let Some(chunk) = session.read_response_body().await.expect("read body") {
        chunks.push((Instant::now(), chunk));
    }
    Reply { head, chunks }
}

/// POSTs JSON to the gateway.
pub async fn post(gw: &RunningGateway, path: &str, body: &str) -> Reply {
    send(gw.addr, "POST", path, &[], body.as_bytes()).await
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

/// Provider YAML for an OpenAI-wire provider at `base_url` with extra lines indented inside it.
pub fn provider_yaml(name: &str, base_url: &str, extra_network: &str) -> String {
    let custom = if asbru_config::catalog::builtin(name).is_some() {
        String::new()
    } else {
        "    custom_provider_config: {base_provider_type: openai}\n".to_string()
    };
    format!(
        "  {name}:\n    keys: [{{name: k-{name}, value: sk-{name}-key, models: [\"*\"]}}]\n    network_config: {{base_url: \"{base_url}\"{extra_network}}}\n{custom}"
    )
}

/// `/metrics` once `ready` holds for it (metrics are recorded after the reply is written, so
/// a scrape right after a reply may not see that request yet).
pub async fn metrics_when(addr: SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = send(addr, "GET", "/metrics", &[], b"").await.text();
        if ready(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    text
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "asbru_it_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Polls `check` until it holds (bounded).
pub fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Writes raw bytes to the gateway and reads until it closes (requests `send` cannot make).
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(request).expect("write");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// A throwaway PostgreSQL database for this test, or `None` when PostgreSQL tests are off
/// (`ASBRU_TEST_POSTGRES_URL` unset); with `ASBRU_REQUIRE_POSTGRES=1` a missing server fails.
pub fn postgres_url(tag: &str) -> Option<String> {
    let required = std::env::var("ASBRU_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Ok(base) = std::env::var("ASBRU_TEST_POSTGRES_URL") else {
        assert!(
            !required,
            "ASBRU_REQUIRE_POSTGRES=1 but ASBRU_TEST_POSTGRES_URL is not set"
        );
        eprintln!("PostgreSQL test skipped: set ASBRU_TEST_POSTGRES_URL to run it");
        return None;
    };
    let name = format!("asbru_it_{tag}_{}", std::process::id());
    match asbru_store::backend::postgres::scratch_database(&base, &name) {
        Ok(url) => Some(url),
        Err(e) => {
            assert!(!required, "PostgreSQL at ASBRU_TEST_POSTGRES_URL is unusable: {e}");
            eprintln!("PostgreSQL test skipped: {e}");
            None
        }
    }
}

/// `(event name, data)` of every SSE event in `text` (`Null` data when it is not JSON).
pub fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}
