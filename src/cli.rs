//! The command line: `serve`, `check`, `bench mock`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use asbru_store::{Config, ConfigError, file};
use clap::{Args, Parser, Subcommand};

use crate::bench::mock::{self, MockOptions};

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
}

/// `asbru check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file to validate.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `asbru bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Run the mock OpenAI-wire provider (chat JSON and SSE, embeddings, models, /mock/stats).
    Mock(MockArgs),
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
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Bench(BenchCommand::Mock(args)) => run_mock(args),
        Command::Version => {
            println!("asbru {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASBRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match &args.config {
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
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let listen = config.server.listen.clone();
    match crate::server::serve(&config, &listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    match file::load_file(&args.config) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            println!(
                "{}: ok ({} providers)",
                args.config.display(),
                loaded.config.providers.len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
        let serving = tokio::spawn(mock::serve(
            listener,
            mock::MockState::new(options),
            stop_rx,
        ));
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        let _ = serving.await;
        ExitCode::SUCCESS
    })
}
