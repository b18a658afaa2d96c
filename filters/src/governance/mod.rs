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

use crate::chain::{Decision, Filter, FilterAction};
use crate::live::Live;
use crate::request::GatewayRequest;

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
        if !request.request_type.is_billable() {
            // Token counting costs nothing: the key must still be allowed there.
            return match vk.as_deref() {
                Some(vk) => match check_access(vk, &primary.provider.name, &primary.model, request.now) {
                    Ok(()) => FilterAction::Continue,
                    Err(rejection) => FilterAction::Reject(rejection),
                },
                None => FilterAction::Continue,
            };
        }
        match admit(
            gov,
            vk.as_deref(),
            &primary.provider.name,
            &primary.model,
            &request.estimate,
            request.now,
        ) {
            Ok(ticket) => {
                decision.ticket = Some(ticket);
                FilterAction::Continue
            }
            Err(rejection) => FilterAction::Reject(rejection),
        }
    }
}
