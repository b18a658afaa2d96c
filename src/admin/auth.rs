//! Admin authentication, as Bifrost's `auth_config` describes it (`is_enabled`,
//! `admin_username`, `admin_password` (may be `env.NAME`), `disable_auth_on_inference`):
//!
//! - `POST /api/session/login` returns a session token, also set as an `HttpOnly`,
//!   `SameSite=Strict` cookie; `POST /api/session/logout`; `GET /api/session/is-auth-enabled`.
//!   Basic auth and `Authorization: Bearer <session>` are accepted too.
//! - The admin password is kept as an Argon2id hash, never as the plain value; a verified Basic
//!   credential is cached for a minute (by its SHA-256), so Basic clients do not pay an Argon2id
//!   check per request.
//! - Failed logins and failed Basic checks are counted per client address: past
//!   [`MAX_FAILURES`] in a minute, that address gets 429 until the minute ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use asbru_config::Config;
use asbru_config::env::{self, Resolved};
use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Failed attempts per client address and minute before it is refused.
pub const MAX_FAILURES: u32 = 10;
/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthSettings {
    is_enabled: bool,
    admin_username: Option<String>,
    admin_password: Option<String>,
    disable_auth_on_inference: bool,
}

/// The admin credentials in force, resolved from one config.
#[derive(Debug, Default, Clone)]
pub struct AdminAuth {
    /// Admin authentication is on.
    pub enabled: bool,
    username: String,
    /// Argon2id PHC string of the password.
    password_hash: Option<String>,
    /// Inference routes need neither admin credentials nor a virtual key.
    pub disable_auth_on_inference: bool,
}

/// Hashes a password with Argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

impl AdminAuth {
    /// Reads `governance.auth_config` (or the older top-level `auth_config`). A password already
    /// in PHC form (`$argon2id$...`) is used as is; a plain one or an `env.NAME` is hashed.
    /// Returns the settings and a warning when they cannot be used (auth then stays on and
    /// refuses every login, rather than falling open).
    pub fn from_config(config: &Config) -> (AdminAuth, Option<String>) {
        let raw = config
            .governance
            .as_ref()
            .and_then(|g| g.auth_config.clone())
            .or_else(|| config.auth_config.clone());
        let Some(raw) = raw else {
            return (AdminAuth::default(), None);
        };
        let settings: AuthSettings = match serde_json::from_value(raw) {
            Ok(s) => s,
            Err(e) => {
                let auth = AdminAuth {
                    enabled: true,
                    ..AdminAuth::default()
                };
                return (
                    auth,
                    Some(format!(
                        "auth_config cannot be read ({e}): every admin login is refused"
                    )),
                );
            }
        };
        let mut warning = None;
        let password_hash = match settings.admin_password.as_deref() {
            Some(p) if p.starts_with("$argon2") => Some(p.to_string()),
            Some(p) => match env::resolve(p) {
                Resolved::Value(v) if !v.is_empty() => hash_password(&v),
                Resolved::Value(_) => None,
                Resolved::MissingEnv(var) => {
                    warning = Some(format!(
                        "auth_config.admin_password: environment variable {var} is not set; every admin login is refused"
                    ));
                    None
                }
            },
            None => None,
        };
        if settings.is_enabled && password_hash.is_none() && warning.is_none() {
            warning = Some("auth_config is enabled without an admin_password: every admin login is refused".into());
        }
        let auth = AdminAuth {
            enabled: settings.is_enabled,
            username: settings.admin_username.unwrap_or_default(),
            password_hash,
            disable_auth_on_inference: settings.disable_auth_on_inference,
        };
        (auth, warning)
    }

    /// The stored form of `auth_config`: the password replaced by its hash.
    pub fn stored_form(mut raw: serde_json::Value) -> serde_json::Value {
        if let Some(password) = raw.get("admin_password").and_then(|p| p.as_str()).map(str::to_string)
            && !password.starts_with("$argon2")
            && env::reference(&password).is_none()
            && let Some(hash) = hash_password(&password)
            && let Some(object) = raw.as_object_mut()
        {
            object.insert("admin_password".into(), serde_json::Value::String(hash));
        }
        raw
    }

    /// The admin user's name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks a username and password (Argon2id verification: tens of milliseconds).
    pub fn verify(&self, username: &str, password: &str) -> bool {
        let Some(hash) = self.password_hash.as_deref().and_then(|h| PasswordHash::new(h).ok()) else {
            return false;
        };
        username == self.username && Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
    }
}

/// What a request presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// Nothing usable.
    Nothing,
    /// A session token (cookie `token` or `Authorization: Bearer`).
    Session(String),
    /// `Authorization: Basic`.
    Basic(String, String),
}

/// Reads the admin credentials of a request. A Bearer value that is not a session may be a
/// virtual key; callers decide.
pub fn presented(headers: &HeaderMap) -> Presented {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok())
        && let Some((scheme, rest)) = value.trim().split_once(' ')
    {
        if scheme.eq_ignore_ascii_case("basic")
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim())
            && let Ok(text) = String::from_utf8(decoded)
            && let Some((user, password)) = text.split_once(':')
        {
            return Presented::Basic(user.to_string(), password.to_string());
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Presented::Session(rest.trim().to_string());
        }
    }
    for cookie in headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()) {
        for pair in cookie.split(';') {
            if let Some(token) = pair.trim().strip_prefix("token=") {
                return Presented::Session(token.to_string());
            }
        }
    }
    Presented::Nothing
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Why a request was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No or wrong credentials.
    Unauthorized,
    /// Too many failures from this address.
    TooMany,
}

/// Sessions, the Basic cache and the failure counts. Used by admin requests (and inference
/// requests that present admin credentials), never by ordinary inference.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
    basic: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Sessions {
    /// Whether `client` has used up its failures for this minute.
    pub fn blocked(&self, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else { return false };
        let failures = locked(&self.failures);
        failures
            .get(&ip)
            .is_some_and(|(start, count)| start.elapsed() < FAILURE_WINDOW && *count >= MAX_FAILURES)
    }

    /// Counts a failed attempt from `client`.
    pub fn fail(&self, client: Option<IpAddr>) {
        let Some(ip) = client else { return };
        let mut failures = locked(&self.failures);
        if failures.len() > 10_000 {
            failures.retain(|_, (start, _)| start.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Opens a session: returns its token.
    pub fn open(&self) -> String {
        let token: [u8; 32] = rand::random();
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = locked(&self.sessions);
        sessions.retain(|_, expiry| *expiry > Instant::now());
        sessions.insert(digest(&token), Instant::now() + SESSION_TTL);
        token
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        locked(&self.sessions).remove(&digest(token));
    }

    /// Whether `token` is a live session.
    pub fn valid(&self, token: &str) -> bool {
        locked(&self.sessions)
            .get(&digest(token))
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    /// Checks what a request presented against `auth`.
    pub fn admit(&self, auth: &AdminAuth, presented: &Presented, client: Option<IpAddr>) -> Result<(), Denied> {
        if self.blocked(client) {
            return Err(Denied::TooMany);
        }
        match presented {
            Presented::Session(token) if self.valid(token) => Ok(()),
            Presented::Basic(user, password) => {
                let key = digest(&format!("{user}\u{0}{password}"));
                if locked(&self.basic).get(&key).is_some_and(|t| *t > Instant::now()) {
                    return Ok(());
                }
                if auth.verify(user, password) {
                    let mut cache = locked(&self.basic);
                    cache.retain(|_, t| *t > Instant::now());
                    cache.insert(key, Instant::now() + BASIC_CACHE_TTL);
                    Ok(())
                } else {
                    self.fail(client);
                    Err(Denied::Unauthorized)
                }
            }
            Presented::Session(_) | Presented::Nothing => Err(Denied::Unauthorized),
        }
    }

    /// Forgets cached Basic credentials (the password changed).
    pub fn forget_basic(&self) {
        locked(&self.basic).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(yaml: &str) -> AdminAuth {
        let config = asbru_config::load_str(yaml, "t.yaml").expect("valid").config;
        AdminAuth::from_config(&config).0
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        let a = auth("governance:\n  auth_config: {is_enabled: true, admin_username: admin, admin_password: s3cret}\n");
        assert!(a.enabled);
        assert!(a.password_hash.as_deref().is_some_and(|h| h.starts_with("$argon2id$")));
        assert!(a.verify("admin", "s3cret"));
        assert!(!a.verify("admin", "wrong") && !a.verify("root", "s3cret"));
        let stored = AdminAuth::stored_form(serde_json::json!({"admin_password": "s3cret"}));
        assert!(
            stored["admin_password"]
                .as_str()
                .is_some_and(|h| h.starts_with("$argon2id$"))
        );
        let none = auth("governance:\n  auth_config: {is_enabled: true, admin_username: admin}\n");
        assert!(none.enabled && !none.verify("admin", ""));
    }

    #[test]
    fn credentials_and_failures() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic YWRtaW46czNjcmV0".parse().expect("h"));
        assert_eq!(presented(&headers), Presented::Basic("admin".into(), "s3cret".into()));
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=b; token=abc".parse().expect("h"));
        assert_eq!(presented(&headers), Presented::Session("abc".into()));
        let sessions = Sessions::default();
        let token = sessions.open();
        assert!(sessions.valid(&token));
        sessions.close(&token);
        assert!(!sessions.valid(&token));
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(!sessions.blocked(ip));
            sessions.fail(ip);
        }
        assert!(sessions.blocked(ip));
        assert!(!sessions.blocked(Some(IpAddr::from([10, 0, 0, 2]))));
    }
}
