//! The [`Filter`] trait: one method per moment of a request's life, each with a default that does
//! nothing, each returning an explicit result. A filter never imports another filter; what one
//! filter learns that others need (the virtual key, the chosen key, the charge) goes into the
//! shared facts of [`RequestCtx`], and what only it needs goes into a typed slot
//! ([`RequestCtx::slots`]).
//!
//! The hooks, in the order the gateway calls them:
//!
//! | hook | when | typical use |
//! |---|---|---|
//! | [`Filter::on_config`] | a new [`Live`] is built (start-up, config change) | compile per-config state |
//! | [`Filter::on_request`] | the body is read and its head parsed | auth, routing plan, admission |
//! | [`Filter::on_attempt`] | before each try is sent (primary, retries, fallbacks) | key choice, fallback admission |
//! | [`Filter::on_upstream_head`] | a successful upstream head arrived | response headers, guards |
//! | [`Filter::on_usage`] | the provider's usage is known, before the reply's last bytes | settlement |
//! | [`Filter::on_attempt_failed`] | a target failed or was skipped; nothing reached the client | settle what it reserved |
//! | [`Filter::on_complete`] | Pingora's `logging` phase, after the response | metrics, logs |

use asbru_config::Config;
use http::HeaderMap;

use crate::ctx::RequestCtx;
use crate::live::Live;
use crate::pricing::TokenUsage;
use crate::slots::Slots;

/// What a request-level hook decided.
#[derive(Debug)]
#[must_use]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop and answer the client with this rejection, in its wire format. Final: no retry, no
    /// fallback.
    Reject(Rejection),
}

/// What an attempt hook decided about the try about to be sent.
#[derive(Debug)]
#[must_use]
pub enum AttemptFlow {
    /// Send it.
    Continue,
    /// Do not try this target at all and move to the next one; the rejection is only logged
    /// (a fallback a budget has no room for).
    Skip(Rejection),
    /// This target failed with this error (no usable key): it is reported if no later target
    /// succeeds.
    Fail(Rejection),
}

/// A successful upstream response head, as filters see it.
#[derive(Debug)]
pub struct UpstreamHead<'a> {
    /// HTTP status.
    pub status: u16,
    /// The upstream's headers.
    pub headers: &'a HeaderMap,
}

/// One filter. Every hook runs on the hot path: no I/O, no locks, no blocking.
pub trait Filter: Send + Sync {
    /// The name used in `plugins` entries, logs and metrics.
    fn name(&self) -> &'static str;

    /// A new [`Live`] was built from `config`: compile whatever this filter needs per config and
    /// keep it in `slots` (read back with [`Live::slot`]).
    fn on_config(&self, _live: &Live, _config: &Config, _slots: &mut Slots) {}

    /// The request's head is parsed and its facts are empty.
    fn on_request(&self, _live: &Live, _ctx: &mut RequestCtx) -> Flow {
        Flow::Continue
    }

    /// A try is about to be sent: [`RequestCtx::attempt`] says which target and which try.
    /// The plan is fixed once `on_request` has run: attempt hooks must not change it.
    fn on_attempt(&self, _live: &Live, _ctx: &mut RequestCtx) -> AttemptFlow {
        AttemptFlow::Continue
    }

    /// The upstream answered with a success status; nothing was sent to the client yet.
    /// Rejecting fails this target.
    fn on_upstream_head(&self, _live: &Live, _ctx: &mut RequestCtx, _head: &UpstreamHead<'_>) -> Flow {
        Flow::Continue
    }

    /// The usage the provider reported (`None`: it reported none), once per request, before
    /// the client receives the end of the reply.
    fn on_usage(&self, _live: &Live, _ctx: &mut RequestCtx, _usage: Option<TokenUsage>) {}

    /// The current target failed (every try) or was skipped, before anything reached the
    /// client. [`crate::AttemptState::answered`] says whether the upstream had answered with a
    /// success head (a filter refused it afterwards): then its work is billed.
    fn on_attempt_failed(&self, _live: &Live, _ctx: &mut RequestCtx) {}

    /// The response is finished (or the client went away); [`RequestCtx::outcome`] is final.
    fn on_complete(&self, _live: &Live, _ctx: &mut RequestCtx) {}
}

/// A refusal, independent of wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable kind (`invalid_request_error`, `budget_exceeded`, ...).
    pub kind: &'static str,
    /// Human message.
    pub message: String,
    /// The governance decision (`budget_exceeded`, ...), the error body's top-level `type`.
    pub decision: Option<&'static str>,
}

impl Rejection {
    /// A 400 the client must fix.
    pub fn bad_request(message: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            decision: None,
        }
    }

    /// A gateway-side failure (`api_error`).
    pub fn gateway(status: u16, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            kind: "api_error",
            message: message.into(),
            decision: None,
        }
    }

    /// A governance refusal: its kind is the decision.
    pub fn refusal(status: u16, decision: &'static str, message: String) -> Rejection {
        Rejection {
            status,
            kind: decision,
            message,
            decision: Some(decision),
        }
    }
}

/// Governance decisions (the top-level `type` of Bifrost's error body).
pub mod decision {
    /// No key and one is mandatory.
    pub const VIRTUAL_KEY_REQUIRED: &str = "virtual_key_required";
    /// Unknown key.
    pub const VIRTUAL_KEY_NOT_FOUND: &str = "virtual_key_not_found";
    /// Inactive or expired key.
    pub const VIRTUAL_KEY_BLOCKED: &str = "virtual_key_blocked";
    /// Provider not allowed for the key.
    pub const PROVIDER_BLOCKED: &str = "provider_blocked";
    /// Model not allowed for the key.
    pub const MODEL_BLOCKED: &str = "model_blocked";
    /// Token and request caps both hit.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Token cap hit.
    pub const TOKEN_LIMITED: &str = "token_limited";
    /// Request cap hit.
    pub const REQUEST_LIMITED: &str = "request_limited";
    /// A budget has no room for the request.
    pub const BUDGET_EXCEEDED: &str = "budget_exceeded";

    /// Every decision, for metrics resolved up front.
    pub const ALL: [&str; 9] = [
        VIRTUAL_KEY_REQUIRED,
        VIRTUAL_KEY_NOT_FOUND,
        VIRTUAL_KEY_BLOCKED,
        PROVIDER_BLOCKED,
        MODEL_BLOCKED,
        RATE_LIMITED,
        TOKEN_LIMITED,
        REQUEST_LIMITED,
        BUDGET_EXCEEDED,
    ];
}
