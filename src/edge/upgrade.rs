//! Zero-downtime binary upgrades, Pingora's way: `asbru serve --upgrade` waits on the upgrade
//! socket; SIGQUIT to the running process makes it send its listening sockets there, keep
//! serving for a few seconds while the new process starts accepting on the same sockets, then
//! drain and exit. Under systemd, the new process tells the service manager it is the main
//! process now (`MAINPID=`), so `systemctl reload` does the whole dance (see
//! `conf/asbru.service`).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use asbru_config::model::ServerConfig;

/// Seconds the new process waits for the old one's sockets (one attempt a second).
pub const HANDOVER_WAIT_SECONDS: usize = 30;

/// The upgrade socket: `server.upgrade_sock`, or `upgrade.sock` in the data dir, made
/// absolute so that both processes agree on it whatever their working directory.
pub fn socket_path(server: &ServerConfig) -> String {
    let path = match &server.upgrade_sock {
        Some(path) => Path::new(path).to_path_buf(),
        None => Path::new(&server.data_dir).join("upgrade.sock"),
    };
    std::path::absolute(&path).unwrap_or(path).display().to_string()
}

/// Once the server runs and its first listener accepts connections (bounded to 30 s), tells
/// systemd, when it started this process with `NOTIFY_SOCKET`, that this process is ready and
/// is the service's main process. Nothing is sent if the server never gets to run.
pub fn notify_when_listening(
    first: Option<SocketAddr>,
    mut phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let spawned = std::thread::Builder::new().name("asbru-notify".into()).spawn(move || {
        loop {
            match phases.blocking_recv() {
                Ok(pingora::server::ExecutionPhase::Running) => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        if let Some(mut address) = first {
            if address.ip().is_unspecified() {
                let loopback: std::net::IpAddr = match address {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                };
                address.set_ip(loopback);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
                if Instant::now() >= deadline {
                    tracing::warn!("{address} never accepted a connection: systemd is not told asbru is ready");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let states = [
            sd_notify::NotifyState::MainPid(std::process::id()),
            sd_notify::NotifyState::Ready,
        ];
        if let Err(e) = sd_notify::notify(false, &states) {
            tracing::warn!("cannot notify systemd that asbru is ready: {e}");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the systemd notifier: {e}");
    }
}
