//! The `upstream-tls` scenario's certificates: a CA the bench makes, and a certificate it signs
//! for the mock provider (`localhost`, `127.0.0.1`), so that the mock serves HTTPS as every real
//! provider does. The gateway trusts the CA through `network_config.ca_cert_pem` and nginx
//! through `proxy_ssl_trusted_certificate`, both verifying the mock's certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::compare_setup::CompareError;

/// The CA and the mock's TLS configuration.
pub struct BenchCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The CA certificate written to a file (for nginx).
    pub ca_file: PathBuf,
    /// The mock's server configuration, with the certificate the CA signed.
    pub server: Arc<rustls::ServerConfig>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CompareError {
    CompareError::Start(format!("{what}: {e}"))
}

/// Makes the CA and the mock's certificate; the CA is written under `dir`.
pub fn make(dir: &Path) -> Result<BenchCa, CompareError> {
    let ca_key = KeyPair::generate().map_err(|e| failed("cannot make the bench CA key", e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("bench CA", e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "asbru bench CA");
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(|e| failed("cannot sign the bench CA", e))?;
    let leaf_key = KeyPair::generate().map_err(|e| failed("cannot make the mock's key", e))?;
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .and_then(|params| params.signed_by(&leaf_key, &ca, &ca_key))
        .map_err(|e| failed("cannot sign the mock's certificate", e))?;
    let ca_file = dir.join("bench-ca.pem");
    std::fs::write(&ca_file, ca.pem()).map_err(|e| failed("cannot write the bench CA", e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .map_err(|e| failed("the mock's certificate", e))?;
    Ok(BenchCa {
        ca_pem: ca.pem(),
        ca_file,
        server: Arc::new(server),
    })
}
