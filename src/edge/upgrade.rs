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

/// Seconds the old process keeps trying to reach the new one's upgrade socket (one attempt a
/// second). The new process itself waits about 5 s for the sockets (Pingora's fixed wait).
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

/// How long a SIGQUIT waits for a new process to be listening on the upgrade socket.
const HANDOVER_PARTNER_WAIT: Duration = Duration::from_secs(5);

/// Pingora's Unix signals (SIGQUIT: hand the sockets over and drain; SIGTERM: graceful stop;
/// SIGINT: fast stop), with one guard: SIGQUIT starts the hand-over only once a new process
/// listens on the upgrade socket. Pingora's own handling stops serving even when the sockets
/// could not be sent (no new process, or one that already gave up), which left nothing
/// listening; here such a SIGQUIT is logged and the gateway serves on.
pub struct Signals {
    /// The upgrade socket's path.
    pub upgrade_sock: String,
}

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Signals {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        use pingora::server::ShutdownSignal;
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut quit), Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot watch for signals; SIGQUIT, SIGTERM and SIGINT are not handled");
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = quit.recv() => {
                    let deadline = tokio::time::Instant::now() + HANDOVER_PARTNER_WAIT;
                    while !partner_listening(&self.upgrade_sock) && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    if partner_listening(&self.upgrade_sock) {
                        return ShutdownSignal::GracefulUpgrade;
                    }
                    tracing::error!(
                        "SIGQUIT received but no new asbru listens on {} (start one with `asbru serve --upgrade` first): still serving",
                        self.upgrade_sock
                    );
                }
                _ = terminate.recv() => return ShutdownSignal::GracefulTerminate,
                _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            }
        }
    }
}

/// Whether a process listens on the Unix socket at `path`, read from `/proc/net/unix` (a
/// connection to it would be taken for the hand-over itself).
fn partner_listening(path: &str) -> bool {
    /// `__SO_ACCEPTCON`: the socket listens.
    const LISTENING: u32 = 0x0001_0000;
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        // Not Linux, or no procfs: let Pingora try.
        return true;
    };
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(7) == Some(&path)
            && fields
                .get(3)
                .and_then(|flags| u32::from_str_radix(flags, 16).ok())
                .is_some_and(|flags| flags & LISTENING != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_unix_socket_is_seen_and_a_stale_file_is_not() {
        let dir = std::env::temp_dir().join(format!("asbru-upgrade-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("u.sock");
        let text = path.display().to_string();
        assert!(!partner_listening(&text));
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert!(partner_listening(&text));
        drop(listener);
        assert!(path.exists(), "the file stays after the listener is gone");
        assert!(!partner_listening(&text));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
