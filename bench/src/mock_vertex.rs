//! The mock's Vertex AI pieces: Google's OAuth2 token endpoint (`POST /token`, a service
//! account's signed JWT exchanged for an access token) and Claude on Vertex
//! (`…/publishers/anthropic/models/{model}:rawPredict` / `:streamRawPredict`). Gemini models on
//! Vertex use the Gemini handlers, whose route matches Vertex paths too.
//!
//! Vertex calls must carry a token this mock issued (or an API key); others get Google's 401.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};

use super::mock_shared::MockResult;
use super::mock_shared::write_json;

/// Tokens issued, and how many token requests were served.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashSet<String>>,
    requests: AtomicU64,
    /// The claims of the last assertion exchanged.
    last_claims: Mutex<Option<Value>>,
    /// The last assertion exchanged, whole (for signature checks in tests).
    last_assertion: Mutex<Option<String>>,
}

impl Tokens {
    /// Token requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The claims of the last JWT assertion exchanged.
    pub fn last_claims(&self) -> Option<Value> {
        self.last_claims.lock().ok().and_then(|c| c.clone())
    }

    /// The last JWT assertion exchanged.
    pub fn last_assertion(&self) -> Option<String> {
        self.last_assertion.lock().ok().and_then(|a| a.clone())
    }

    /// Whether `authorization` carries a token this mock issued.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        self.issued.lock().is_ok_and(|issued| issued.contains(token))
    }
}

/// A Vertex publisher path (`…/projects/{p}/locations/{r}/publishers/…` or express mode's
/// `/v1/publishers/…`).
pub fn is_vertex(path: &str) -> bool {
    path.contains("/publishers/")
}

/// `…/publishers/anthropic/models/{model}:rawPredict` → `(model, stream)`.
pub fn claude_route(path: &str) -> Option<(&str, bool)> {
    let (_, rest) = path.split_once("/publishers/anthropic/models/")?;
    let (model, method) = rest.split_once(':')?;
    match method {
        "rawPredict" => Some((model, false)),
        "streamRawPredict" => Some((model, true)),
        _ => None,
    }
}

/// Decodes the claims of a JWT (without checking its signature: tests check that).
fn claims(jwt: &str) -> Option<Value> {
    let mut parts = jwt.split('.');
    let (_header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if signature.is_empty() || parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `POST /token`: a `jwt-bearer` grant whose assertion names an issuer and the cloud-platform
/// scope gets `{access_token, expires_in, token_type}`; anything else Google's `invalid_grant`.
pub async fn token(
    session: &mut ServerSession,
    tokens: &Tokens,
    body: &[u8],
    ttl_secs: u64,
    refuse: bool,
) -> MockResult<bool> {
    tokens.requests.fetch_add(1, Ordering::Relaxed);
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let grant_ok = field("grant_type") == Some("urn:ietf:params:oauth2:grant-type:jwt-bearer");
    let assertion = field("assertion").unwrap_or_default();
    let claims = claims(assertion).filter(|c| {
        c["iss"].as_str().is_some_and(|i| !i.is_empty())
            && c["scope"].as_str().is_some_and(|s| s.contains("cloud-platform"))
            && c["exp"].as_u64() > c["iat"].as_u64()
    });
    let Some(claims) = claims.filter(|_| grant_ok && !refuse) else {
        let err = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."});
        return write_json(session, 400, &err).await.map(|_| true);
    };
    let n = tokens.requests();
    let token = format!("ya29.mock-token-{n}");
    if let Ok(mut issued) = tokens.issued.lock() {
        issued.insert(token.clone());
    }
    if let Ok(mut last) = tokens.last_claims.lock() {
        *last = Some(claims);
    }
    if let Ok(mut last) = tokens.last_assertion.lock() {
        *last = Some(assertion.to_string());
    }
    let reply = json!({"access_token": token, "expires_in": ttl_secs, "token_type": "Bearer"});
    write_json(session, 200, &reply).await.map(|_| true)
}

/// Google's 401 for a Vertex call without a valid token or key.
pub async fn unauthenticated(session: &mut ServerSession) -> MockResult<bool> {
    let err = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED"}});
    write_json(session, 401, &err).await.map(|_| true)
}

/// Why a Claude-on-Vertex body is refused, if it is: it must carry Vertex's
/// `anthropic_version` and name no `model`.
pub fn claude_body_problem(request: &Value) -> Option<&'static str> {
    if request["anthropic_version"] != "vertex-2023-10-16" {
        return Some("anthropic_version: Field required (vertex-2023-10-16)");
    }
    if request.get("model").is_some() {
        return Some("model: Extra inputs are not permitted");
    }
    None
}
