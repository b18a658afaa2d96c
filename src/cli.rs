//! The command line: `serve`, `check`, `bench mock`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use asbru_config::{Config, ConfigError, file};
use clap::{Args, Parser, Subcommand};

use asbru_bench::compare::{self, CompareOptions, CompareReport};
use asbru_bench::load::{self, LoadOptions};
use asbru_bench::mock::{self, MockOptions};
use asbru_bench::report::LoadReport;

/// asbru, an LLM gateway: one OpenAI-compatible API in front of every provider.
#[derive(Debug, Parser)]
#[command(name = "asbru", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Validate a config file and report every problem with its line and column.
    Check(CheckArgs),
    /// Apply the config store's migrations (SQLite or PostgreSQL, per `config_store`) and exit.
    Migrate(MigrateArgs),
    /// Bundled bench tools.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print the version.
    Version,
}

/// `asbru serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (YAML or JSON). Without one, asbru starts on defaults with no providers.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address, overriding the file's `server.listen`.
    #[arg(short, long, value_name = "ADDR", env = "ASBRU_LISTEN")]
    pub listen: Option<String>,
    /// Replace the config store's providers and governance with the file's.
    #[arg(long)]
    pub reseed: bool,
    /// Listen host (Bifrost's `-host`); with `--port` it overrides `server.listen`.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Listen port (Bifrost's `-port`).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Data directory (Bifrost's `-app-dir`): the stores live there, and its `config.json` is
    /// read when no `--config` is given.
    #[arg(long, value_name = "DIR")]
    pub app_dir: Option<PathBuf>,
    /// Log level (Bifrost's `-log-level`: debug, info, warn, error); `ASBRU_LOG` wins.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format (Bifrost's `-log-style`: `json` or `pretty`).
    #[arg(long, value_name = "STYLE")]
    pub log_style: Option<String>,
    /// Zero-downtime upgrade: take the listening sockets over from the running asbru (send it
    /// SIGQUIT once this one is waiting) through `server.upgrade_sock`.
    #[arg(long)]
    pub upgrade: bool,
}

/// `asbru check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file to validate.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// `text` (default) or `json`: one object with `ok`, `problems` (file, line, column,
    /// reason), `warnings`, and the summary.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// `asbru migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Config file naming the store. Without one: SQLite at ./asbru-data/config.db.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `asbru bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the mock OpenAI-wire provider (chat JSON and SSE, embeddings, models, /mock/stats).
    Mock(MockArgs),
    /// Open-loop load at a fixed rate; latency measured from each request's intended send time.
    Load(LoadArgs),
    /// The same load straight at a mock and through a gateway: added latency, CPU per request, RSS.
    Compare(CompareArgs),
}

/// `asbru bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL (http only; loopback unless --allow-remote).
    #[arg(long)]
    pub url: String,
    /// Requests per second, sent on schedule whatever the responses do.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to send, in seconds (at most 3600).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Requests in flight at once; beyond it sends wait and their latency counts the wait.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Request body file (POST). Without it, GET.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// Extra header `K:V`; repeatable.
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
    /// Read responses as SSE: time to first byte, to first content chunk, and gaps between chunks.
    #[arg(long)]
    pub stream: bool,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Allow a target that is not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Share of requests (0 to 1) sent on a new connection each, closed after; the rest
    /// reuse keep-alive connections.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub fresh_connections: f64,
    /// Closed loop instead of a fixed rate: this many keep-alive connections, each sending its
    /// next request as soon as the previous response ends (saturation).
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub connections: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `asbru bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Bundled scenario: passthrough, passthrough-stream, governance, anthropic-stream.
    #[arg(long, default_value = "passthrough")]
    pub scenario: String,
    /// A gateway config file to benchmark instead of a bundled scenario (its providers are pointed at the mock).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model to request through the gateway (default: the scenario's).
    #[arg(long)]
    pub model: Option<String>,
    /// Mock latencies to run, in ms, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,50")]
    pub latency_ms: Vec<u64>,
    /// Requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up seconds before each measured run.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Force streaming responses (default: the scenario's).
    #[arg(long)]
    pub stream: bool,
    /// Pin the gateway process to this CPU with `taskset`.
    #[arg(long, value_name = "CPU")]
    pub gateway_cpu: Option<usize>,
    /// Also run the direct run's load through a reference proxy to the same mock, pinned like
    /// the gateway, and report the gateway's CPU per request as a ratio of its (`nginx`, when
    /// installed).
    #[arg(long, value_name = "PROXY", value_parser = ["nginx"])]
    pub reference: Option<String>,
    /// Pad chat and Messages request bodies to about this many bytes (e.g. 16384).
    #[arg(long, value_name = "BYTES")]
    pub body_size: Option<usize>,
    /// Closed loop instead of --rate: this many keep-alive connections, each sending its next
    /// request as soon as the previous response ends; reports CPU per request at saturation.
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub connections: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `asbru bench mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Delay before each response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Content chunks per streamed chat response.
    #[arg(long, default_value_t = 5)]
    pub chunks: u32,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Fraction (0..1) of inference requests that fail with --fail-status.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// HTTP status used for failures.
    #[arg(long, default_value_t = 503)]
    pub fail_status: u16,
    /// Fail the first N inference requests (deterministic failures).
    #[arg(long, default_value_t = 0)]
    pub fail_first: u64,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(bifrost_arguments(std::env::args_os().collect()));
    let (level, style) = match &cli.command {
        Command::Serve(args) => (args.log_level.as_deref(), args.log_style.as_deref()),
        _ => (None, None),
    };
    // Commands other than `serve` print their results on stdout (tables, `--json`); their logs
    // go to stderr so that the results stay parseable.
    init_logging(level, style, matches!(cli.command, Command::Serve(_)));
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Migrate(args) => migrate(args),
        Command::Bench(BenchCommand::Mock(args)) => run_mock(args),
        Command::Bench(BenchCommand::Load(args)) => run_load(args),
        Command::Bench(BenchCommand::Compare(args)) => run_compare(args),
        Command::Version => {
            println!("asbru {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// Modules whose verbose levels print request headers or SQL parameters (provider keys, virtual
/// keys): capped whatever `ASBRU_LOG` asks, so no level ever writes a secret.
const QUIET_MODULES: [&str; 4] = [
    "pingora_core::protocols=info",
    "pingora_proxy=info",
    "tokio_postgres=info",
    "postgres=info",
];

/// Bifrost's command line (`bifrost -app-dir ./data -port 8080 -log-level info`, no
/// subcommand, single-dash flags) as asbru's: `serve` with the same flags spelled `--app-dir`,
/// `--port`, ... A command line that starts with a subcommand or `--help`/`--version` is kept.
pub fn bifrost_arguments(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const FLAGS: [&str; 6] = ["config", "port", "host", "app-dir", "log-level", "log-style"];
    let Some(first) = args.get(1).and_then(|a| a.to_str()) else {
        return args;
    };
    let bare = first.trim_start_matches('-');
    let name = bare.split('=').next().unwrap_or_default();
    if !first.starts_with('-') || !FLAGS.contains(&name) {
        return args;
    }
    let mut out = vec![args[0].clone(), "serve".into()];
    for arg in &args[1..] {
        match arg.to_str() {
            Some(text) if text.starts_with('-') && !text.starts_with("--") => {
                let flag = text.trim_start_matches('-');
                let name = flag.split('=').next().unwrap_or_default();
                if FLAGS.contains(&name) {
                    out.push(format!("--{flag}").into());
                    continue;
                }
                out.push(arg.clone());
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

fn init_logging(level: Option<&str>, style: Option<&str>, to_stdout: bool) {
    let level = match level.map(str::to_ascii_lowercase).as_deref() {
        Some("debug") => "debug",
        Some("warn" | "warning") => "warn",
        Some("error") => "error",
        _ => "info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("ASBRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    for directive in QUIET_MODULES {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let writer = tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
        if to_stdout {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::io::stderr())
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    let _ = if style == Some("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn serve(args: ServeArgs) -> ExitCode {
    // Bifrost reads `config.json` from its app dir when given no config file.
    let config_path = args.config.clone().or_else(|| {
        let candidate = args.app_dir.as_ref()?.join("config.json");
        candidate.is_file().then_some(candidate)
    });
    let mut config = match &config_path {
        Some(path) => match file::load_file(path) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                loaded.config
            }
            Err(e) => {
                eprintln!("error: invalid config\n{e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            tracing::info!("no --config given: starting on built-in defaults");
            Config::default()
        }
    };
    if let Some(dir) = &args.app_dir {
        config.server.data_dir = dir.display().to_string();
    }
    if args.host.is_some() || args.port.is_some() {
        let current: Option<std::net::SocketAddr> = config.server.listen.parse().ok();
        let host = args
            .host
            .clone()
            .or_else(|| current.map(|a| a.ip().to_string()))
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let host = if host == "localhost" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        let port = args.port.or(current.map(|a| a.port())).unwrap_or(8080);
        config.server.listen = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{host}:{port}"),
        };
    }
    if let Some(listen) = args.listen {
        if !config.server.listeners.is_empty() {
            tracing::warn!("--listen {listen} is not used: server.listeners names the listeners");
        }
        config.server.listen = listen;
    }
    let listen = config.server.listen.clone();
    let options = crate::server::StartOptions {
        reseed: args.reseed,
        upgrade: args.upgrade,
    };
    match crate::server::serve(&config, &listen, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let json = args.format == "json";
    let file_name = args.config.display().to_string();
    let (loaded, problems) = match file::load_file(&args.config) {
        Ok(loaded) => (Some(loaded), Vec::new()),
        Err(ConfigError::Invalid(problems)) => (None, problems),
        Err(e) => (
            None,
            vec![asbru_config::Problem {
                file: file_name.clone(),
                line: None,
                column: None,
                reason: e.to_string(),
            }],
        ),
    };
    let mut warnings = Vec::new();
    let mut problems = problems;
    let mut filters = Vec::new();
    if let Some(loaded) = &loaded {
        warnings.extend(loaded.warnings.iter().cloned());
        let services = crate::pipeline::Services {
            metrics: std::sync::Arc::new(asbru_filters::telemetry::Metrics::new()),
            request_log: None,
        };
        for e in crate::edge::tls::check(&loaded.config.server) {
            problems.push(asbru_config::Problem {
                file: file_name.clone(),
                line: None,
                column: None,
                reason: format!("TLS: {e}"),
            });
        }
        match crate::pipeline::build(loaded.config.plugins.as_ref(), &services) {
            Ok((chain, plugin_warnings)) => {
                warnings.extend(plugin_warnings);
                filters = chain.names().into_iter().map(str::to_string).collect();
            }
            Err(e) => problems.push(asbru_config::Problem {
                file: file_name.clone(),
                line: None,
                column: None,
                reason: e.to_string(),
            }),
        }
    }
    let summary = loaded.as_ref().map(|l| check_summary(&l.config));
    if json {
        let report = serde_json::json!({
            "file": file_name,
            "ok": problems.is_empty(),
            "problems": problems.iter().map(|p| serde_json::json!({
                "file": p.file, "line": p.line, "column": p.column, "reason": p.reason,
            })).collect::<Vec<_>>(),
            "warnings": warnings,
            "filters": filters,
            "summary": summary,
        });
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for warning in &warnings {
            println!("warning: {warning}");
        }
        for problem in &problems {
            eprintln!("{problem}");
        }
        if let Some(summary) = &summary {
            println!("filters: {}", filters.join(", "));
            let serving = summary["providers"].as_array().map_or(String::new(), |p| {
                p.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            });
            if serving.is_empty() {
                println!("providers that will serve: none (no provider has a usable key; are its env variables set?)");
            } else {
                println!("providers that will serve: {serving}");
            }
            println!("config store: {}", summary["config_store"].as_str().unwrap_or("-"));
            println!("log store: {}", summary["logs_store"].as_str().unwrap_or("-"));
        }
        if problems.is_empty() {
            let count = loaded.as_ref().map_or(0, |l| l.config.providers.len());
            println!("{file_name}: ok ({count} providers)");
        } else {
            eprintln!("{} problem(s) found", problems.len());
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a loaded config will do: the providers that can serve (a usable key, or keyless) and
/// where the config store and the log store will live.
fn check_summary(config: &asbru_config::Config) -> serde_json::Value {
    let (snapshot, _) = asbru_filters::snapshot::Snapshot::build_with(config, &|name| std::env::var(name).ok());
    let mut providers: Vec<&str> = snapshot
        .providers
        .values()
        .filter(|p| p.keyless || !p.keys.is_empty())
        .map(|p| p.name.as_str())
        .collect();
    providers.sort_unstable();
    let data_dir = std::path::Path::new(&config.server.data_dir);
    let config_store = match &config.config_store {
        Some(section) if !section.enabled => "off (the file is the only source)".to_string(),
        Some(section) => describe_store(section.kind, &section.config, data_dir, "config.db"),
        None => describe_store(
            asbru_config::model::StoreKind::Sqlite,
            &Default::default(),
            data_dir,
            "config.db",
        ),
    };
    let logs = config.logs_store.clone().unwrap_or_default();
    let logs_store = if !logs.enabled || config.client.enable_logging == Some(false) {
        "off".to_string()
    } else {
        describe_store(logs.kind, &logs.config, data_dir, "logs.db")
    };
    serde_json::json!({"providers": providers, "config_store": config_store, "logs_store": logs_store})
}

/// `SQLite at <path>` or `PostgreSQL at host:port/db` (never a password).
fn describe_store(
    kind: asbru_config::model::StoreKind,
    conn: &asbru_config::model::StoreConnection,
    data_dir: &std::path::Path,
    default_file: &str,
) -> String {
    match kind {
        asbru_config::model::StoreKind::Sqlite => {
            let path = conn
                .path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join(default_file));
            let absolute = std::path::absolute(&path).unwrap_or(path);
            format!("SQLite at {}", absolute.display())
        }
        asbru_config::model::StoreKind::Postgres => match &conn.url {
            Some(url) => format!("PostgreSQL at {}", asbru_config::file::display_url(url)),
            None => format!(
                "PostgreSQL at {}:{}/{}",
                conn.host.as_deref().unwrap_or("localhost"),
                conn.port
                    .as_ref()
                    .map_or("5432".to_string(), |p| p.to_string().trim_matches('"').to_string()),
                conn.db_name.as_deref().unwrap_or("-")
            ),
        },
    }
}

fn run_mock(args: MockArgs) -> ExitCode {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        eprintln!("error: --fail-rate must be between 0 and 1");
        return ExitCode::FAILURE;
    }
    let options = MockOptions {
        latency: Duration::from_millis(args.latency_ms),
        chunks: args.chunks,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        fail_rate: args.fail_rate,
        fail_status: args.fail_status,
        fail_first: args.fail_first,
        ..MockOptions::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        tracing::info!("mock provider listening on http://{}", args.listen);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let serving = tokio::spawn(mock::serve(listener, mock::MockState::new(options), stop_rx));
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        let _ = serving.await;
        ExitCode::SUCCESS
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start a runtime: {e}");
            ExitCode::FAILURE
        })
}

fn seconds(value: f64, flag: &str) -> Result<Duration, ExitCode> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        eprintln!("error: {flag} must be a non-negative number of seconds");
        ExitCode::FAILURE
    })
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_load(args: LoadArgs) -> ExitCode {
    let prepared = (|| -> Result<LoadOptions, ExitCode> {
        let body = match &args.body {
            Some(path) => Some(bytes::Bytes::from(std::fs::read(path).map_err(|e| {
                eprintln!("error: cannot read {}: {e}", path.display());
                ExitCode::FAILURE
            })?)),
            None => None,
        };
        let headers = args
            .headers
            .iter()
            .map(|h| load::parse_header(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            })?;
        Ok(LoadOptions {
            url: args.url.clone(),
            rate: args.rate,
            duration: seconds(args.duration, "--duration")?,
            max_in_flight: args.max_in_flight,
            body,
            headers,
            stream: args.stream,
            timeout: seconds(args.timeout, "--timeout")?,
            allow_remote: args.allow_remote,
            fresh_connections: args.fresh_connections,
            connections: args.connections,
        })
    })();
    let options = match prepared {
        Ok(o) => o,
        Err(code) => return code,
    };
    run_interruptible(load::run(&options), args.json, "interrupted", LoadReport::table)
}

fn run_compare(args: CompareArgs) -> ExitCode {
    let gateway_bin = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the asbru binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (duration, warmup) = match (seconds(args.duration, "--duration"), seconds(args.warmup, "--warmup")) {
        (Ok(d), Ok(w)) => (d, w),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let options = CompareOptions {
        scenario: args.scenario,
        config: args.config,
        model: args.model,
        latencies_ms: args.latency_ms,
        rate: args.rate,
        duration,
        warmup,
        max_in_flight: args.max_in_flight,
        stream: args.stream.then_some(true),
        gateway_cpu: args.gateway_cpu,
        gateway_bin,
        reference: args.reference,
        body_size: args.body_size,
        connections: args.connections,
    };
    // Dropping the comparison (on Ctrl-C) kills the gateway child and stops the mock.
    run_interruptible(
        compare::run(&options),
        args.json,
        "interrupted; the gateway and mock were stopped",
        CompareReport::table,
    )
}

/// Runs a bench to completion or Ctrl-C, then prints its report as JSON or a table.
fn run_interruptible<R: serde::Serialize, E: std::fmt::Display>(
    work: impl std::future::Future<Output = Result<R, E>>,
    json: bool,
    interrupted: &str,
    table: fn(&R) -> String,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match result {
        None => {
            eprintln!("{interrupted}");
            ExitCode::FAILURE
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Some(Ok(report)) if json => print_json(&report),
        Some(Ok(report)) => {
            print!("{}", table(&report));
            ExitCode::SUCCESS
        }
    }
}

fn migrate(args: MigrateArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match file::load_file(path) {
            Ok(loaded) => loaded.config,
            Err(e) => {
                eprintln!("error: invalid config\n{e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    match asbru_store::backend::open(&config) {
        Ok(Some(store)) => match store.schema_version() {
            Ok(version) => {
                println!(
                    "config store is at schema version {version} (latest {})",
                    asbru_store::backend::latest_version()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("config store disabled (config_store.enabled: false): nothing to migrate");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod bifrost_flag_tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(|a| (*a).into()).collect()
    }

    #[test]
    fn bifrosts_command_line_becomes_serve() {
        let translated = bifrost_arguments(args(&[
            "asbru",
            "-app-dir",
            "/data",
            "-port",
            "8080",
            "-host=0.0.0.0",
            "-log-level",
            "debug",
        ]));
        assert_eq!(
            translated,
            args(&[
                "asbru",
                "serve",
                "--app-dir",
                "/data",
                "--port",
                "8080",
                "--host=0.0.0.0",
                "--log-level",
                "debug"
            ])
        );
        let cli = Cli::try_parse_from(translated).expect("parses");
        let Command::Serve(serve) = cli.command else {
            panic!("serve");
        };
        assert_eq!(serve.port, Some(8080));
        assert_eq!(serve.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(serve.app_dir.as_deref(), Some(std::path::Path::new("/data")));
        // asbru's own command lines are left alone.
        for kept in [
            &["asbru", "serve", "--config", "x.yaml"][..],
            &["asbru", "--help"][..],
            &["asbru", "check", "-c", "x.yaml"][..],
            &["asbru"][..],
        ] {
            assert_eq!(bifrost_arguments(args(kept)), args(kept));
        }
        assert_eq!(
            bifrost_arguments(args(&["asbru", "-config", "c.json"])),
            args(&["asbru", "serve", "--config", "c.json"])
        );
    }
}
