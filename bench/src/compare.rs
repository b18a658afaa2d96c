//! `asbru bench compare`: the same open-loop load sent straight to a mock provider and then
//! through a gateway in front of it, reporting what the gateway adds: latency per percentile,
//! throughput, CPU time per request (from `/proc/<pid>/stat`) and peak RSS.
//!
//! The gateway runs as a child process (optionally pinned with `taskset`) so that its CPU time is
//! its own; the mock and the load generator run in this process. Children are killed when the
//! comparison ends, fails or is interrupted.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use asbru_config::Config;
use bytes::Bytes;
use serde::Serialize;

use super::load::{self, LoadOptions};
use super::mock::{self, MockOptions};
use super::process;
use super::report::{LoadReport, Percentiles, SignedPercentiles, fmt_us};
pub use crate::compare_setup::{CompareError, CompareOptions};
use crate::compare_setup::{chat_body, gateway_config};

/// A bundled scenario.
pub struct Scenario {
    /// Name used with `--scenario`.
    pub name: &'static str,
    /// Gateway config (providers are re-pointed at the mock).
    pub config: &'static str,
    /// Model sent through the gateway.
    pub model: &'static str,
    /// Stream responses.
    pub stream: bool,
    /// Why the scenario cannot run in this version, if it cannot.
    pub skip: Option<&'static str>,
    /// Headers sent to the gateway (not to the direct run), e.g. a virtual key.
    pub gateway_headers: &'static [(&'static str, &'static str)],
    /// The API the client calls on the gateway.
    pub client: ClientApi,
}

/// The OpenAI API a scenario's client calls on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApi {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/responses`.
    Responses,
}

/// Every bundled scenario.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "passthrough",
        config: include_str!("../../benches/scenarios/passthrough.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        // TLS against plaintext, keep-alive and a full handshake per request, beside nginx
        // (see `compare_tls`).
        name: "tls",
        config: include_str!("../../benches/scenarios/passthrough.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        // The passthrough load to a mock serving HTTPS, as every real provider does: the
        // gateway verifies it against the bench's CA (`network_config.ca_cert_pem`), and so
        // does nginx (`proxy_ssl_verify`), both keeping upstream connections alive.
        name: "upstream-tls",
        config: include_str!("../../benches/scenarios/passthrough.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "passthrough-stream",
        config: include_str!("../../benches/scenarios/passthrough-stream.yaml"),
        model: "openai/gpt-4o-mini",
        stream: true,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "governance",
        config: include_str!("../../benches/scenarios/governance.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[("authorization", "Bearer sk-bf-bench-key")],
        client: ClientApi::Chat,
    },
    Scenario {
        // Governance with a PostgreSQL store, cluster mode off: the baseline for `cluster`.
        name: "governance-postgres",
        config: include_str!("../../benches/scenarios/governance-postgres.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[("authorization", "Bearer sk-bf-bench-key")],
        client: ClientApi::Chat,
    },
    Scenario {
        // Governance leased from a shared PostgreSQL store (`governance.cluster`), one node.
        name: "cluster",
        config: include_str!("../../benches/scenarios/cluster.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[("authorization", "Bearer sk-bf-bench-key")],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "logged",
        config: include_str!("../../benches/scenarios/logged.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[("authorization", "Bearer sk-bf-bench-key")],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "routing-rules",
        config: include_str!("../../benches/scenarios/routing-rules.yaml"),
        model: "openai/gpt-4o-mini",
        stream: false,
        skip: None,
        gateway_headers: &[("authorization", "Bearer sk-bf-bench-key")],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "anthropic-stream",
        config: include_str!("../../benches/scenarios/anthropic-stream.yaml"),
        model: "anthropic/claude-3-5-haiku",
        stream: true,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "gemini-stream",
        config: include_str!("../../benches/scenarios/gemini-stream.yaml"),
        model: "gemini/gemini-2.0-flash",
        stream: true,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "bedrock-stream",
        config: include_str!("../../benches/scenarios/bedrock-stream.yaml"),
        model: "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
        stream: true,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Chat,
    },
    Scenario {
        name: "responses-stream",
        config: include_str!("../../benches/scenarios/responses-stream.yaml"),
        model: "anthropic/claude-3-5-haiku",
        stream: true,
        skip: None,
        gateway_headers: &[],
        client: ClientApi::Responses,
    },
];

/// One mock latency's results.
#[derive(Debug, Serialize)]
pub struct LatencyRun {
    /// Mock latency in ms.
    pub mock_latency_ms: u64,
    /// Load straight at the mock.
    pub direct: LoadReport,
    /// The same load through the gateway.
    pub gateway: LoadReport,
    /// Gateway minus direct, per latency percentile (µs).
    pub added_latency_us: SignedPercentiles,
    /// Gateway minus direct, time to first content chunk (streams, µs).
    pub added_first_content_us: Option<SignedPercentiles>,
    /// Gateway process CPU (user + system) per completed request, µs.
    pub gateway_cpu_us_per_request: f64,
    /// Gateway process CPU over the measured run, ms.
    pub gateway_cpu_ms: u64,
    /// Gateway peak resident memory, MiB.
    pub gateway_peak_rss_mb: f64,
    /// The same load through the reference proxy (`--reference nginx`), when measured.
    pub reference: Option<ReferenceRun>,
    /// Why the reference proxy was asked for but not measured.
    pub reference_skipped: Option<String>,
    /// At one request in flight with the gateway pinned: what cross-core wake-ups cost.
    pub wake_ups: Option<crate::wakeups::WakeUps>,
    /// Cluster mode: lease fetches the gateway made during the measured run.
    pub lease_fetches: Option<u64>,
}

/// The reference proxy's run: the direct run's requests through it, to the same mock.
#[derive(Debug, Serialize)]
pub struct ReferenceRun {
    /// `nginx`.
    pub name: String,
    /// Its load report.
    pub report: LoadReport,
    /// Its added latency over the direct run, per percentile (µs).
    pub added_latency_us: SignedPercentiles,
    /// Its CPU (user + system) per completed request, µs.
    pub cpu_us_per_request: f64,
    /// Its peak resident memory, MiB.
    pub peak_rss_mb: f64,
    /// The gateway's CPU per request over the reference's.
    pub gateway_cpu_ratio: f64,
}

/// The whole comparison.
#[derive(Debug, Serialize)]
pub struct CompareReport {
    /// Scenario name or config path.
    pub scenario: String,
    /// Whether the gateway was pinned, and where.
    pub gateway_cpu: Option<usize>,
    /// One entry per mock latency.
    pub runs: Vec<LatencyRun>,
    /// Scenarios skipped, with the reason (when a skipped scenario was asked for).
    pub skipped: Option<String>,
    /// The `tls` scenario's runs (it measures TLS against plaintext instead of the gateway
    /// against the mock).
    pub tls: Vec<crate::compare_tls::TlsRun>,
}

/// Kills the child when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the comparison.
pub async fn run(options: &CompareOptions) -> Result<CompareReport, CompareError> {
    let (label, config_text, model, scenario_stream, gateway_headers, client) = match &options.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CompareError::Config(format!("cannot read {}: {e}", path.display())))?;
            let model = options
                .model
                .clone()
                .unwrap_or_else(|| "openai/gpt-4o-mini".to_string());
            (
                path.display().to_string(),
                text,
                model,
                false,
                Vec::new(),
                ClientApi::Chat,
            )
        }
        None => {
            let scenario = SCENARIOS.iter().find(|s| s.name == options.scenario).ok_or_else(|| {
                CompareError::UnknownScenario(
                    options.scenario.clone(),
                    SCENARIOS.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
                )
            })?;
            if scenario.config.contains(crate::compare_setup::POSTGRES_ENV)
                && std::env::var_os(crate::compare_setup::POSTGRES_ENV).is_none()
            {
                return Err(CompareError::Config(format!(
                    "the {} scenario needs PostgreSQL: set {} to a connection string of a scratch database (postgres://... or host=... dbname=...)",
                    scenario.name,
                    crate::compare_setup::POSTGRES_ENV
                )));
            }
            if let Some(reason) = scenario.skip {
                return Ok(CompareReport {
                    scenario: scenario.name.to_string(),
                    gateway_cpu: options.gateway_cpu,
                    runs: Vec::new(),
                    skipped: Some(format!("scenario {} skipped: {reason}", scenario.name)),
                    tls: Vec::new(),
                });
            }
            let model = options.model.clone().unwrap_or_else(|| scenario.model.to_string());
            let headers = scenario
                .gateway_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (
                scenario.name.to_string(),
                scenario.config.to_string(),
                model,
                scenario.stream,
                headers,
                scenario.client,
            )
        }
    };
    let stream = options.stream.unwrap_or(scenario_stream);
    let base_config = asbru_config::load_str(&config_text, &label)
        .map_err(|e| CompareError::Config(e.to_string()))?
        .config;
    let mut runs = Vec::new();
    if options.config.is_none() && options.scenario == "tls" {
        if options.connections.is_some() {
            return Err(CompareError::Config(
                "the tls scenario runs at a fixed --rate (its handshake run opens a connection per request)".into(),
            ));
        }
        let mut tls = Vec::new();
        for &latency_ms in &options.latencies_ms {
            tls.push(crate::compare_tls::run_one(options, &base_config, &model, latency_ms).await?);
        }
        return Ok(CompareReport {
            scenario: label,
            gateway_cpu: options.gateway_cpu,
            runs,
            skipped: None,
            tls,
        });
    }
    for &latency_ms in &options.latencies_ms {
        let request = GatewayRequest {
            model: &model,
            stream,
            client,
            headers: &gateway_headers,
        };
        runs.push(run_one(options, &base_config, &request, latency_ms).await?);
    }
    Ok(CompareReport {
        scenario: label,
        gateway_cpu: options.gateway_cpu,
        runs,
        skipped: None,
        tls: Vec::new(),
    })
}

/// The chat body's prompt in Bedrock Converse's shape (the model and streaming are in the URL).
fn converse_body() -> Bytes {
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": "Say hello in one short sentence."}]}],
        "inferenceConfig": {"maxTokens": 32},
    });
    Bytes::from(body.to_string())
}

/// The chat body's prompt in Gemini's shape (the model and streaming are in the URL).
fn gemini_body() -> Bytes {
    let body = serde_json::json!({
        "contents": [{"role": "user", "parts": [{"text": "Say hello in one short sentence."}]}],
        "generationConfig": {"maxOutputTokens": 32},
    });
    Bytes::from(body.to_string())
}

/// The same prompt as a Responses API request.
fn responses_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "input": "Say hello in one short sentence.",
        "max_output_tokens": 32,
        "store": false,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

/// What one run sends through the gateway.
struct GatewayRequest<'a> {
    model: &'a str,
    stream: bool,
    client: ClientApi,
    headers: &'a [(String, String)],
}

fn free_addr() -> Result<std::net::SocketAddr, CompareError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CompareError::Start(format!("no free port: {e}")))
}

fn write_gateway_config(base: &Config, mock_url: &str, listen: &str) -> Result<PathBuf, CompareError> {
    let config = gateway_config(base, mock_url, listen);
    let path = std::env::temp_dir().join(format!(
        "asbru-bench-{}-{}.json",
        std::process::id(),
        listen.replace([':', '.'], "-")
    ));
    let text = serde_json::to_string_pretty(&config).map_err(|e| CompareError::Config(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| CompareError::Start(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn start_gateway(bin: &Path, config: &Path, cpu: Option<usize>, reseed: bool) -> Result<ChildGuard, CompareError> {
    let mut command = process::pinned(bin, cpu);
    command.arg("serve").arg("--config").arg(config);
    if reseed {
        // A store kept from an earlier run names that run's mock: this run's file wins.
        command.arg("--reseed");
    }
    command
        .env("ASBRU_LOG", "warn")
        .env_remove("ASBRU_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = command
        .spawn()
        .map_err(|e| CompareError::Start(format!("cannot start the gateway {}: {e}", bin.display())))?;
    Ok(ChildGuard(child))
}

async fn run_one(
    options: &CompareOptions,
    base: &Config,
    request: &GatewayRequest<'_>,
    latency_ms: u64,
) -> Result<LatencyRun, CompareError> {
    let (model, stream, gateway_headers) = (request.model, request.stream, request.headers);
    let files = std::env::temp_dir().join(format!("asbru-bench-files-{}-{latency_ms}", std::process::id()));
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(&files)
        .map_err(|e| CompareError::Start(format!("cannot make {}: {e}", files.display())))?;
    let upstream_ca = match options.config.is_none() && options.scenario == "upstream-tls" {
        true => Some(crate::upstream_tls::make(&files)?),
        false => None,
    };
    let mock = mock::spawn(
        "127.0.0.1:0"
            .parse()
            .map_err(|_| CompareError::Start("bad mock address".into()))?,
        MockOptions {
            latency: Duration::from_millis(latency_ms),
            tls: upstream_ca.as_ref().map(|ca| ca.server.clone()),
            ..MockOptions::default()
        },
    )
    .map_err(|e| CompareError::Start(format!("cannot start the mock provider: {e}")))?;
    let gateway_addr = free_addr()?;
    let mut base = base.clone();
    if let Some(ca) = &upstream_ca {
        for provider in base.providers.values_mut() {
            provider.network_config.ca_cert_pem = Some(ca.ca_pem.clone());
        }
    }
    let _scratch = crate::compare_setup::Scratch(gateway_addr.to_string());
    let config_path = write_gateway_config(&base, &mock.base_url(), &gateway_addr.to_string())?;
    let with_store = base.config_store.as_ref().is_some_and(|s| s.enabled);
    let gateway = start_gateway(&options.gateway_bin, &config_path, options.gateway_cpu, with_store)?;
    let ready = tokio::task::spawn_blocking(move || super::process::wait_ready(gateway_addr)).await;
    let _ = std::fs::remove_file(&config_path);
    if !matches!(ready, Ok(true)) {
        return Err(CompareError::Start(format!(
            "the gateway did not become ready on {gateway_addr}"
        )));
    }
    let pid = gateway.0.id();
    let upstream_model = model.split_once('/').map(|(_, m)| m).unwrap_or(model);
    let load_options = |url: String, body: Bytes, duration: Duration, headers: &[(String, String)]| LoadOptions {
        url,
        rate: options.rate,
        duration,
        max_in_flight: options.max_in_flight,
        body: Some(body),
        headers: headers.to_vec(),
        stream,
        timeout: Duration::from_secs(30),
        allow_remote: false,
        fresh_connections: 0.0,
        connections: options.connections,
    };
    // The direct run speaks the upstream's own wire to the mock.
    let (direct_url, direct_body) = match model.split_once('/').map(|(p, _)| p) {
        Some("anthropic") => (
            format!("{}/v1/messages", mock.base_url()),
            chat_body(upstream_model, stream, options.body_size),
        ),
        Some("gemini") => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            let url = format!("{}/v1beta/models/{upstream_model}:{method}", mock.base_url());
            (url, gemini_body())
        }
        Some("bedrock") => {
            let action = if stream { "converse-stream" } else { "converse" };
            let model = upstream_model.replace(':', "%3A").replace('/', "%2F");
            (format!("{}/model/{model}/{action}", mock.base_url()), converse_body())
        }
        _ => (
            format!("{}/v1/chat/completions", mock.base_url()),
            chat_body(upstream_model, stream, options.body_size),
        ),
    };
    // The mock's Bedrock runtime wants credentials: the direct run shows a Bedrock API key.
    let direct_headers = [("authorization".to_string(), "Bearer bench-direct".to_string())];
    // The chat body is also a valid Messages body (model, messages, max_tokens, stream).
    let (gateway_url, gateway_body) = match request.client {
        ClientApi::Chat => (
            format!("http://{gateway_addr}/v1/chat/completions"),
            chat_body(model, stream, options.body_size),
        ),
        ClientApi::Responses => (
            format!("http://{gateway_addr}/v1/responses"),
            responses_body(model, stream),
        ),
    };

    if !options.warmup.is_zero() {
        load::run(&load_options(
            direct_url.clone(),
            direct_body.clone(),
            options.warmup,
            &direct_headers,
        ))
        .await?;
        let warm = load_options(
            gateway_url.clone(),
            gateway_body.clone(),
            options.warmup,
            gateway_headers,
        );
        load::run(&warm).await?;
    }
    let (reference_path, reference_body) = (direct_url.clone(), direct_body.clone());
    let direct = load::run(&load_options(
        direct_url,
        direct_body,
        options.duration,
        &direct_headers,
    ))
    .await?;
    // Priced with a plain-HTTP mock, so only against a plain-HTTP direct run.
    let wake_ups = match (options.connections, options.gateway_cpu) {
        (Some(1), Some(cpu)) if upstream_ca.is_none() => Some(
            crate::wakeups::measure(
                &options.gateway_bin,
                cpu,
                Duration::from_millis(latency_ms),
                &load_options(
                    reference_path.clone(),
                    reference_body.clone(),
                    options.duration,
                    &direct_headers,
                ),
                options.warmup,
                &direct.latency_us,
            )
            .await?,
        ),
        _ => None,
    };
    let fetches_before = crate::compare_setup::lease_fetches(gateway_addr).await;
    let cpu_before = process::cpu_time(pid).unwrap_or_default();
    let through = load::run(&load_options(
        gateway_url,
        gateway_body,
        options.duration,
        gateway_headers,
    ))
    .await?;
    let cpu_after = process::cpu_time(pid).unwrap_or_default();
    let lease_fetches = match (fetches_before, crate::compare_setup::lease_fetches(gateway_addr).await) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let rss = process::peak_rss(pid).unwrap_or(0);
    drop(gateway);
    // The reference proxy runs after the gateway has stopped, on the same CPU, to the same mock,
    // with the direct run's requests.
    let (reference, reference_skipped) = match options.reference.as_deref() {
        None => (None, None),
        Some(_) => match crate::nginx::binary() {
            None => (None, Some("nginx is not installed".to_string())),
            Some(bin) => {
                let mock_base = mock.base_url();
                let path = reference_path.trim_start_matches(mock_base.as_str()).to_string();
                let dir = std::env::temp_dir().join(format!("asbru-bench-nginx-{}-{latency_ms}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| CompareError::Start(format!("cannot make {}: {e}", dir.display())))?;
                let nginx = crate::nginx::start(
                    &bin,
                    &dir,
                    mock_base.trim_start_matches("http://").trim_start_matches("https://"),
                    options.gateway_cpu,
                    None,
                    upstream_ca.as_ref().map(|ca| ca.ca_file.as_path()),
                )
                .map_err(CompareError::Start)?;
                let url = format!("http://{}{path}", nginx.plain);
                if !options.warmup.is_zero() {
                    load::run(&load_options(
                        url.clone(),
                        reference_body.clone(),
                        options.warmup,
                        &direct_headers,
                    ))
                    .await?;
                }
                let before = process::cpu_time(nginx.pid()).unwrap_or_default();
                let report = load::run(&load_options(url, reference_body, options.duration, &direct_headers)).await?;
                let spent = process::cpu_time(nginx.pid())
                    .unwrap_or_default()
                    .saturating_sub(before);
                let peak = process::peak_rss(nginx.pid()).unwrap_or(0);
                drop(nginx);
                let _ = std::fs::remove_dir_all(&dir);
                let per_request = process::cpu_us_per_request(spent, report.completed);
                let gateway_cpu = process::cpu_us_per_request(cpu_after.saturating_sub(cpu_before), through.completed);
                (
                    Some(ReferenceRun {
                        name: "nginx".into(),
                        added_latency_us: report.latency_us.minus(&direct.latency_us),
                        cpu_us_per_request: per_request,
                        peak_rss_mb: process::mib(peak),
                        gateway_cpu_ratio: if per_request > 0.0 {
                            (gateway_cpu / per_request * 100.0).round() / 100.0
                        } else {
                            0.0
                        },
                        report,
                    }),
                    None,
                )
            }
        },
    };
    drop(mock);
    let _ = std::fs::remove_dir_all(&files);

    let cpu = cpu_after.saturating_sub(cpu_before);

    let added_first_content_us = match (&through.first_content_us, &direct.first_content_us) {
        (Some(g), Some(d)) => Some(g.minus(d)),
        _ => None,
    };
    Ok(LatencyRun {
        mock_latency_ms: latency_ms,
        added_latency_us: through.latency_us.minus(&direct.latency_us),
        added_first_content_us,
        gateway_cpu_us_per_request: process::cpu_us_per_request(cpu, through.completed),
        gateway_cpu_ms: u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX),
        gateway_peak_rss_mb: process::mib(rss),
        direct,
        gateway: through,
        reference,
        reference_skipped,
        wake_ups,
        lease_fetches,
    })
}

fn percentile_row(name: &str, p: &Percentiles) -> String {
    format!(
        "  {name:<14} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max)
    )
}

fn signed_row(name: &str, p: &SignedPercentiles) -> String {
    let f = |v: i64| format!("{v:+}µs");
    format!(
        "  {name:<14} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        f(p.p50),
        f(p.p90),
        f(p.p99),
        f(p.p999),
        f(p.max)
    )
}

impl CompareReport {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        if let Some(skipped) = &self.skipped {
            return format!("{skipped}\n");
        }
        let mut out = String::new();
        for run in &self.tls {
            out.push_str(&run.table());
        }
        for run in &self.runs {
            out.push_str(&format!(
                "scenario {}  mock latency {} ms  {} for {}s{}{}\n",
                self.scenario,
                run.mock_latency_ms,
                run.gateway.load_shape(),
                run.gateway.duration_s,
                if run.gateway.stream { "  (stream)" } else { "" },
                self.gateway_cpu
                    .map(|c| format!("  gateway pinned to cpu {c}"))
                    .unwrap_or_default()
            ));
            out.push_str(&format!(
                "  {:<14} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                "latency", "p50", "p90", "p99", "p99.9", "max"
            ));
            out.push_str(&percentile_row("direct", &run.direct.latency_us));
            out.push_str(&percentile_row("gateway", &run.gateway.latency_us));
            out.push_str(&signed_row("added", &run.added_latency_us));
            if let Some(added) = &run.added_first_content_us {
                out.push_str(&signed_row("added 1st chunk", added));
            }
            out.push_str(&format!(
                "  throughput     direct {:.1}/s  gateway {:.1}/s  (gateway statuses {:?}, errors {:?})\n",
                run.direct.achieved_rate, run.gateway.achieved_rate, run.gateway.status_counts, run.gateway.errors
            ));
            out.push_str(&format!(
                "  gateway        {:.1} µs CPU per request ({} ms over {} requests), peak RSS {:.1} MiB\n",
                run.gateway_cpu_us_per_request, run.gateway_cpu_ms, run.gateway.completed, run.gateway_peak_rss_mb
            ));
            if let Some(reference) = &run.reference {
                out.push_str(&signed_row(
                    &format!("{} added", reference.name),
                    &reference.added_latency_us,
                ));
                out.push_str(&format!(
                    "  {:<14} {:.1} µs CPU per request, peak RSS {:.1} MiB (statuses {:?}, errors {:?}); gateway/{} CPU {:.2}×\n",
                    reference.name,
                    reference.cpu_us_per_request,
                    reference.peak_rss_mb,
                    reference.report.status_counts,
                    reference.report.errors,
                    reference.name,
                    reference.gateway_cpu_ratio
                ));
            }
            if let Some(w) = &run.wake_ups {
                out.push_str(&format!(
                    "  wake-ups       one cross-core round trip {:+}µs at p50 (mock on the gateway's core: {}); a proxy's path has two: {:+}µs of its added p50\n",
                    w.round_trip_us,
                    fmt_us(w.cross_core.p50),
                    w.proxy_path_us
                ));
            }
            if let Some(fetches) = run.lease_fetches {
                out.push_str(&format!(
                    "  cluster        {fetches} lease fetches in the measured run ({:.1}/s)\n",
                    fetches as f64 / run.gateway.duration_s.max(f64::EPSILON)
                ));
            }
            if let Some(why) = &run.reference_skipped {
                out.push_str(&format!("  reference      not measured: {why}\n"));
            }
            out.push('\n');
        }
        out
    }
}
