//! Governance as one filter: virtual keys, budgets and rate limits over customers, teams, keys,
//! providers and models (see Bifrost's governance documentation), enforced without overspend.
//!
//! - `on_request` drops fallbacks the key may not use and admits the primary target: every cap
//!   is checked and the attempt's maximum cost reserved on every budget at once ([`admit`]).
//! - `on_attempt` admits each fallback on its own caps when it is tried (a refusal skips it) and
//!   says whether the upstream must report stream usage.
//! - `on_usage` settles the reservation to the actual cost; `on_attempt_failed` gives it back.
//!
//! A [`Ticket`] left unsettled when the request ends releases itself if nothing was sent, and
//! charges its reservation if the request had gone upstream.

pub mod admit;

pub use crate::ctx::{Charge, Estimate};
pub use crate::policy::{Governance, Meter, Registry, VirtualKeyRuntime};
pub use crate::policy::{meter, runtime, window};
pub use admit::{Ticket, admit, check_access};

use crate::ctx::{Attempt, RequestCtx};
use crate::filter::{AttemptFlow, Filter, Flow, Rejection};
use crate::live::Live;
use crate::pricing::TokenUsage;

/// The governance filter.
pub struct GovernanceFilter;

/// Per request: the ticket of the target being tried, and which target it belongs to.
struct Held {
    index: usize,
    ticket: Option<Ticket>,
}

fn governed(live: &Live, ctx: &RequestCtx) -> bool {
    ctx.facts.vk.is_some() || live.governance.has_caps
}

fn publish(ctx: &mut RequestCtx, ticket: &Option<Ticket>) {
    if let Some(ticket) = ticket {
        ctx.facts.budget_used = ticket.budget_used().or(ctx.facts.budget_used);
        ctx.facts.rate_limit_used = ticket.rate_limit_used().or(ctx.facts.rate_limit_used);
    }
}

impl Filter for GovernanceFilter {
    fn name(&self) -> &'static str {
        "governance"
    }

    fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        if !governed(live, ctx) {
            return Flow::Continue;
        }
        let now = ctx.request.now;
        if let Some(vk) = ctx.facts.vk.as_deref() {
            ctx.plan
                .retain(|a| a.fallback_index == 0 || check_access(vk, &a.provider.name, &a.model, now).is_ok());
        }
        let Some(primary) = ctx.plan.first() else {
            return Flow::Continue;
        };
        match admit_attempt(live, ctx, primary) {
            Ok(ticket) => {
                publish(ctx, &ticket);
                ctx.slots.insert(Held { index: 0, ticket });
                Flow::Continue
            }
            Err(rejection) => Flow::Reject(rejection),
        }
    }

    fn on_attempt(&self, live: &Live, ctx: &mut RequestCtx) -> AttemptFlow {
        if !governed(live, ctx) {
            return AttemptFlow::Continue;
        }
        let Some(index) = ctx.attempt.as_ref().map(|a| a.index) else {
            return AttemptFlow::Continue;
        };
        let admitted = ctx.slots.get::<Held>().is_some_and(|h| h.index == index);
        if !admitted {
            let Some(attempt) = ctx.plan.get(index) else {
                return AttemptFlow::Continue;
            };
            match admit_attempt(live, ctx, attempt) {
                Ok(ticket) => {
                    publish(ctx, &ticket);
                    ctx.slots.insert(Held { index, ticket });
                }
                Err(rejection) => return AttemptFlow::Skip(rejection),
            }
        }
        let want_usage = match ctx.slots.get_mut::<Held>().and_then(|h| h.ticket.as_mut()) {
            Some(ticket) => {
                ticket.mark_sent();
                ticket.needs_usage()
            }
            None => false,
        };
        if let Some(attempt) = ctx.attempt.as_mut() {
            attempt.want_usage = want_usage;
        }
        AttemptFlow::Continue
    }

    fn on_usage(&self, _live: &Live, ctx: &mut RequestCtx, usage: Option<TokenUsage>) {
        if ctx.outcome.charge.is_some() {
            return;
        }
        if let Some(ticket) = ctx.slots.get_mut::<Held>().and_then(|h| h.ticket.as_mut()) {
            ctx.outcome.charge = Some(ticket.charge(usage));
        }
    }

    fn on_attempt_failed(&self, _live: &Live, ctx: &mut RequestCtx) {
        // Every try of this target failed before a reply was relayed: nothing was spent.
        if let Some(ticket) = ctx.slots.get_mut::<Held>().and_then(|h| h.ticket.as_mut()) {
            ticket.release();
        }
    }
}

/// Admits one attempt: `Ok(None)` when no governance applies. A request the provider does not
/// bill (token counting) reserves nothing, but the key must still be allowed to use the
/// provider and model.
fn admit_attempt(live: &Live, ctx: &RequestCtx, attempt: &Attempt) -> Result<Option<Ticket>, Rejection> {
    let gov = &live.governance;
    let vk = ctx.facts.vk.as_deref();
    let request = &ctx.request;
    if vk.is_none() && !gov.has_caps {
        return Ok(None);
    }
    if !request.request_type.is_billable() {
        if let Some(vk) = vk {
            check_access(vk, &attempt.provider.name, &attempt.model, request.now)?;
        }
        return Ok(None);
    }
    admit(
        gov,
        vk,
        &attempt.provider.name,
        &attempt.model,
        &request.estimate,
        request.now,
    )
    .map(Some)
}
