//! TLS for listeners: certificates read from PEM files, the one served chosen by the name the
//! client asks for (SNI), and a file replaced on disk served from the next handshake on.
//!
//! Each handshake compares the files' identity (inode, size, modification time) with the one
//! loaded: two `stat` calls, next to the handshake's own public-key work. A changed file is read
//! again; a replacement that does not load (half written, wrong key) is logged and the previous
//! certificate kept, so a bad deploy never takes TLS down.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use asbru_config::model::TlsFiles;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate file that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct CertError {
    /// The file at fault.
    pub file: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Which version of a file was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    size: u64,
    modified_ns: i128,
}

fn stamp_of(path: &str) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        size: meta.size(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

/// A PEM reading error in words.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a PEM section has no END line (is the file cut short?)".into(),
        Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        other => other.to_string(),
    }
}

/// A certificate chain and its key, read from `cert_file` and `key_file`.
pub fn load_pair(cert_file: &str, key_file: &str) -> Result<CertifiedKey, CertError> {
    let cert_error = |reason: String| CertError {
        file: cert_file.to_string(),
        reason,
    };
    let key_error = |reason: String| CertError {
        file: key_file.to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_error(format!("cannot read the certificate chain: {}", pem_problem(&e))))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain: {}", pem_problem(&e))))?;
    if chain.is_empty() {
        return Err(cert_error("holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => key_error(
            "holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1; encrypted keys are not supported)".into(),
        ),
        e => key_error(format!("cannot read a PEM private key: {}", pem_problem(&e))),
    })?;
    let signer = ring::sign::any_supported_type(&key).map_err(|e| key_error(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| key_error(format!("does not match the certificate in {cert_file}: {e}")))?;
    Ok(certified)
}

/// One certificate pair, reloaded when its files change.
struct Reloading {
    cert_file: String,
    key_file: String,
    loaded: ArcSwap<Loaded>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Option<Stamp>, Option<Stamp>),
    /// A changed version that failed to load (reported once, retried when it changes again).
    rejected: Option<(Option<Stamp>, Option<Stamp>)>,
}

impl Reloading {
    fn open(cert_file: &str, key_file: &str) -> Result<Reloading, CertError> {
        let stamps = (stamp_of(cert_file), stamp_of(key_file));
        let key = Arc::new(load_pair(cert_file, key_file)?);
        Ok(Reloading {
            cert_file: cert_file.to_string(),
            key_file: key_file.to_string(),
            loaded: ArcSwap::from_pointee(Loaded {
                key,
                stamps,
                rejected: None,
            }),
        })
    }

    /// The pair to serve now, read again first when a file changed on disk.
    fn current(&self) -> Arc<CertifiedKey> {
        let loaded = self.loaded.load();
        let stamps = (stamp_of(&self.cert_file), stamp_of(&self.key_file));
        if stamps == loaded.stamps || loaded.rejected == Some(stamps) {
            return loaded.key.clone();
        }
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(key) => {
                let key = Arc::new(key);
                tracing::info!(cert_file = %self.cert_file, "TLS certificate changed on disk: serving the new one");
                // Only over the version read above: a handshake that loaded a newer one
                // meanwhile is not undone.
                self.loaded.compare_and_swap(
                    &loaded,
                    Arc::new(Loaded {
                        key: key.clone(),
                        stamps,
                        rejected: None,
                    }),
                );
                key
            }
            Err(e) => {
                tracing::warn!(
                    "TLS certificate changed on disk but cannot be used, still serving the previous one: {e}"
                );
                self.loaded.compare_and_swap(
                    &loaded,
                    Arc::new(Loaded {
                        key: loaded.key.clone(),
                        stamps: loaded.stamps,
                        rejected: Some(stamps),
                    }),
                );
                loaded.key.clone()
            }
        }
    }
}

/// A name a certificate answers for: exact, or `*.` and one label.
#[derive(Debug)]
enum NamePattern {
    Exact(String),
    Wildcard(String),
}

impl NamePattern {
    fn of(name: &str) -> NamePattern {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => NamePattern::Wildcard(format!(".{suffix}")),
            None => NamePattern::Exact(name),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            NamePattern::Exact(name) => name == host,
            NamePattern::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

/// The certificates of one TLS listener.
pub struct Certificates {
    default: Reloading,
    by_name: Vec<(Vec<NamePattern>, Reloading)>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("default", &self.default.cert_file)
            .field(
                "by_name",
                &self.by_name.iter().map(|(n, r)| (n, &r.cert_file)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Certificates {
    /// Reads every certificate of `files`; the first one that cannot be used is the error.
    pub fn open(files: &TlsFiles) -> Result<Certificates, CertError> {
        let default = Reloading::open(&files.cert_file, &files.key_file)?;
        let by_name = files
            .by_name
            .iter()
            .map(|(names, cert, key)| {
                Ok((
                    names.iter().map(|n| NamePattern::of(n)).collect(),
                    Reloading::open(cert, key)?,
                ))
            })
            .collect::<Result<Vec<_>, CertError>>()?;
        Ok(Certificates { default, by_name })
    }

    fn pick(&self, server_name: Option<&str>) -> &Reloading {
        let Some(host) = server_name.map(|h| h.trim_end_matches('.').to_ascii_lowercase()) else {
            return &self.default;
        };
        // An exact name wins over a wildcard, whatever their order (as nginx's server_name).
        let exact = |p: &NamePattern| matches!(p, NamePattern::Exact(_)) && p.matches(&host);
        let any = |p: &NamePattern| p.matches(&host);
        self.by_name
            .iter()
            .find(|(patterns, _)| patterns.iter().any(exact))
            .or_else(|| self.by_name.iter().find(|(patterns, _)| patterns.iter().any(any)))
            .map_or(&self.default, |(_, pair)| pair)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).current())
    }
}

/// A rustls server config for `files`: TLS 1.2 and 1.3 with ring's AEAD suites, HTTP/2 and
/// HTTP/1.1 offered by ALPN.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let certificates = Certificates::open(files)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| CertError {
            file: files.cert_file.clone(),
            reason: format!("TLS settings refused: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certificates));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate file `config`'s listeners name, checked: the problems, each naming its file.
pub fn check(server: &asbru_config::model::ServerConfig) -> Vec<CertError> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for listener in server.resolved_listeners() {
        let Some(files) = listener.tls else { continue };
        let pairs = std::iter::once((files.cert_file.clone(), files.key_file.clone()))
            .chain(files.by_name.iter().map(|(_, c, k)| (c.clone(), k.clone())));
        for (cert, key) in pairs {
            if seen.insert((cert.clone(), key.clone()))
                && let Err(e) = load_pair(&cert, &key)
            {
                problems.push(e);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        let wildcard = NamePattern::of("*.Example.com");
        assert!(wildcard.matches("api.example.com"));
        assert!(!wildcard.matches("example.com"));
        assert!(!wildcard.matches("a.b.example.com"));
        let exact = NamePattern::of("api.example.com.");
        assert!(exact.matches("api.example.com"));
        assert!(!exact.matches("www.example.com"));
    }

    #[test]
    fn an_exact_name_wins_over_an_earlier_wildcard() {
        let dir = std::env::temp_dir().join(format!("asbru-tls-sni-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let write = |stem: &str, name: &str| {
            let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
            let (cert, key) = (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.key")));
            std::fs::write(&cert, made.cert.pem()).expect("write");
            std::fs::write(&key, made.key_pair.serialize_pem()).expect("write");
            (cert.display().to_string(), key.display().to_string())
        };
        let (default_cert, default_key) = write("default", "localhost");
        let (wild_cert, wild_key) = write("wild", "*.example.com");
        let (api_cert, api_key) = write("api", "api.example.com");
        let files = TlsFiles {
            cert_file: default_cert,
            key_file: default_key,
            by_name: vec![
                (vec!["*.example.com".into()], wild_cert.clone(), wild_key),
                (vec!["api.example.com".into()], api_cert.clone(), api_key),
            ],
        };
        let certificates = Certificates::open(&files).expect("open");
        assert_eq!(certificates.pick(Some("api.example.com")).cert_file, api_cert);
        assert_eq!(certificates.pick(Some("www.example.com")).cert_file, wild_cert);
        assert_eq!(certificates.pick(Some("other.test")).cert_file, files.cert_file);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_garbled_file_is_named() {
        let dir = std::env::temp_dir().join(format!("asbru-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let garbled = dir.join("garbled.pem");
        std::fs::write(&garbled, "not a certificate").expect("write");
        let garbled = garbled.display().to_string();
        let err = load_pair("/nonexistent/cert.pem", "/nonexistent/key.pem").expect_err("missing");
        assert_eq!(err.file, "/nonexistent/cert.pem");
        let err = load_pair(&garbled, &garbled).expect_err("garbled");
        assert_eq!(err.file, garbled);
        assert!(err.reason.contains("no PEM certificate"), "{}", err.reason);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
