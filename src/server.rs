//! Builds and runs the Pingora server: the proxy service, the DNS refresher and, when the config
//! has a `mock:` section, the bundled mock provider.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asbru_config::Config;
use asbru_filters::Live;
use asbru_filters::governance::Registry;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use tokio::sync::{oneshot, watch};

use crate::dns::{self, DnsRefresh};
use crate::state::Gateway;
use asbru_bench::mock::{self, MockOptions};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address is not usable.
    #[error("cannot listen on {0}: {1}")]
    Listen(String, String),
    /// The readiness probe never succeeded.
    #[error("the gateway did not become ready on {0}")]
    NotReady(SocketAddr),
    /// A thread could not be started.
    #[error("cannot start the gateway thread: {0}")]
    Thread(std::io::Error),
    /// The config store could not be opened or seeded.
    #[error("{0}")]
    Store(#[from] asbru_store::backend::StoreError),
    /// The `plugins` section cannot be used.
    #[error("{0}")]
    Plugins(#[from] crate::pipeline::PipelineError),
    /// The request log could not be opened.
    #[error("{0}")]
    Logs(String),
    /// A listener cannot be set up (its address, or a certificate).
    #[error("{0}")]
    Listener(#[from] crate::edge::listeners::ListenerError),
}

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Replace the store's providers and governance with the file's.
    pub reseed: bool,
    /// Take the listening sockets over from a running asbru through the upgrade socket
    /// (`serve --upgrade`) instead of binding them.
    pub upgrade: bool,
}

/// Builds a ready-to-run Pingora server for `config`, listening on `listen`.
pub fn build(config: &Config, listen: &str) -> Result<(Server, Arc<Gateway>), StartError> {
    build_with(config, listen, StartOptions::default())
}

/// [`build`] with options.
pub fn build_with(file: &Config, listen: &str, options: StartOptions) -> Result<(Server, Arc<Gateway>), StartError> {
    listen
        .parse::<SocketAddr>()
        .map_err(|e| StartError::Listen(listen.to_string(), e.to_string()))?;
    let mut file = file.clone();
    file.server.listen = listen.to_string();
    let file = &file;
    let listeners = file.server.resolved_listeners();
    if !options.upgrade {
        // Pingora retries a busy address in the background and leaves the process running
        // without that listener; a clear error now is better. (On an upgrade the running
        // process holds them, and hands them over.)
        for listener in &listeners {
            std::net::TcpListener::bind(&listener.address)
                .map_err(|e| StartError::Listen(listener.address.clone(), e.to_string()))?;
        }
    }
    let layers = crate::layers::settle(file, options.reseed)?;
    let config = &layers.config;
    let registry = Arc::new(Registry::new());
    let spend_journal = match &layers.store {
        Some(store) => {
            let journal = Arc::new(crate::spend_journal::Journal::open(
                &std::path::Path::new(&config.server.data_dir).join(crate::spend_journal::DIR),
            )?);
            // Spend journaled by processes that are gone is added before usage is read back. A
            // failure here is not fatal: the segments stay, and the next start applies them.
            match journal.replay_dead(store.as_ref()) {
                Ok(0) => {}
                Ok(replayed) => tracing::info!(entries = replayed, "spend journal of a stopped process applied"),
                Err(e) => tracing::warn!("spend journal of a stopped process not applied yet: {e}"),
            }
            if let Err(e) = journal.make_spares_ahead() {
                tracing::warn!(
                    "spend journal: no thread to make segments ahead of need ({e}); a full segment's replacement is made by the writer that fills it"
                );
            }
            registry.set_journal(journal.clone());
            Some(journal)
        }
        None => None,
    };
    // Cluster metering: every meter is leased, so it must be set before the first build.
    let cluster = config
        .governance
        .as_ref()
        .and_then(|g| g.cluster.clone())
        .filter(|c| c.enabled);
    let lease_signal = match (&cluster, &spend_journal) {
        (Some(settings), Some(_)) => {
            let waited = prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "asbru_cluster_lease_wait_seconds",
                    "Time refused requests waited for a lease fetch",
                )
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            )
            .map_err(|e| StartError::Logs(e.to_string()))?;
            let signal = Arc::new(crate::cluster::signal::LeaseSignal::new(
                Duration::from_millis(settings.lease_wait_ms),
                waited.clone(),
            ));
            registry.set_leases(signal.clone());
            Some((signal, waited))
        }
        (Some(_), None) => {
            tracing::warn!(
                "governance.cluster needs a PostgreSQL config store; budgets are metered on this node alone"
            );
            None
        }
        _ => None,
    };
    let reconciler = match &layers.store {
        Some(store) => Some(Arc::new(crate::usage_flush::restore(&registry, store.as_ref())?)),
        None => None,
    };
    let (live, warnings) = Live::build(config, &registry, crate::state::unix_now());
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    dns::resolve_all(&live.snapshot);
    if live.snapshot.providers.is_empty() {
        tracing::info!(
            "no providers configured: add one under `providers:` in a config file and start with `asbru serve --config FILE` (see conf/quickstart.yaml, or conf/demo.yaml for an offline demo)"
        );
    }
    // Custom labels are fixed for the life of the process (a metric's label names cannot change).
    let metrics = Arc::new(asbru_filters::telemetry::Metrics::with_custom_labels(
        &live.snapshot.observe.prometheus_labels,
    ));
    let request_log =
        crate::request_log::RequestLog::open(config, metrics.clone()).map_err(|e| StartError::Logs(e.to_string()))?;
    let state = Gateway::new(
        file,
        config,
        live,
        registry.clone(),
        layers.store.clone(),
        crate::state::Parts {
            metrics,
            request_log: request_log.clone(),
            spend_journal: spend_journal.clone(),
        },
    )?;
    let server_conf = ServerConf {
        threads: config.server.threads.max(1),
        grace_period_seconds: Some(config.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_seconds),
        upgrade_sock: crate::edge::upgrade::socket_path(&file.server),
        upgrade_sock_connect_accept_max_retries: Some(crate::edge::upgrade::HANDOVER_WAIT_SECONDS),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: options.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf);
    server.add_services(crate::edge::listeners::services(
        &state,
        &listeners,
        &file.server,
        &server.configuration,
    )?);
    if let Some(log) = &request_log {
        server.add_service(background_service(
            "asbru request log writer",
            crate::request_log::writer::LogWriter { log: log.clone() },
        ));
        server.add_service(background_service(
            "asbru request log retention",
            crate::request_log::retention::Retention {
                log: log.clone(),
                policy: crate::request_log::retention::Policy::of(config),
            },
        ));
    }
    server.add_service(background_service(
        "asbru dns refresh",
        DnsRefresh { state: state.clone() },
    ));
    if let (Some(store), Some(journal), Some((signal, waited)), Some(settings)) =
        (&layers.store, &spend_journal, lease_signal, cluster)
    {
        let metrics = crate::cluster::metrics::ClusterMetrics::register(&state.metrics, waited);
        let manager = crate::cluster::manager::LeaseManager::new(
            state.clone(),
            store.clone(),
            journal.owner().to_string(),
            signal,
            settings,
            metrics,
        );
        tracing::info!(
            node = journal.owner(),
            "cluster metering on: budgets and rate limits are leased from the shared store"
        );
        server.add_service(background_service(
            "asbru cluster leases",
            crate::cluster::manager::LeaseService(Arc::new(manager)),
        ));
    }
    if let (Some(store), Some(journal)) = (layers.store, spend_journal) {
        let watching = journal.others_alive();
        if watching {
            tracing::info!(
                "another asbru process shares this data dir (an upgrade in progress?): its settled usage is counted here as it is saved"
            );
        }
        let flush = crate::usage_flush::UsageFlush {
            journal,
            store: store.clone(),
            registry: registry.clone(),
            reconciler: reconciler.unwrap_or_default(),
            watching: std::sync::atomic::AtomicBool::new(watching),
        };
        server.add_service(background_service("asbru usage flush", flush));
        let sync = crate::store_sync::StoreSync {
            state: state.clone(),
            store,
            file: file.clone(),
        };
        server.add_service(background_service("asbru config store sync", sync));
    }
    if let Some(mock_config) = &config.mock {
        let listen = mock_config.listen.clone();
        let options = MockOptions {
            latency: Duration::from_millis(mock_config.latency_ms),
            chunks: mock_config.chunks,
            chunk_delay: Duration::from_millis(mock_config.chunk_delay_ms),
            fail_rate: mock_config.fail_rate,
            fail_status: mock_config.fail_status,
            ..MockOptions::default()
        };
        server.add_service(background_service(
            "asbru mock provider",
            InProcessMock { listen, options },
        ));
    }
    Ok((server, state))
}

/// Runs the gateway until a signal stops it (SIGTERM: graceful; SIGINT: fast).
pub fn serve(config: &Config, listen: &str, options: StartOptions) -> Result<(), StartError> {
    let (mut server, state) = build_with(config, listen, options)?;
    if options.upgrade {
        tracing::info!(
            "waiting for the running asbru's listening sockets on {} (send it SIGQUIT)",
            server.configuration.upgrade_sock
        );
    }
    server.bootstrap();
    let mut listening = config.server.clone();
    listening.listen = listen.to_string();
    let listeners = listening.resolved_listeners();
    for listener in &listeners {
        let scheme = if listener.tls.is_some() { "https" } else { "http" };
        tracing::info!(
            "asbru {} listening on {scheme}://{}",
            env!("CARGO_PKG_VERSION"),
            listener.address
        );
    }
    crate::edge::upgrade::notify_when_listening(
        listeners.first().and_then(|l| l.address.parse().ok()),
        server.watch_execution_phase(),
    );
    interrupt_ends_a_graceful_stop(state.clone());
    let upgrade_sock = server.configuration.upgrade_sock.clone();
    server.run(RunArgs {
        shutdown_signal: Box::new(crate::edge::upgrade::Signals { upgrade_sock }),
    });
    // Requests that finished during the grace period settled after the service's last flush.
    crate::usage_flush::flush_gateway(&state);
    crate::cluster::manager::release_at_exit(&state);
    Ok(())
}

/// After SIGTERM starts a graceful stop (serving on for `grace_period_seconds`, then letting
/// requests finish), a SIGINT ends the process at once, its usage flushed first: an operator's
/// Ctrl-C always stops the gateway.
fn interrupt_ends_a_graceful_stop(state: Arc<Gateway>) {
    let watcher = std::thread::Builder::new().name("asbru-signals".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut terminate), Ok(mut interrupt)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            terminate.recv().await;
            interrupt.recv().await;
            tracing::warn!("interrupted during the graceful stop: exiting now");
            crate::usage_flush::flush_gateway(&state);
            std::process::exit(130);
        });
    });
    if let Err(e) = watcher {
        tracing::warn!("cannot watch for an interrupt during a graceful stop: {e}");
    }
}

/// The `mock:` section: the mock provider inside the gateway process.
struct InProcessMock {
    listen: String,
    options: MockOptions,
}

#[async_trait]
impl BackgroundService for InProcessMock {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(&self.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("mock provider cannot listen on {}: {e}", self.listen);
                return;
            }
        };
        tracing::info!("mock provider listening on http://{}", self.listen);
        let (stop, stop_rx) = watch::channel(false);
        let state = mock::MockState::new(self.options.clone());
        let serving = tokio::spawn(mock::serve(listener, state, stop_rx));
        let _ = shutdown.changed().await;
        let _ = stop.send(true);
        let _ = serving.await;
    }
}

/// A gateway running on a background thread (tests, benches). Dropping it shuts it down.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state (snapshot swaps in tests).
    pub state: Arc<Gateway>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningGateway {
    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct StopSignal(Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let receiver = self.0.lock().ok().and_then(|mut r| r.take());
        if let Some(receiver) = receiver {
            let _ = receiver.await;
        } else {
            std::future::pending::<()>().await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// Starts the gateway on a free loopback port in a background thread and waits until it answers.
pub fn spawn(config: &Config) -> Result<RunningGateway, StartError> {
    spawn_with(config, StartOptions::default())
}

/// [`spawn`] with options.
pub fn spawn_with(config: &Config, options: StartOptions) -> Result<RunningGateway, StartError> {
    // With `server.listeners`, the first one is the address reported (and probed, when it is
    // plaintext); otherwise a free port is picked.
    let first = config.server.listeners.first();
    let addr = match first {
        Some(listener) => listener
            .address
            .parse::<SocketAddr>()
            .map_err(|e| StartError::Listen(listener.address.clone(), e.to_string()))?,
        None => free_port()?,
    };
    let plain = match first {
        Some(l) => l.tls.is_none() && !l.proxy_protocol,
        None => config.server.tls.is_none(),
    };
    let probe_health = plain;
    let (mut server, state) = build_with(config, &addr.to_string(), options)?;
    let (stop, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("asbru-gateway".into())
        .spawn(move || {
            server.bootstrap();
            server.run(RunArgs {
                shutdown_signal: Box::new(StopSignal(Mutex::new(Some(stop_rx)))),
            });
        })
        .map_err(StartError::Thread)?;
    let running = RunningGateway {
        addr,
        state,
        stop: Some(stop),
        thread: Some(thread),
    };
    if probe_health {
        wait_ready(addr)?;
    } else {
        wait_accepting(addr)?;
    }
    Ok(running)
}

/// Polls until `addr` accepts TCP connections (bounded to 10 s).
fn wait_accepting(addr: SocketAddr) -> Result<(), StartError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(StartError::NotReady(addr))
}

fn free_port() -> Result<SocketAddr, StartError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| StartError::Listen("127.0.0.1:0".into(), e.to_string()))?;
    listener
        .local_addr()
        .map_err(|e| StartError::Listen("127.0.0.1:0".into(), e.to_string()))
}

/// Polls `/health` until it answers 200 (bounded to 10 s).
pub fn wait_ready(addr: SocketAddr) -> Result<(), StartError> {
    if asbru_bench::process::wait_ready(addr) {
        Ok(())
    } else {
        Err(StartError::NotReady(addr))
    }
}
