//! Governance: virtual keys, budgets and rate limits over customers, teams, keys, providers and
//! models (spec §6), enforced without overspend: admission reserves an attempt's maximum cost on
//! every budget at once, and the response settles it to the actual cost.

pub mod admit;
pub mod meter;
pub mod runtime;
pub mod window;

pub use admit::{Charge, Estimate, Ticket, admit, check_access};
pub use meter::{Meter, Registry};
pub use runtime::{Governance, VirtualKeyRuntime};

use crate::chain::{Decision, Filter, FilterAction, Rejection};
use crate::live::Live;
use crate::request::GatewayRequest;
use crate::routing::Attempt;

/// Checks the primary attempt against every cap and reserves its cost; drops fallbacks the
/// virtual key may not use (they are checked and reserved again when they are tried).
pub struct GovernanceFilter;

impl Filter for GovernanceFilter {
    fn name(&self) -> &'static str {
        "governance"
    }

    fn on_request(&self, live: &Live, request: &GatewayRequest, decision: &mut Decision) -> FilterAction {
        let gov = &live.governance;
        let vk = decision.vk.clone();
        if vk.is_none() && !gov.has_caps {
            return FilterAction::Continue;
        }
        if let Some(vk) = vk.as_deref() {
            decision
                .plan
                .retain(|a| a.fallback_index == 0 || check_access(vk, &a.provider.name, &a.model, request.now).is_ok());
        }
        let Some(primary) = decision.plan.first() else {
            return FilterAction::Continue;
        };
        let billable = request.request_type.is_billable();
        match admit_attempt(gov, vk.as_deref(), primary, billable, &request.estimate, request.now) {
            Ok(ticket) => {
                decision.ticket = ticket;
                FilterAction::Continue
            }
            Err(rejection) => FilterAction::Reject(rejection),
        }
    }
}

/// Admits one attempt (the primary, or a fallback when it is tried): `Ok(None)` when no
/// governance applies. A request the provider does not bill (token counting) reserves nothing,
/// but the key must still be allowed to use the provider and model.
pub fn admit_attempt(
    gov: &Governance,
    vk: Option<&VirtualKeyRuntime>,
    attempt: &Attempt,
    billable: bool,
    estimate: &Estimate,
    now: i64,
) -> Result<Option<Ticket>, Rejection> {
    if vk.is_none() && !gov.has_caps {
        return Ok(None);
    }
    if !billable {
        if let Some(vk) = vk {
            check_access(vk, &attempt.provider.name, &attempt.model, now)?;
        }
        return Ok(None);
    }
    admit(gov, vk, &attempt.provider.name, &attempt.model, estimate, now).map(Some)
}
