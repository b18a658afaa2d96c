//! Encryption at rest for literal secrets (provider key values, virtual key values): AES-256-GCM
//! with a key derived from `encryption_key` by Argon2id. Ciphertext is stored as base64 of
//! `nonce || ciphertext+tag`. `env.NAME` references are never encrypted: they are not secrets.
//!
//! The derivation uses a fixed, asbru-specific salt so that the same `encryption_key` always gives
//! the same key across restarts and nodes; the key therefore cannot change once rows are encrypted.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const SALT: &[u8] = b"asbru-config-store-encryption-v1";
const NONCE_LEN: usize = 12;

/// Why a secret could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The key material is empty or the derivation failed.
    #[error("encryption_key cannot be used: {0}")]
    Key(String),
    /// The stored text is not something this key encrypted.
    #[error(
        "a stored secret cannot be decrypted: the encryption_key differs from the one it was written with, or the row is damaged"
    )]
    Decrypt,
}

/// The at-rest cipher.
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    /// Derives the cipher from `encryption_key` material.
    pub fn derive(material: &str) -> Result<Cipher, SecretError> {
        if material.is_empty() {
            return Err(SecretError::Key("it is empty".into()));
        }
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(material.as_bytes(), SALT, &mut key)
            .map_err(|e| SecretError::Key(e.to_string()))?;
        Ok(Cipher {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        })
    }

    /// Encrypts `plaintext`; each call uses a fresh random nonce.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(&nonce, plaintext.as_bytes())
            .map_err(|_| SecretError::Key("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`Cipher::encrypt`] produced.
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let raw = STANDARD.decode(stored).map_err(|_| SecretError::Decrypt)?;
        if raw.len() <= NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }
}

/// How a secret is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionStatus {
    /// As written.
    Plaintext,
    /// Sealed with the store's cipher.
    Encrypted,
}

impl EncryptionStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionStatus::Plaintext => "plaintext",
            EncryptionStatus::Encrypted => "encrypted",
        }
    }
}

/// Seals a secret for storage: literal values are encrypted when a cipher is set; `env.NAME`
/// references and empty values stay as they are.
pub fn seal(cipher: Option<&Cipher>, value: &str) -> Result<(String, EncryptionStatus), SecretError> {
    match cipher {
        Some(c) if !value.is_empty() && asbru_config::env::reference(value).is_none() => {
            Ok((c.encrypt(value)?, EncryptionStatus::Encrypted))
        }
        _ => Ok((value.to_string(), EncryptionStatus::Plaintext)),
    }
}

/// Opens a stored secret according to its status.
pub fn open(cipher: Option<&Cipher>, stored: &str, status: &str) -> Result<String, SecretError> {
    match (status, cipher) {
        ("encrypted", Some(c)) => c.decrypt(stored),
        ("encrypted", None) => Err(SecretError::Key(
            "rows are encrypted but no encryption_key is configured".into(),
        )),
        _ => Ok(stored.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let c = Cipher::derive("correct horse battery staple").expect("derive");
        let sealed = c.encrypt("sk-secret").expect("encrypt");
        assert_ne!(sealed, "sk-secret");
        assert!(!sealed.contains("sk-secret"));
        assert_ne!(
            sealed,
            c.encrypt("sk-secret").expect("encrypt"),
            "fresh nonce each time"
        );
        assert_eq!(c.decrypt(&sealed).expect("decrypt"), "sk-secret");
        let same = Cipher::derive("correct horse battery staple").expect("derive");
        assert_eq!(same.decrypt(&sealed).expect("same key, new process"), "sk-secret");
        let other = Cipher::derive("another key").expect("derive");
        assert_eq!(other.decrypt(&sealed), Err(SecretError::Decrypt));
        assert_eq!(c.decrypt("not base64!"), Err(SecretError::Decrypt));
        assert!(Cipher::derive("").is_err());
    }

    #[test]
    fn references_are_not_sealed() {
        let c = Cipher::derive("k").expect("derive");
        assert_eq!(
            seal(Some(&c), "env.OPENAI_API_KEY").expect("seal").1,
            EncryptionStatus::Plaintext
        );
        assert_eq!(
            seal(None, "sk-x").expect("seal"),
            ("sk-x".into(), EncryptionStatus::Plaintext)
        );
        let (stored, status) = seal(Some(&c), "sk-x").expect("seal");
        assert_eq!(status, EncryptionStatus::Encrypted);
        assert_eq!(open(Some(&c), &stored, status.as_str()).expect("open"), "sk-x");
        assert!(open(None, &stored, "encrypted").is_err());
    }
}
