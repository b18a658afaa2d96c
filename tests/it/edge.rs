//! The edge: TLS listeners (SNI, certificates reloaded from disk), HTTP/2 over TLS and h2c,
//! listener roles, trusted proxies and the PROXY protocol, and the zero-downtime upgrade.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const CHAT: &str = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_CHAT: &str = r#"{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// A test CA and the certificates it signs.
struct Authority {
    cert: Certificate,
    key: KeyPair,
}

impl Authority {
    fn new() -> Authority {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "asbru test CA");
        let cert = params.self_signed(&key).expect("ca cert");
        Authority { cert, key }
    }

    /// Writes a certificate for `names` and its key under `dir` as `<stem>.pem` and
    /// `<stem>.key`; returns the certificate's DER.
    fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf cert");
        // Written beside and renamed into place, as a certificate manager does.
        let (cert_tmp, key_tmp) = (dir.join(format!("{stem}.pem.new")), dir.join(format!("{stem}.key.new")));
        std::fs::write(&cert_tmp, cert.pem()).expect("write cert");
        std::fs::write(&key_tmp, key.serialize_pem()).expect("write key");
        std::fs::rename(&key_tmp, dir.join(format!("{stem}.key"))).expect("rename key");
        std::fs::rename(&cert_tmp, dir.join(format!("{stem}.pem"))).expect("rename cert");
        cert.der().to_vec()
    }

    fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("trust the test CA");
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// A test CA, and certificates under a fresh directory for `localhost` (the default) and
/// `b.test`, as `edge_yaml` names them.
fn certified(tag: &str) -> (std::path::PathBuf, Authority) {
    let dir = temp_dir(tag);
    let authority = Authority::new();
    authority.issue(&dir, "default", &["localhost"]);
    authority.issue(&dir, "b", &["b.test"]);
    (dir, authority)
}

type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(authority: &Authority, addr: SocketAddr, name: &str, alpn: &[&[u8]]) -> ClientTls {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(name.to_string()).expect("server name");
    authority.client(alpn).connect(name, tcp).await.expect("TLS handshake")
}

fn served_certificate(tls: &ClientTls) -> Vec<u8> {
    let certs: &[CertificateDer<'_>] = tls.get_ref().1.peer_certificates().expect("certificates");
    certs[0].to_vec()
}

/// One HTTP/1.1 request on `io`, closing; returns the whole reply as text.
async fn http1<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    path: &str,
    headers: &str,
    body: &str,
) -> String {
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    io.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

fn edge_yaml(dir: &Path, mock: &str, server_extra: &str, listeners: &str) -> String {
    format!(
        "server:\n  tls: {{cert_file: \"{d}/default.pem\", key_file: \"{d}/default.key\", certificates: [{{server_names: [\"b.test\", \"*.wild.test\"], cert_file: \"{d}/b.pem\", key_file: \"{d}/b.key\"}}]}}\n{server_extra}  listeners:\n{listeners}providers:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{mock}\"}}\n",
        d = dir.display()
    )
}

#[tokio::test]
async fn tls_listener_serves_chat_and_streams_picks_certificates_by_sni_and_reloads_them() {
    let upstream = default_mock();
    let dir = temp_dir("edge-tls");
    let authority = Authority::new();
    let default_der = authority.issue(&dir, "default", &["localhost", "127.0.0.1"]);
    let b_der = authority.issue(&dir, "b", &["b.test", "*.wild.test"]);
    let (plain, secure) = (dead_address(), dead_address());
    let yaml = edge_yaml(
        &dir,
        &upstream.base_url(),
        "",
        &format!("    - {{address: \"{plain}\"}}\n    - {{address: \"{secure}\", tls: true}}\n"),
    );
    let _gw = gateway(&yaml);

    // Plain and streamed chat over TLS (HTTP/1.1), with the default certificate.
    let mut tls = tls_connect(&authority, secure, "localhost", &[b"http/1.1"]).await;
    assert_eq!(served_certificate(&tls), default_der);
    let reply = http1(&mut tls, "/v1/chat/completions", "", CHAT).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("Hello from the asbru mock provider."), "{reply}");
    let mut tls = tls_connect(&authority, secure, "localhost", &[]).await;
    let reply = http1(&mut tls, "/v1/chat/completions", "", STREAM_CHAT).await;
    assert!(reply.contains("data: [DONE]"), "{reply}");

    // SNI picks the certificate of the name asked for; an unknown name gets the default.
    let tls = tls_connect(&authority, secure, "b.test", &[]).await;
    assert_eq!(served_certificate(&tls), b_der);
    let tls = tls_connect(&authority, secure, "api.wild.test", &[]).await;
    assert_eq!(served_certificate(&tls), b_der);
    let unknown = TcpStream::connect(secure).await.expect("connect");
    let insecure = authority.client(&[]);
    let refused = insecure
        .connect(ServerName::try_from("other.test").expect("name"), unknown)
        .await;
    assert!(refused.is_err(), "the default certificate does not name other.test");

    // A plaintext request on the TLS port is not answered as HTTP.
    let mut raw = TcpStream::connect(secure).await.expect("connect");
    let reply = http1(&mut raw, "/health", "", "").await;
    assert!(!reply.contains("200 OK"), "{reply}");

    // The certificate replaced on disk is served from the next handshake on.
    let renewed = authority.issue(&dir, "default", &["localhost", "127.0.0.1"]);
    assert_ne!(renewed, default_der);
    let tls = tls_connect(&authority, secure, "localhost", &[]).await;
    assert_eq!(served_certificate(&tls), renewed);

    // A replacement that cannot be used (garbled) leaves the previous one in service.
    std::fs::write(dir.join("default.pem"), "-----BEGIN CERTIFICATE-----\ngarbled\n").expect("garble");
    let mut tls = tls_connect(&authority, secure, "localhost", &[]).await;
    assert_eq!(served_certificate(&tls), renewed);
    let reply = http1(&mut tls, "/v1/chat/completions", "", CHAT).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // The plaintext listener beside it still speaks plain HTTP.
    let health = send(plain, "GET", "/health", &[], b"").await;
    assert_eq!(health.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_or_bad_certificate_is_named_at_check_and_at_start() {
    let dir = temp_dir("edge-badcert");
    let authority = Authority::new();
    authority.issue(&dir, "b", &["b.test"]);
    // default.pem is missing; b.key is swapped for another key.
    let other = temp_dir("edge-badcert-other");
    authority.issue(&other, "x", &["x.test"]);
    std::fs::copy(other.join("x.key"), dir.join("b.key")).expect("copy key");
    let listeners = format!("    - {{address: \"{}\", tls: true}}\n", dead_address());
    let yaml = edge_yaml(&dir, "http://127.0.0.1:9", "", &listeners);
    let config_path = dir.join("asbru.yaml");
    std::fs::write(&config_path, &yaml).expect("write config");

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_asbru"))
        .args(["check", "--config"])
        .arg(&config_path)
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(stderr.contains(&format!("{}/default.pem", dir.display())), "{stderr}");
    assert!(stderr.contains(&format!("{}/b.key", dir.display())), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");

    let config = asbru_config::load_str(&yaml, "edge.yaml").expect("loads").config;
    let err = asbru::server::spawn(&config)
        .err()
        .expect("refused at start")
        .to_string();
    assert!(err.contains("default.pem"), "{err}");

    // `tls: true` with no certificate anywhere is a located config error.
    let bare = format!(
        "server:\n  listeners:\n    - {{address: \"{}\", tls: true}}\n",
        dead_address()
    );
    let err = asbru_config::load_str(&bare, "bare.yaml")
        .expect_err("invalid")
        .to_string();
    assert!(err.contains("server.tls names no certificate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// Sends one request over an HTTP/2 connection; returns the status and the body.
async fn h2_request(client: &mut h2::client::SendRequest<Bytes>, path: &str, body: Bytes) -> (u16, Vec<u8>) {
    let request = http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .body(())
        .expect("request");
    let mut ready = client.clone().ready().await.expect("h2 ready");
    let (response, mut sending) = ready.send_request(request, false).expect("send request");
    sending.send_data(body, true).expect("send body");
    let response = response.await.expect("response");
    let status = response.status().as_u16();
    let mut received = response.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = received.data().await {
        let chunk = chunk.expect("chunk");
        let _ = received.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    (status, out)
}

async fn h2_exchanges<S>(io: S, upstream: &asbru_bench::mock::MockHandle)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut client, connection) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (status, body) = h2_request(&mut client, "/v1/chat/completions", Bytes::from_static(CHAT.as_bytes())).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Hello from the asbru mock provider."));
    let (status, body) = h2_request(
        &mut client,
        "/v1/chat/completions",
        Bytes::from_static(STREAM_CHAT.as_bytes()),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(sse_data(&text).len() > 2, "{text}");
    assert!(text.contains("data: [DONE]"), "{text}");
    // A 1 MiB request body, on the same connection.
    let big = format!(
        r#"{{"model":"openai/gpt-4o","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(1024 * 1024)
    );
    let before = upstream.state.recorded().len();
    let (status, body) = h2_request(&mut client, "/v1/chat/completions", Bytes::from(big)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let recorded = upstream.state.recorded();
    assert_eq!(recorded.len(), before + 1);
    assert!(recorded.last().expect("recorded").body.len() > 1024 * 1024);
}

#[tokio::test]
async fn http2_over_tls_by_alpn_and_cleartext_h2c() {
    let upstream = default_mock();
    let (dir, authority) = certified("edge-h2");
    let (h2c, secure, plain) = (dead_address(), dead_address(), dead_address());
    let yaml = edge_yaml(
        &dir,
        &upstream.base_url(),
        "",
        &format!(
            "    - {{address: \"{h2c}\", h2c: true}}\n    - {{address: \"{secure}\", tls: true}}\n    - {{address: \"{plain}\"}}\n"
        ),
    );
    let _gw = gateway(&yaml);

    let tls = tls_connect(&authority, secure, "localhost", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 chosen by ALPN");
    h2_exchanges(tls, &upstream).await;
    h2_exchanges(TcpStream::connect(h2c).await.expect("connect"), &upstream).await;
    // HTTP/1.1 still works on the h2c listener, and h2c is refused where it is off.
    assert_eq!(send(h2c, "GET", "/health", &[], b"").await.status(), 200);
    let refused = h2::client::handshake(TcpStream::connect(plain).await.expect("connect")).await;
    if let Ok((client, connection)) = refused {
        {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let request = http::Request::get("http://localhost/health").body(()).expect("request");
            let answered = match client.ready().await {
                Ok(mut ready) => match ready.send_request(request, true) {
                    Ok((response, _)) => response.await.is_ok(),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            assert!(!answered, "no HTTP/2 without h2c");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn listener_roles_split_inference_from_the_management_api() {
    let upstream = default_mock();
    let (api, admin) = (dead_address(), dead_address());
    let yaml = format!(
        "server:\n  listeners:\n    - {{address: \"{api}\", roles: [inference]}}\n    - {{address: \"{admin}\", roles: [admin]}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    );
    let _gw = gateway(&yaml);
    assert_eq!(
        send(api, "POST", "/v1/chat/completions", &[], CHAT.as_bytes())
            .await
            .status(),
        200
    );
    assert_eq!(send(api, "GET", "/api/version", &[], b"").await.status(), 404);
    assert_eq!(send(admin, "GET", "/api/version", &[], b"").await.status(), 200);
    assert_eq!(
        send(admin, "POST", "/v1/chat/completions", &[], CHAT.as_bytes())
            .await
            .status(),
        404
    );
    for addr in [api, admin] {
        assert_eq!(send(addr, "GET", "/health", &[], b"").await.status(), 200);
    }
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // With admin auth off, the management API answers loopback clients only: a request
    // relayed by a trusted proxy on loopback for a remote client is refused, and the same
    // header from an untrusted peer changes nothing.
    let trusted = gateway("server:\n  trusted_proxies: [\"127.0.0.0/8\"]\n");
    let untrusted = gateway("server:\n  trusted_proxies: [\"10.0.0.0/8\"]\n");
    let remote = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(
        send(trusted.addr, "GET", "/api/version", &remote, b"").await.status(),
        403
    );
    assert_eq!(send(trusted.addr, "GET", "/api/version", &[], b"").await.status(), 200);
    // A client's own `Forwarded` passes through proxies that append X-Forwarded-For: not read.
    let forwarded = [("forwarded", "for=127.0.0.1"), ("x-forwarded-for", "203.0.113.9")];
    assert_eq!(
        send(trusted.addr, "GET", "/api/version", &forwarded, b"")
            .await
            .status(),
        403
    );
    // A chain that cannot be read makes the client unknown, never local.
    let garbled = [("x-forwarded-for", "unknown")];
    assert_eq!(
        send(trusted.addr, "GET", "/api/version", &garbled, b"").await.status(),
        403
    );
    let by_forwarded = gateway("server:\n  trusted_proxies: [\"127.0.0.0/8\"]\n  real_ip_header: Forwarded\n");
    let named = [("forwarded", "for=\"[2001:db8::5]:4000\"")];
    assert_eq!(
        send(by_forwarded.addr, "GET", "/api/version", &named, b"")
            .await
            .status(),
        403
    );
    assert_eq!(
        send(by_forwarded.addr, "GET", "/api/version", &remote, b"")
            .await
            .status(),
        200
    );
    let local = [("x-forwarded-for", "127.0.0.1")];
    assert_eq!(
        send(trusted.addr, "GET", "/api/version", &local, b"").await.status(),
        200
    );
    assert_eq!(
        send(untrusted.addr, "GET", "/api/version", &remote, b"").await.status(),
        200
    );

    // The login rate limit counts the forwarded client, not the proxy.
    let guarded = gateway(
        "server:\n  trusted_proxies: [\"127.0.0.1\"]\ngovernance:\n  auth_config: {is_enabled: true, admin_username: admin, admin_password: right-password}\n",
    );
    let bad = br#"{"username":"admin","password":"wrong"}"#;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let reply = send(
            guarded.addr,
            "POST",
            "/api/session/login",
            &[("x-forwarded-for", "198.51.100.1")],
            bad,
        )
        .await;
        statuses.push(reply.status());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let other = send(
        guarded.addr,
        "POST",
        "/api/session/login",
        &[("x-forwarded-for", "198.51.100.2")],
        bad,
    )
    .await;
    assert_eq!(other.status(), 401, "another client behind the proxy is not blocked");
}

fn proxy_v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
    ];
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&8080u16.to_be_bytes());
    header
}

async fn get_after(addr: SocketAddr, preamble: &[u8], path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(preamble).await.expect("preamble");
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("request");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn proxy_protocol_headers_name_the_client() {
    let (dir, authority) = certified("edge-proxy");
    let (plain, secure) = (dead_address(), dead_address());
    let yaml = edge_yaml(
        &dir,
        "http://127.0.0.1:9",
        "",
        &format!(
            "    - {{address: \"{plain}\", proxy_protocol: true}}\n    - {{address: \"{secure}\", proxy_protocol: true, tls: true}}\n"
        ),
    );
    let _gw = gateway(&yaml);
    // v2 from a remote client: the management API (loopback only with auth off) refuses it.
    let reply = get_after(plain, &proxy_v2([203, 0, 113, 7], 50000), "/api/version").await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = get_after(plain, &proxy_v2([127, 0, 0, 1], 50000), "/api/version").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // v1 as well.
    let reply = get_after(
        plain,
        b"PROXY TCP4 198.51.100.4 127.0.0.1 40000 8080\r\n",
        "/api/version",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    // A LOCAL header (a balancer's health check) keeps the socket's address.
    let reply = get_after(plain, b"PROXY UNKNOWN\r\n", "/health").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // No header: the connection is closed unanswered, whatever it claims.
    let reply = get_after(plain, b"", "/health").await;
    assert!(reply.is_empty(), "{reply}");

    // Before TLS, on a TLS listener.
    let mut tcp = TcpStream::connect(secure).await.expect("connect");
    tcp.write_all(&proxy_v2([203, 0, 113, 8], 50001)).await.expect("header");
    let name = ServerName::try_from("localhost".to_string()).expect("name");
    let mut tls = authority
        .client(&[])
        .connect(name, tcp)
        .await
        .expect("handshake after the header");
    tls.write_all(b"GET /api/providers HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let _ = std::fs::remove_dir_all(&dir);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, addr: SocketAddr, upgrade: bool, log: &Path) -> KillOnDrop {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_asbru"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &addr.to_string()])
        .env("ASBRU_LOG", "info")
        .stdout(std::fs::File::create(log).expect("log file"))
        .stderr(std::process::Stdio::null());
    if upgrade {
        command.arg("--upgrade");
    }
    KillOnDrop(command.spawn().expect("spawn asbru"))
}

/// The VK's budget usage, in micro-dollars, as the gateway at `addr` holds it in memory.
async fn usage_in_memory(addr: SocketAddr) -> i64 {
    let reply = send(addr, "GET", "/api/governance/virtual-keys?from_memory=true", &[], b"").await;
    let dollars = reply.json()["virtual_keys"][0]["usage"]["scopes"][0]["budgets"][0]["current_usage"]
        .as_f64()
        .unwrap_or(-1.0);
    (dollars * 1e6).round() as i64
}

#[test]
fn upgrade_hands_the_listener_over_with_no_failed_request_and_no_spend_lost() {
    use asbru_store::backend::ConfigStore;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = default_mock();
    let dir = temp_dir("edge-upgrade");
    let addr = dead_address();
    let socket = dir.join("upgrade.sock");
    let config = dir.join("asbru.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{data_dir: \"{d}\", upgrade_sock: \"{s}\", grace_period_seconds: 4, graceful_shutdown_timeout_seconds: 5}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{u}\"}}\ngovernance:\n  pricing_overrides:\n    - {{provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}}\n  virtual_keys:\n    - {{id: vk-up, name: Up, value: sk-bf-up, budgets: [{{max_limit: 1000, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
            d = dir.display(),
            s = socket.display(),
            u = upstream.base_url()
        ),
    )
    .expect("write config");
    let mut old = serve(&config, addr, false, &dir.join("old.log"));
    asbru::server::wait_ready(addr).expect("old process ready");
    let before = runtime.block_on(async {
        let reply = send(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("x-bf-vk", "sk-bf-up")],
            CHAT.as_bytes(),
        )
        .await;
        assert_eq!(reply.status(), 200, "{}", reply.text());
        usage_in_memory(addr).await
    });
    assert_eq!(before, 600, "one request costs 6 output tokens at $0.0001");

    // 500 requests a second for 10 s, a fifth of them on connections of their own.
    let options = asbru_bench::load::LoadOptions {
        url: format!("http://{addr}/v1/chat/completions"),
        rate: 500.0,
        duration: Duration::from_secs(10),
        max_in_flight: 128,
        body: Some(Bytes::from_static(CHAT.as_bytes())),
        headers: vec![("x-bf-vk".into(), "sk-bf-up".into())],
        timeout: Duration::from_secs(10),
        fresh_connections: 0.2,
        ..Default::default()
    };
    let load = runtime.spawn(async move { asbru_bench::load::run(&options).await });
    std::thread::sleep(Duration::from_secs(2));
    let mut new = serve(&config, addr, true, &dir.join("new.log"));
    assert!(
        eventually(|| socket.exists()),
        "the new process waits on the upgrade socket"
    );
    let quit = std::process::Command::new("kill")
        .args(["-QUIT", &old.0.id().to_string()])
        .status()
        .expect("kill -QUIT");
    assert!(quit.success());
    let report = runtime.block_on(load).expect("load task").expect("load ran");
    let exited = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(old.0.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "the old process drained and exited");
    let served = report.status_counts.get(&200).copied().unwrap_or(0);
    assert!(
        report.errors.is_empty() && report.status_counts.len() == 1 && served == report.scheduled,
        "every request answered 200 across the upgrade: {:?} {:?} of {}\nold: {}\nnew: {}",
        report.status_counts,
        report.errors,
        report.scheduled,
        std::fs::read_to_string(dir.join("old.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("new.log")).unwrap_or_default(),
    );

    // The spend after is the spend before plus what was served: in the store, and in the new
    // process's meters (the old process's share read back once it had gone).
    let expected = before + 600 * served as i64;
    let store = asbru_store::backend::sqlite::SqliteStore::open(&dir.join("config.db")).expect("open store");
    let persisted = || {
        store
            .load_usage()
            .expect("usage")
            .into_iter()
            .find(|r| r.counter_id == "vk:vk-up:budget:0")
            .map(|r| r.value)
    };
    assert!(
        eventually(|| persisted() == Some(expected)),
        "store: {:?} != {expected}",
        persisted()
    );
    let in_memory = || runtime.block_on(usage_in_memory(addr));
    assert!(
        eventually(|| in_memory() == expected),
        "new process: {} != {expected}",
        in_memory()
    );
    let _ = new.0.kill();
    let _ = new.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `check` without blocking the test's runtime (bounded to 3 s).
async fn eventually_async(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A client that gives up on a stream (RST_STREAM over HTTP/2, a closed connection over
/// HTTP/1.1) frees what the request held: nothing stays reserved, long before the upstream
/// would have finished.
#[tokio::test]
async fn a_stream_the_client_abandons_releases_its_reservation_over_h2_and_h1() {
    let slow = mock(asbru_bench::mock::MockOptions {
        chunks: 40,
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    });
    let h2c = dead_address();
    let yaml = format!(
        "server:\n  listeners:\n    - {{address: \"{h2c}\", h2c: true}}\nproviders:\n  openai:\n    keys: [{{value: sk-one}}]\n    network_config: {{base_url: \"{}\"}}\ngovernance:\n  pricing_overrides:\n    - {{provider: openai, model: gpt-4o, input_cost_per_token: 0, output_cost_per_token: 0.0001}}\n  virtual_keys:\n    - {{id: vk-h2, name: H2, value: sk-bf-h2, budgets: [{{max_limit: 10, reset_duration: 1d}}], provider_configs: [{{provider: openai, weight: 1}}]}}\n",
        slow.base_url()
    );
    let gw = gateway(&yaml);
    let meter = || gw.state.registry.get("vk:vk-h2:budget:0").expect("meter");
    let stream =
        r#"{"model":"openai/gpt-4o","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}"#;

    // HTTP/2: read the first event, then reset the stream.
    let (client, connection) = h2::client::handshake(TcpStream::connect(h2c).await.expect("connect"))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::post("http://localhost/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-bf-vk", "sk-bf-h2")
        .body(())
        .expect("request");
    let mut ready = client.ready().await.expect("ready");
    let (response, mut sending) = ready.send_request(request, false).expect("send");
    sending
        .send_data(Bytes::from_static(stream.as_bytes()), true)
        .expect("body");
    let response = response.await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.data().await.expect("a first event").expect("data");
    assert!(String::from_utf8_lossy(&first).contains("data:"));
    assert!(meter().total() > meter().settled(), "the stream holds a reservation");
    let abandoned = std::time::Instant::now();
    sending.send_reset(h2::Reason::CANCEL);
    drop(body);
    assert!(
        eventually_async(|| meter().total() == meter().settled()).await,
        "the reset released the reservation"
    );
    assert!(
        abandoned.elapsed() < Duration::from_secs(3),
        "before the upstream would have finished"
    );

    // HTTP/1.1 on the same listener: the connection closed after the first bytes.
    let held_before = meter().settled();
    let mut tcp = TcpStream::connect(h2c).await.expect("connect");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-bf-vk: sk-bf-h2\r\ncontent-length: {}\r\n\r\n{stream}",
        stream.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut first = [0u8; 256];
    let n = tcp.read(&mut first).await.expect("read");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(tcp);
    assert!(
        eventually_async(|| meter().total() == meter().settled()).await,
        "the closed connection released the reservation"
    );
    assert!(meter().settled() >= held_before);
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_closed_at_the_deadline() {
    let (dir, authority) = certified("edge-handshake");
    let secure = dead_address();
    let yaml = edge_yaml(
        &dir,
        "http://127.0.0.1:9",
        "  tls_handshake_timeout_seconds: 1\n",
        &format!("    - {{address: \"{secure}\", tls: true}}\n"),
    );
    let _gw = gateway(&yaml);
    let mut silent = TcpStream::connect(secure).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed, not left open: {read:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A real client right after is served.
    let tls = tls_connect(&authority, secure, "localhost", &[]).await;
    assert!(tls.get_ref().1.peer_certificates().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The head deadline spares HTTP/2 connections (their streams come and go; the HTTP/2 idle
/// timeout covers them) but not an HTTP/1 client that merely starts like h2c's preface.
#[tokio::test]
async fn the_head_deadline_spares_h2_connections_and_only_them() {
    let upstream = default_mock();
    let (h2c, plain) = (dead_address(), dead_address());
    let yaml = format!(
        "server:\n  header_read_timeout_seconds: 1\n  listeners:\n    - {{address: \"{h2c}\", h2c: true}}\n    - {{address: \"{plain}\"}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    );
    let _gw = gateway(&yaml);
    let (client, connection) = h2::client::handshake(TcpStream::connect(h2c).await.expect("connect"))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let mut client = client;
    let (status, _) = h2_request(&mut client, "/v1/chat/completions", Bytes::from_static(CHAT.as_bytes())).await;
    assert_eq!(status, 200, "an idle HTTP/2 connection outlives the head deadline");

    // Part of the preface, then silence: held to the deadline like a slow HTTP/1 head.
    let closed_after = |preamble: &'static [u8], addr: SocketAddr| async move {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(preamble).await.expect("write");
        let started = std::time::Instant::now();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(6), tcp.read_to_end(&mut sink)).await;
        started.elapsed()
    };
    let waited = closed_after(b"PRI * HTTP/2.0\r\n", h2c).await;
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // A slow HTTP/1 head on the h2c listener, and on the plain one.
    for addr in [h2c, plain] {
        let waited = closed_after(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n", addr).await;
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
    }
}

/// A client that chose HTTP/2 by ALPN and then sends nothing is held to the head deadline too.
#[tokio::test]
async fn a_silent_client_after_an_h2_handshake_is_closed_at_the_deadline() {
    let (dir, authority) = certified("edge-h2-silent");
    let secure = dead_address();
    let yaml = edge_yaml(
        &dir,
        "http://127.0.0.1:9",
        "  header_read_timeout_seconds: 1\n",
        &format!("    - {{address: \"{secure}\", tls: true}}\n"),
    );
    let _gw = gateway(&yaml);
    let mut tls = tls_connect(&authority, secure, "localhost", &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), tls.read_to_end(&mut sink)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `trusted_proxies` set, a PROXY header counts only from those peers.
#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    let plain = dead_address();
    let yaml = format!(
        "server:\n  trusted_proxies: [\"10.0.0.0/8\"]\n  listeners:\n    - {{address: \"{plain}\", proxy_protocol: true}}\n"
    );
    let _gw = gateway(&yaml);
    let reply = get_after(plain, b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 8080\r\n", "/api/version").await;
    assert!(
        reply.is_empty(),
        "a loopback claim from outside the balancers is not served: {reply}"
    );
}

/// A listener address already taken is an error at start, naming it.
#[test]
fn a_busy_listener_address_is_an_error_at_start() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = busy.local_addr().expect("addr");
    let yaml = format!("server:\n  listeners:\n    - {{address: \"{address}\"}}\n");
    let config = asbru_config::load_str(&yaml, "busy.yaml").expect("loads").config;
    let err = asbru::server::spawn(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&address.to_string()) && err.contains("in use"), "{err}");
}

/// HTTP/2 connections get the configured stream cap, and are closed once idle past the
/// HTTP/2 idle timeout.
#[tokio::test]
async fn http2_stream_cap_and_idle_timeout_apply() {
    let upstream = default_mock();
    let h2c = dead_address();
    let yaml = format!(
        "server:\n  h2_max_concurrent_streams: 3\n  h2_idle_timeout_seconds: 1\n  listeners:\n    - {{address: \"{h2c}\", h2c: true}}\nproviders:\n{}",
        provider_yaml("openai", &upstream.base_url(), "")
    );
    let _gw = gateway(&yaml);
    let (mut client, connection) = h2::client::handshake(TcpStream::connect(h2c).await.expect("connect"))
        .await
        .expect("h2 handshake");
    let driving = tokio::spawn(connection);
    let (status, _) = h2_request(&mut client, "/v1/chat/completions", Bytes::from_static(CHAT.as_bytes())).await;
    assert_eq!(status, 200);
    assert_eq!(
        client.current_max_send_streams(),
        3,
        "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), driving).await;
    assert!(ended.is_ok(), "the idle connection was closed by the server");
}

/// Under systemd (`Type=notify`), the gateway reports itself ready, and as the service's main
/// process, once it accepts connections: what `conf/asbru.service` relies on for reloads.
#[test]
fn systemd_is_told_the_main_pid_once_the_gateway_listens() {
    let dir = temp_dir("edge-notify");
    let socket_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let addr = dead_address();
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_asbru"))
            .args(["serve", "--listen", &addr.to_string(), "--app-dir"])
            .arg(&dir)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn asbru"),
    );
    let mut message = [0u8; 256];
    let n = notify.recv(&mut message).expect("a notification");
    let text = String::from_utf8_lossy(&message[..n]).into_owned();
    assert!(text.contains(&format!("MAINPID={}", child.0.id())), "{text}");
    assert!(text.contains("READY=1"), "{text}");
    assert!(std::net::TcpStream::connect(addr).is_ok(), "ready means accepting");
    let _ = child.0.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGQUIT with no new process waiting on the upgrade socket is logged and ignored: the gateway
/// serves on instead of stopping with nothing to take over its sockets.
#[test]
fn a_sigquit_without_a_new_process_keeps_the_gateway_serving() {
    let dir = temp_dir("edge-lonely-quit");
    let addr = dead_address();
    let config = dir.join("asbru.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{data_dir: \"{}\", grace_period_seconds: 1}}\nconfig_store: {{enabled: false}}\n",
            dir.display()
        ),
    )
    .expect("write config");
    let mut child = serve(&config, addr, false, &dir.join("gateway.log"));
    asbru::server::wait_ready(addr).expect("ready");
    let quit = std::process::Command::new("kill")
        .args(["-QUIT", &child.0.id().to_string()])
        .status()
        .expect("kill -QUIT");
    assert!(quit.success());
    std::thread::sleep(Duration::from_millis(7500));
    assert!(matches!(child.0.try_wait(), Ok(None)), "still running");
    let health = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{addr}/health"))
        .output();
    let served = match health {
        Ok(out) => String::from_utf8_lossy(&out.stdout) == "200",
        // Without curl, a bare connection shows the listener is still there.
        Err(_) => std::net::TcpStream::connect(addr).is_ok(),
    };
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(served, "still serving after the ignored SIGQUIT\n{log}");
    assert!(log.contains("no new asbru listens"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A provider whose certificate chains to a private CA: trusted through
/// `network_config.ca_cert_pem`, refused without it or with another CA. The provider here is a
/// second gateway terminating TLS in front of the mock.
#[tokio::test]
async fn a_provider_behind_a_private_ca_is_trusted_through_ca_cert_pem() {
    let upstream = default_mock();
    let dir = temp_dir("edge-upstream-ca");
    let authority = Authority::new();
    authority.issue(&dir, "default", &["localhost", "127.0.0.1"]);
    authority.issue(&dir, "b", &["b.test"]);
    let secure = dead_address();
    let _provider = gateway(&edge_yaml(
        &dir,
        &upstream.base_url(),
        "",
        &format!("    - {{address: \"{secure}\", tls: true}}\n"),
    ));
    // The front gateway calls the provider gateway's /openai routes, where a bare model is
    // OpenAI's.
    let front = |ca: Option<String>| {
        let ca_line = ca.map_or(String::new(), |pem| {
            format!(
                ", ca_cert_pem: {}",
                serde_json::to_string(&pem).expect("PEM as a string")
            )
        });
        gateway(&format!(
            "providers:\n  openai:\n    keys: [{{value: sk-front, models: [\"*\"]}}]\n    network_config: {{base_url: \"https://localhost:{}/openai\"{ca_line}}}\n",
            secure.port()
        ))
    };

    let trusting = front(Some(authority.cert.pem()));
    let reply = post(&trusting, "/v1/chat/completions", CHAT).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert!(reply.text().contains("Hello from the asbru mock provider."));
    let served = upstream.state.request_count();
    assert!(served >= 1);

    // The system roots do not know the private CA, and another CA is not this one. A PEM with no
    // readable certificate, or an unset env reference, refuses TLS instead of falling back to
    // the system roots.
    let unreadable = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string();
    let unset = "env.ASBRU_TEST_CA_THAT_IS_NOT_SET".to_string();
    for ca in [None, Some(Authority::new().cert.pem()), Some(unreadable), Some(unset)] {
        let refusing = front(ca);
        let reply = post(&refusing, "/v1/chat/completions", CHAT).await;
        assert_eq!(reply.status(), 502, "{}", reply.text());
        assert!(reply.json()["error"]["message"].is_string(), "{}", reply.text());
    }
    assert_eq!(
        upstream.state.request_count(),
        served,
        "nothing reached the provider untrusted"
    );

    // Two providers on the same host, one trusting the CA and one not: the connection the first
    // verified and pooled is not lent to the second.
    let pem = serde_json::to_string(&authority.cert.pem()).expect("PEM as a string");
    let both = gateway(&format!(
        "providers:\n  openai:\n    keys: [{{value: sk-front, models: [\"*\"]}}]\n    network_config: {{base_url: \"https://localhost:{port}/openai\", ca_cert_pem: {pem}}}\n  mirror:\n    keys: [{{value: sk-front, models: [\"*\"]}}]\n    network_config: {{base_url: \"https://localhost:{port}/openai\"}}\n    custom_provider_config: {{base_provider_type: openai}}\n",
        port = secure.port()
    ));
    let reply = post(&both, "/v1/chat/completions", CHAT).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let mirrored = CHAT.replace("openai/gpt-4o", "mirror/gpt-4o");
    let reply = post(&both, "/v1/chat/completions", &mirrored).await;
    assert_eq!(reply.status(), 502, "{}", reply.text());
    assert_eq!(upstream.state.request_count(), served + 1);
}

#[test]
fn a_ca_cert_pem_without_a_certificate_is_named() {
    let result = asbru_config::load_str(
        "providers:\n  openai:\n    keys: [{value: sk-x}]\n    network_config: {ca_cert_pem: \"not a certificate\"}\n",
        "ca.yaml",
    );
    let message = match result {
        Ok(_) => panic!("a ca_cert_pem without a PEM certificate is refused"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("ca_cert_pem"), "{message}");
}
