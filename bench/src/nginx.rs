//! nginx as the reference proxy of `bench compare`: `proxy_pass` to the same mock with a
//! keep-alive upstream, one process (`master_process off`, one worker) pinned like the gateway,
//! optionally terminating TLS with the gateway's certificate. Debian: `apt-get install
//! nginx-light`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// The `nginx` binary, when installed.
pub fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
        "/usr/bin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    /// Its plaintext listener.
    pub plain: SocketAddr,
    /// Its TLS listener, when started with a certificate.
    pub tls: Option<SocketAddr>,
}

impl Nginx {
    /// Its process id (for CPU time and RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> Result<SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

fn config(
    dir: &Path,
    mock: &str,
    plain: SocketAddr,
    tls: Option<(SocketAddr, &Path, &Path)>,
    upstream_ca: Option<&Path>,
) -> String {
    let d = dir.display();
    // An HTTPS mock: verified against the bench CA, sessions resumed on new connections.
    let upstream = match upstream_ca {
        Some(ca) => format!(
            "proxy_pass https://mock; proxy_ssl_trusted_certificate {}; proxy_ssl_verify on; proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_session_reuse on;",
            ca.display()
        ),
        None => "proxy_pass http://mock;".to_string(),
    };
    let tls_lines = match tls {
        Some((addr, cert, key)) => format!(
            "    listen {addr} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log error;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 1000000;\n  client_max_body_size 100m;\n  client_body_buffer_size 1m;\n\
         \x20 upstream mock {{ server {mock}; keepalive 64; }}\n\
         \x20 server {{\n    listen {plain};\n{tls_lines}\
         \x20   location / {{ {upstream} proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }}\n  }}\n}}\n"
    )
}

/// Starts nginx in front of `mock` (`host:port`), its files under `dir`, pinned to `cpu`; with
/// `tls`, a TLS listener too.
pub fn start(
    bin: &Path,
    dir: &Path,
    mock: &str,
    cpu: Option<usize>,
    tls: Option<(&Path, &Path)>,
    upstream_ca: Option<&Path>,
) -> Result<Nginx, String> {
    let plain = free_addr()?;
    let tls_addr = match tls {
        Some(_) => Some(free_addr()?),
        None => None,
    };
    let conf = dir.join("nginx.conf");
    let text = config(
        dir,
        mock,
        plain,
        tls_addr.zip(tls).map(|(addr, (cert, key))| (addr, cert, key)),
        upstream_ca,
    );
    std::fs::write(&conf, text).map_err(|e| format!("cannot write the nginx config: {e}"))?;
    let mut command = crate::process::pinned(bin, cpu);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().map_err(|e| format!("cannot start nginx: {e}"))?;
    let nginx = Nginx {
        child,
        plain,
        tls: tls_addr,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&plain, Duration::from_millis(200)).is_err() {
        if std::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
            return Err(format!("nginx did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(nginx)
}
