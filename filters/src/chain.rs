//! The filter chain: the ordered checks every inference request passes before it is forwarded.
//!
//! A filter reads the [`Live`] config and the [`GatewayRequest`], may add to the [`Decision`] being
//! built (the virtual key, the plan of attempts, the budget reservation), and returns a
//! [`FilterAction`]. The first [`FilterAction::Reject`] ends the chain and its [`Rejection`] is
//! written to the client in the ingress wire format. Rejections are final: they never trigger
//! retries or fallbacks.

use std::sync::Arc;

use crate::auth::AuthFilter;
use crate::governance::{GovernanceFilter, Ticket, VirtualKeyRuntime};
use crate::live::Live;
use crate::request::GatewayRequest;
use crate::routing::{Attempt, RoutingFilter};

/// One step of the chain.
pub trait Filter: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Runs before the request is forwarded. Return [`FilterAction::Continue`] to pass it on, or
    /// [`FilterAction::Reject`] to answer the client now. Runs on the hot path: no I/O, no locks.
    fn on_request(&self, live: &Live, request: &GatewayRequest, decision: &mut Decision) -> FilterAction;
}

/// What a filter decided.
#[derive(Debug)]
pub enum FilterAction {
    /// Go on to the next filter.
    Continue,
    /// Stop and answer the client with this rejection.
    Reject(Rejection),
}

/// A refusal, independent of wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable kind (`invalid_request_error`, later `budget_exceeded`, ...).
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
}

/// What the chain has decided so far about a request.
#[derive(Debug, Default)]
pub struct Decision {
    /// The caller's virtual key, when it presented one.
    pub vk: Option<Arc<VirtualKeyRuntime>>,
    /// Attempts in order: the primary first, then each fallback.
    pub plan: Vec<Attempt>,
    /// The primary attempt's reservations, when governance applies.
    pub ticket: Option<Ticket>,
}

/// The ordered filters.
pub struct FilterChain {
    filters: Vec<Box<dyn Filter>>,
}

impl FilterChain {
    /// The chain every inference route runs.
    pub fn standard() -> FilterChain {
        FilterChain {
            filters: vec![
                Box::new(AuthFilter),
                Box::new(RoutingFilter),
                Box::new(GovernanceFilter),
            ],
        }
    }

    /// Runs every filter in order; the first rejection wins.
    pub fn run(&self, live: &Live, request: &GatewayRequest) -> Result<Decision, Rejection> {
        let mut decision = Decision::default();
        for filter in &self.filters {
            if let FilterAction::Reject(rejection) = filter.on_request(live, request, &mut decision) {
                return Err(rejection);
            }
        }
        Ok(decision)
    }

    /// The filter names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }
}
