//! Access tokens for Vertex AI service accounts (Google's OAuth2 service-account flow,
//! <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>): a JWT
//! signed with the account's RSA key (RS256, issuer the account's email, audience its
//! `token_uri`, scope cloud-platform) is exchanged at `token_uri` for a bearer token, which is
//! cached until shortly before it expires.
//!
//! Requests read the cached token. When it is within [`REFRESH_AHEAD`] of expiry, the first
//! request to notice starts a refresh in the background and goes on with the current token; only
//! a request finding no usable token at all (the first one, or after a long failure) waits for
//! the exchange, and concurrent ones wait for the same exchange.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use asbru_filters::snapshot::ServiceAccount;
use asbru_providers::errors::WireError;
use asbru_providers::provider::vertex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use asbru_filters::snapshot::{NetworkSettings, Upstream};

/// Where token requests go: an `application/x-www-form-urlencoded` POST outside any provider,
/// verified as the provider's own connections are (`network_config.ca_cert_pem`,
/// `insecure_skip_verify`): a private CA in front of Vertex is in front of its token endpoint
/// too. The gateway's pooled connector implements it (see `exchange::upstream`).
#[async_trait::async_trait]
pub trait FormPoster: Send + Sync {
    /// POSTs `form` to `path` at `upstream`, trusting what `net` trusts; the status and at
    /// most `limit` bytes of the body, or why it failed, in words that carry no address or
    /// secret.
    async fn post_form(
        &self,
        upstream: &Upstream,
        net: &NetworkSettings,
        path: &str,
        form: String,
        limit: usize,
        deadline: Instant,
    ) -> Result<(u16, bytes::Bytes), &'static str>;
}

/// A token this close to expiry is refreshed in the background.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// A token this close to expiry is not used.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Longest wait for the token endpoint.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest token reply read.
const MAX_TOKEN_REPLY: usize = 64 * 1024;
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME_SECS: u64 = 3600;

struct Token {
    value: Arc<str>,
    expires_at: Instant,
}

/// One service account's token.
struct TokenSource {
    account: Arc<ServiceAccount>,
    token: ArcSwapOption<Token>,
    refreshing: AtomicBool,
    exchange: tokio::sync::Mutex<()>,
}

/// Every service account's cached token, by account.
#[derive(Default)]
pub struct VertexTokens {
    sources: papaya::HashMap<String, Arc<TokenSource>>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn failure(message: String) -> WireError {
    WireError::gateway(502, "api_error", message).with_code("vertex_auth_failed")
}

impl VertexTokens {
    /// A bearer token for `account`: cached, refreshed ahead of expiry off the request path,
    /// fetched (once for all waiting requests) when none is usable. `net` is the provider's
    /// network settings, whose trust the token endpoint's connection follows.
    pub async fn bearer(
        &self,
        state: &Arc<dyn FormPoster>,
        account: &Arc<ServiceAccount>,
        net: &NetworkSettings,
    ) -> Result<Arc<str>, WireError> {
        // A token fetched under one provider's TLS trust is not lent to a provider that trusts
        // otherwise (another CA, or verification off).
        let id = format!(
            "{}\n{}\n{}\n{}\n{}",
            account.client_email,
            account.token_uri,
            account.private_key_id.as_deref().unwrap_or_default(),
            net.trust_group,
            net.insecure_skip_verify
        );
        let source = {
            let sources = self.sources.pin();
            match sources.get(&id) {
                // The same account across a config reload keeps its token.
                Some(source) if source.account.private_key == account.private_key => Arc::clone(source),
                _ => {
                    let source = Arc::new(TokenSource {
                        account: Arc::clone(account),
                        token: ArcSwapOption::empty(),
                        refreshing: AtomicBool::new(false),
                        exchange: tokio::sync::Mutex::new(()),
                    });
                    sources.insert(id, Arc::clone(&source));
                    source
                }
            }
        };
        let now = Instant::now();
        if let Some(token) = source.token.load_full()
            && token.expires_at > now + EXPIRY_MARGIN
        {
            if token.expires_at < now + REFRESH_AHEAD && !source.refreshing.swap(true, Ordering::AcqRel) {
                let (state, source, net) = (Arc::clone(state), Arc::clone(&source), net.clone());
                tokio::spawn(async move {
                    if let Err(e) = source.refresh(state.as_ref(), &net).await {
                        tracing::warn!(account = %source.account.client_email, "vertex token refresh failed: {}", e.message);
                    }
                    source.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(Arc::clone(&token.value));
        }
        let _turn = source.exchange.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(token) = source.token.load_full()
            && token.expires_at > Instant::now() + EXPIRY_MARGIN
        {
            return Ok(Arc::clone(&token.value));
        }
        source.refresh(state.as_ref(), net).await
    }
}

impl TokenSource {
    /// Exchanges a fresh assertion for a token and caches it.
    async fn refresh(&self, state: &dyn FormPoster, net: &NetworkSettings) -> Result<Arc<str>, WireError> {
        let account = &self.account;
        let assertion = sign_assertion(account)?;
        let form = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth2%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let (status, body) = state
            .post_form(
                &account.token_upstream,
                net,
                &account.token_path,
                form,
                MAX_TOKEN_REPLY,
                deadline,
            )
            .await
            .map_err(|why| failure(format!("vertex: the service account's token endpoint {why}")))?;
        if status != 200 {
            // The reply may quote the assertion: only its status is reported.
            return Err(failure(format!(
                "vertex: the service account {} was refused an access token (status {status})",
                account.client_email
            )));
        }
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|_| failure("vertex: the token endpoint's reply has no access_token".to_string()))?;
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS));
        let value: Arc<str> = reply.access_token.into();
        self.token.store(Some(Arc::new(Token {
            value: Arc::clone(&value),
            expires_at: Instant::now() + lifetime,
        })));
        Ok(value)
    }
}

/// The signed JWT a service account presents at its token endpoint.
fn sign_assertion(account: &ServiceAccount) -> Result<String, WireError> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|_| {
        failure(format!(
            "vertex: the private_key of service account {} is not a PEM RSA key",
            account.client_email
        ))
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        iss: &account.client_email,
        scope: vertex::SCOPE,
        aud: &account.token_uri,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = account.private_key_id.clone();
    jsonwebtoken::encode(&header, &claims, &key).map_err(|_| failure("vertex: signing the token request failed".into()))
}
