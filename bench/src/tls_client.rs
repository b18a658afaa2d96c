//! The load tool's HTTPS requests on connections of their own: each one a full TLS handshake
//! (session resumption off, so every handshake does the certificate's signature), one
//! HTTP/1.1 request with `Connection: close`, and the reply read to its end. Keep-alive HTTPS
//! goes through Pingora's pooled connector instead.
//!
//! The bench measures the server's cost on loopback, against certificates it made itself: the
//! client accepts any certificate, and refuses any target that is not loopback unless asked.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts every certificate (the bench's own, on loopback).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connector making full handshakes only.
pub fn connector() -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// What one request got.
pub struct Exchange {
    /// Reply status (0 when the reply had no status line).
    pub status: u16,
    /// Time to the reply's first byte.
    pub ttfb: Duration,
}

/// Connects, handshakes, sends `request` (a whole HTTP/1.1 request with `Connection: close`)
/// and reads the reply to its end. `Err` names the step that failed.
pub async fn exchange(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    server_name: &ServerName<'static>,
    request: &[u8],
    intended: Instant,
) -> Result<Exchange, &'static str> {
    let tcp = TcpStream::connect(addr).await.map_err(|_| "connect")?;
    let _ = tcp.set_nodelay(true);
    let mut tls = connector
        .connect(server_name.clone(), tcp)
        .await
        .map_err(|_| "handshake")?;
    tls.write_all(request).await.map_err(|_| "write")?;
    let mut reply = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let mut ttfb = None;
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                ttfb.get_or_insert_with(|| intended.elapsed());
                reply.extend_from_slice(&chunk[..n]);
            }
            // A peer closing without close_notify after a complete reply is common; the
            // reply is judged by what arrived.
            Err(_) if !reply.is_empty() => break,
            Err(_) => return Err("read"),
        }
    }
    let status = reply
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Exchange {
        status,
        ttfb: ttfb.unwrap_or_else(|| intended.elapsed()),
    })
}
