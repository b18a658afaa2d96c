//! The `tls` scenario of `asbru bench compare`: what TLS costs the gateway. One gateway serves
//! plaintext and TLS listeners with a certificate the bench makes (ECDSA P-256); the same load
//! runs three times against it, and against nginx terminating TLS with the same certificate
//! when `nginx` is installed, all in one run:
//!
//! - plaintext, keep-alive: the baseline;
//! - TLS, keep-alive: what encryption adds per request;
//! - TLS, a new connection per request: a full handshake each time (the client offers no
//!   session resumption), so this minus the keep-alive figure is the handshake's cost.
//!
//! CPU is the server process's user + system time over each measured run, per completed
//! request. nginx runs as one process (`master_process off`, one worker), pinned like the
//! gateway.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use asbru_config::Config;
use bytes::Bytes;
use serde::Serialize;

use crate::compare_setup::{CompareError, CompareOptions, chat_body, gateway_config};
use crate::load::{self, LoadOptions};
use crate::mock::{self, MockOptions};
use crate::process;
use crate::report::LoadReport;

/// One proxy's costs.
#[derive(Debug, Serialize)]
pub struct TlsCosts {
    /// CPU µs per request, plaintext keep-alive.
    pub plain_cpu_us: f64,
    /// CPU µs per request, TLS keep-alive.
    pub tls_cpu_us: f64,
    /// CPU µs per request, TLS with a full handshake per request.
    pub new_connection_cpu_us: f64,
    /// `new_connection_cpu_us - tls_cpu_us`: one full handshake.
    pub handshake_cpu_us: f64,
    /// Median latency of each run, µs: plaintext, TLS keep-alive, TLS new connection.
    pub p50_us: [u64; 3],
    /// Requests that failed or did not get a 200, over the three runs.
    pub failed: u64,
}

/// The `tls` scenario at one mock latency.
#[derive(Debug, Serialize)]
pub struct TlsRun {
    /// Mock latency in ms.
    pub mock_latency_ms: u64,
    /// Requests per second of each run.
    pub rate: f64,
    /// asbru.
    pub asbru: TlsCosts,
    /// nginx `proxy_pass` terminating TLS with the same certificate.
    pub nginx: Option<TlsCosts>,
    /// Why nginx was not measured.
    pub nginx_skipped: Option<String>,
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_error(what: &str, e: impl std::fmt::Display) -> CompareError {
    CompareError::Start(format!("{what}: {e}"))
}

/// A self-signed certificate for `localhost`, written under `dir`.
fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), CompareError> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| start_error("cannot make the bench certificate", e))?;
    let (cert, key) = (dir.join("bench.pem"), dir.join("bench.key"));
    std::fs::write(&cert, certified.cert.pem()).map_err(|e| start_error("cannot write the certificate", e))?;
    std::fs::write(&key, certified.key_pair.serialize_pem()).map_err(|e| start_error("cannot write the key", e))?;
    Ok((cert, key))
}

fn free_addr() -> Result<std::net::SocketAddr, CompareError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| start_error("no free port", e))
}

/// Runs the three loads against one server process; `paths` are the plaintext and TLS URLs.
async fn measure(
    options: &CompareOptions,
    pid: u32,
    plain_url: String,
    tls_url: String,
    body: Bytes,
) -> Result<TlsCosts, CompareError> {
    let load = |url: String, duration: Duration, fresh: f64| LoadOptions {
        url,
        rate: options.rate,
        duration,
        max_in_flight: options.max_in_flight,
        body: Some(body.clone()),
        headers: Vec::new(),
        stream: false,
        timeout: Duration::from_secs(30),
        allow_remote: false,
        fresh_connections: fresh,
        connections: None,
    };
    let runs = [(plain_url, 0.0), (tls_url.clone(), 0.0), (tls_url, 1.0)];
    let mut cpu = [0.0f64; 3];
    let mut p50 = [0u64; 3];
    let mut failed = 0;
    for (i, (url, fresh)) in runs.into_iter().enumerate() {
        if !options.warmup.is_zero() {
            load::run(&load(url.clone(), options.warmup, fresh)).await?;
        }
        let before = process::cpu_time(pid).unwrap_or_default();
        let report: LoadReport = load::run(&load(url, options.duration, fresh)).await?;
        let spent = process::cpu_time(pid).unwrap_or_default().saturating_sub(before);
        let ok = report.status_counts.get(&200).copied().unwrap_or(0);
        failed += report.scheduled.saturating_sub(ok);
        cpu[i] = process::cpu_us_per_request(spent, report.completed);
        p50[i] = report.latency_us.p50;
    }
    Ok(TlsCosts {
        plain_cpu_us: cpu[0],
        tls_cpu_us: cpu[1],
        new_connection_cpu_us: cpu[2],
        handshake_cpu_us: ((cpu[2] - cpu[1]) * 10.0).round() / 10.0,
        p50_us: p50,
        failed,
    })
}

/// The `tls` scenario at `latency_ms`, with `base` (the passthrough scenario) as the
/// gateway's config and `model` requested through it.
pub async fn run_one(
    options: &CompareOptions,
    base: &Config,
    model: &str,
    latency_ms: u64,
) -> Result<TlsRun, CompareError> {
    let dir = std::env::temp_dir().join(format!("asbru-bench-tls-{}-{latency_ms}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| start_error("cannot make the bench directory", e))?;
    let (cert, key) = certificate(&dir)?;
    let upstream = mock::spawn(
        "127.0.0.1:0"
            .parse()
            .map_err(|_| CompareError::Start("bad mock address".into()))?,
        MockOptions {
            latency: Duration::from_millis(latency_ms),
            ..MockOptions::default()
        },
    )
    .map_err(|e| start_error("cannot start the mock provider", e))?;
    let upstream_model = model.split_once('/').map_or(model, |(_, m)| m);

    // asbru: a plaintext and a TLS listener.
    let (plain, tls) = (free_addr()?, free_addr()?);
    let _scratch = crate::compare_setup::Scratch(plain.to_string());
    let mut config = gateway_config(base, &upstream.base_url(), &plain.to_string());
    config.server.tls = Some(asbru_config::model::TlsConfig {
        cert_file: cert.display().to_string(),
        key_file: key.display().to_string(),
        certificates: Vec::new(),
    });
    config.server.listeners = vec![listener(&plain.to_string(), false), listener(&tls.to_string(), true)];
    let config_path = dir.join("asbru.json");
    let text = serde_json::to_string_pretty(&config).map_err(|e| CompareError::Config(e.to_string()))?;
    std::fs::write(&config_path, text).map_err(|e| start_error("cannot write the gateway config", e))?;
    let gateway = {
        let mut command = process::pinned(&options.gateway_bin, options.gateway_cpu);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("ASBRU_LOG", "warn")
            .env_remove("ASBRU_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Guard(
            command
                .spawn()
                .map_err(|e| start_error("cannot start the gateway", e))?,
        )
    };
    if !tokio::task::spawn_blocking(move || process::wait_ready(plain))
        .await
        .unwrap_or(false)
    {
        return Err(CompareError::Start(format!(
            "the gateway did not become ready on {plain}"
        )));
    }
    let asbru = measure(
        options,
        gateway.0.id(),
        format!("http://{plain}/v1/chat/completions"),
        format!("https://localhost:{}/v1/chat/completions", tls.port()),
        chat_body(model, false, options.body_size),
    )
    .await?;
    drop(gateway);

    // nginx with the same certificate, in front of the same mock.
    let (nginx, nginx_skipped) = match crate::nginx::binary() {
        None => (None, Some("nginx is not installed".to_string())),
        Some(bin) => {
            let mock_addr = upstream.base_url().trim_start_matches("http://").to_string();
            let server = crate::nginx::start(&bin, &dir, &mock_addr, options.gateway_cpu, Some((&cert, &key)), None)
                .map_err(CompareError::Start)?;
            let tls_port = server.tls.map_or(0, |a| a.port());
            let costs = measure(
                options,
                server.pid(),
                format!("http://{}/v1/chat/completions", server.plain),
                format!("https://localhost:{tls_port}/v1/chat/completions"),
                chat_body(upstream_model, false, options.body_size),
            )
            .await?;
            (Some(costs), None)
        }
    };
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TlsRun {
        mock_latency_ms: latency_ms,
        rate: options.rate,
        asbru,
        nginx,
        nginx_skipped,
    })
}

fn listener(address: &str, tls: bool) -> asbru_config::model::ListenerConfig {
    asbru_config::model::ListenerConfig {
        address: address.to_string(),
        tls: tls.then_some(asbru_config::model::ListenerTls::Enabled(true)),
        proxy_protocol: false,
        h2c: None,
        roles: vec![
            asbru_config::model::ListenerRole::Inference,
            asbru_config::model::ListenerRole::Admin,
        ],
    }
}

impl TlsRun {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "scenario tls  mock latency {} ms  rate {}/s\n  {:<8} {:>12} {:>12} {:>16} {:>12} {:>22}\n",
            self.mock_latency_ms,
            self.rate,
            "proxy",
            "plain µs",
            "TLS µs",
            "new conn. µs",
            "handshake",
            "p50 plain/TLS/new µs"
        );
        let row = |name: &str, c: &TlsCosts| {
            format!(
                "  {:<8} {:>12.1} {:>12.1} {:>16.1} {:>12.1} {:>22}{}\n",
                name,
                c.plain_cpu_us,
                c.tls_cpu_us,
                c.new_connection_cpu_us,
                c.handshake_cpu_us,
                format!("{}/{}/{}", c.p50_us[0], c.p50_us[1], c.p50_us[2]),
                if c.failed > 0 {
                    format!("  ({} failed)", c.failed)
                } else {
                    String::new()
                }
            )
        };
        out.push_str(&row("asbru", &self.asbru));
        match (&self.nginx, &self.nginx_skipped) {
            (Some(nginx), _) => {
                out.push_str(&row("nginx", nginx));
                let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}×", a / b) } else { "-".into() };
                out.push_str(&format!(
                    "  asbru/nginx CPU: plain {}  TLS {}  handshake {}\n",
                    ratio(self.asbru.plain_cpu_us, nginx.plain_cpu_us),
                    ratio(self.asbru.tls_cpu_us, nginx.tls_cpu_us),
                    ratio(self.asbru.handshake_cpu_us, nginx.handshake_cpu_us)
                ));
            }
            (None, Some(why)) => out.push_str(&format!("  nginx: not measured ({why})\n")),
            (None, None) => {}
        }
        out.push('\n');
        out
    }
}
