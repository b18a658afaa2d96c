//! Governance as one filter: virtual keys, budgets and rate limits over customers, teams, keys,
//! providers and models (see Bifrost's governance documentation), enforced without overspend.
//!
//! - `on_request` drops fallbacks the key may not use and admits the primary target: every cap
//!   is checked and the attempt's maximum cost reserved on every budget at once ([`admit`]).
//! - `on_attempt` admits each fallback on its own caps when it is tried (a refusal skips it) and
//!   says whether the upstream must report stream usage.
//! - `on_usage` settles the reservation to the actual cost; `on_attempt_failed` gives it back
//!   (or charges it, when the upstream had answered and a filter refused the reply).
//!
//! A [`Ticket`] left unsettled when the request ends releases itself if nothing was sent, and
//! charges its reservation if the request had gone upstream.

pub mod admit;

pub use crate::ctx::{Charge, Estimate};
pub use crate::policy::{Governance, Meter, Registry, VirtualKeyRuntime};
pub use crate::policy::{meter, runtime, window};
pub use admit::{Ticket, admit, admit_tight, check_access, check_provider_access};

use crate::ctx::{Attempt, RequestCtx};
use crate::filter::{AttemptFlow, Filter, Flow, Rejection, decision};
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
        // Cluster mode: a lease fetch round that ends during admission may bring the room a
        // refusal lacked.
        let rounds_seen = live.governance.leases.as_ref().map(|source| source.rounds_ended());
        match admit_attempt(live, ctx, primary) {
            Ok(ticket) => {
                publish(ctx, &ticket);
                ctx.slots.insert(Held { index: 0, ticket });
                Flow::Continue
            }
            Err(rejection) => {
                if matches!(rejection.status, 402 | 429)
                    && let Some(source) = &live.governance.leases
                    && (admit::leases_pending(
                        &live.governance,
                        ctx.facts.vk.as_deref(),
                        &primary.provider.name,
                        &primary.model,
                    ) || rounds_seen != Some(source.rounds_ended()))
                {
                    // A cap's first fetch on this node may take longer: a request waits for
                    // it longer, once.
                    let first = ctx.slots.get::<WaitedForFirstLease>().is_none()
                        && admit::first_lease_pending(
                            &live.governance,
                            ctx.facts.vk.as_deref(),
                            &primary.provider.name,
                            &primary.model,
                        );
                    if first {
                        ctx.slots.insert(WaitedForFirstLease);
                    }
                    let wait: crate::ctx::WaitFuture = match source.pending() {
                        Some(round) => source.after(round, first),
                        // The round this refusal needed has already ended: ask again at once.
                        None => Box::pin(std::future::ready(())),
                    };
                    ctx.recheck = Some(crate::ctx::Recheck::new(wait));
                } else if rejection.decision == Some(decision::BUDGET_EXCEEDED)
                    && ctx.slots.get::<WaitedForTables>().is_none()
                    && let Some(wait) =
                        crate::tokens::until_built(&primary.model, ctx.request.ingress, &ctx.request.body)
                {
                    // Near the edge, the exact prompt count may fit where the byte bound did
                    // not: wait for the tables once.
                    ctx.slots.insert(WaitedForTables);
                    ctx.recheck = Some(crate::ctx::Recheck::new(wait));
                }
                Flow::Reject(rejection)
            }
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
        let output_cap = (want_usage && ctx.request.estimate.max_output_tokens.is_none())
            .then_some(live.governance.default_max_output_tokens);
        if let Some(attempt) = ctx.attempt.as_mut() {
            attempt.want_usage = want_usage;
            attempt.output_cap = output_cap;
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
        let answered = ctx.attempt.as_ref().is_some_and(|a| a.answered);
        let Some(ticket) = ctx.slots.get_mut::<Held>().and_then(|h| h.ticket.as_mut()) else {
            return;
        };
        if answered {
            // The provider answered 2xx and a filter refused the reply: the work was done.
            ticket.charge(None);
        } else {
            // Every try failed, or the target was skipped, before a reply was relayed.
            ticket.release();
        }
    }
}

/// Marks a request that already waited for the tokenizer's tables (it waits once at most).
struct WaitedForTables;

/// A refused request already waited the longer wait for a cap's first lease on this node.
struct WaitedForFirstLease;

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
    if !request.request_type.is_billable() || request.pin.as_ref().is_some_and(|p| p.stored_only) {
        if let Some(vk) = vk {
            match &request.pin {
                // A stored response's call: the provider must be allowed; its model was
                // allowed when the response was created (or is unknown).
                Some(pin) if pin.stored_only => check_provider_access(vk, &attempt.provider.name, request.now)?,
                _ => check_access(vk, &attempt.provider.name, &attempt.model, request.now)?,
            }
        }
        // Work the provider bills later (a batch) cannot be metered: a budget refuses it.
        if request.pin.as_ref().is_some_and(|p| p.unmetered_work)
            && admit::budget_applies(gov, vk, &attempt.provider.name)
        {
            return Err(Rejection::bad_request(format!(
                "a {} request is billed by the provider when it completes, which the gateway cannot meter, and a budget applies to this request: send it with a key no budget counts",
                request.request_type.as_str()
            )));
        }
        return Ok(None);
    }
    let mut exact = || crate::tokens::prompt_tokens(&attempt.model, request.ingress, &request.body);
    admit_tight(
        gov,
        vk,
        &attempt.provider.name,
        &attempt.model,
        &request.estimate,
        request.now,
        &mut exact,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::chain::FilterChain;
    use crate::ctx::{AttemptState, GatewayRequest};
    use crate::routing::RoutingFilter;
    use asbru_config::catalog::RequestType;

    /// A filter placed after governance that refuses every try.
    struct SkipAll;

    impl Filter for SkipAll {
        fn name(&self) -> &'static str {
            "skip_all"
        }

        fn on_attempt(&self, _live: &Live, _ctx: &mut RequestCtx) -> AttemptFlow {
            AttemptFlow::Skip(Rejection::bad_request("not this one"))
        }
    }

    fn setup() -> (Live, Arc<Registry>, FilterChain, RequestCtx) {
        let yaml = "providers:\n  openai: {keys: [{value: k}]}\ngovernance:\n  pricing_overrides:\n    - {provider: openai, model: m, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}\n  providers:\n    - {name: openai, budgets: [{max_limit: 1, reset_duration: 1d}]}\n";
        let loaded = asbru_config::load_str(yaml, "t.yaml").expect("valid");
        let registry = Arc::new(Registry::new());
        let live = Live::build_with(&loaded.config, &registry, 0, &|_| None).0;
        let chain = FilterChain::new(vec![
            Arc::new(RoutingFilter),
            Arc::new(GovernanceFilter),
            Arc::new(SkipAll),
        ]);
        let request = GatewayRequest {
            ingress: asbru_config::catalog::Wire::OpenAi,
            request_type: RequestType::ChatCompletion,
            stream: false,
            model_requested: "openai/m".into(),
            default_provider: None,
            fallbacks: Vec::new(),
            credentials: Default::default(),
            require_vk: false,
            estimate: Estimate {
                input_tokens: 100,
                max_output_tokens: Some(10),
                choices: 1,
                units: None,
            },
            now: 0,
            arrived_ms: 0,
            body: bytes::Bytes::new(),
            headers: Vec::new(),
            query: None,
            pin: None,
        };
        let ctx = RequestCtx::new("t".into(), Instant::now(), request);
        (live, registry, chain, ctx)
    }

    fn begin_attempt(live: &Live, chain: &FilterChain, ctx: &mut RequestCtx) -> AttemptFlow {
        assert!(matches!(chain.on_request(live, ctx), Flow::Continue));
        ctx.attempt = Some(AttemptState::default());
        chain.on_attempt(live, ctx)
    }

    #[test]
    fn a_target_skipped_after_admission_gives_its_reservation_back() {
        let (live, registry, chain, mut ctx) = setup();
        assert!(matches!(begin_attempt(&live, &chain, &mut ctx), AttemptFlow::Skip(_)));
        let meter = registry.get("provider:openai:budget:0").expect("meter");
        assert_eq!(meter.total(), 200, "reserved at admission");
        chain.on_attempt_failed(&live, &mut ctx);
        drop(ctx);
        assert_eq!((meter.settled(), meter.total()), (0, 0), "released, not charged");
    }

    #[test]
    fn a_reply_refused_after_the_upstream_answered_is_billed() {
        let (live, registry, chain, mut ctx) = setup();
        let _ = begin_attempt(&live, &chain, &mut ctx);
        if let Some(attempt) = ctx.attempt.as_mut() {
            attempt.answered = true;
        }
        chain.on_attempt_failed(&live, &mut ctx);
        drop(ctx);
        let meter = registry.get("provider:openai:budget:0").expect("meter");
        assert_eq!(
            (meter.settled(), meter.total()),
            (200, 200),
            "the reservation is charged"
        );
    }
}
