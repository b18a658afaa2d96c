//! Routing as one filter: which provider and model each attempt goes to (`on_request` builds
//! the plan, [`plan`]), and which of the provider's keys each try uses (`on_attempt`, [`keys`]).

pub mod keys;
mod plan;

pub use crate::ctx::Attempt;
pub use plan::resolve_target;

use crate::ctx::RequestCtx;
use crate::filter::{AttemptFlow, Filter, Flow, Rejection};
use crate::live::Live;

/// The routing filter.
pub struct RoutingFilter;

impl Filter for RoutingFilter {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        match plan::build(
            &live.snapshot,
            &ctx.request,
            ctx.facts.vk.as_deref(),
            ctx.facts.route.as_ref(),
        ) {
            Ok(plan) => {
                ctx.plan = plan;
                Flow::Continue
            }
            Err(rejection) => Flow::Reject(rejection),
        }
    }

    fn on_attempt(&self, live: &Live, ctx: &mut RequestCtx) -> AttemptFlow {
        let now = ctx.request.now;
        let (Some(state), plan) = (ctx.attempt.as_mut(), &ctx.plan) else {
            return AttemptFlow::Continue;
        };
        let Some(attempt) = plan.get(state.index) else {
            return AttemptFlow::Continue;
        };
        if ctx.request.credentials.direct_key {
            // The request's own provider key is sent instead of a configured one.
            state.key = None;
            return AttemptFlow::Continue;
        }
        let allowed = attempt.key_ids.as_deref();
        let provider = &attempt.provider;
        // Keys cooling down (a recent 401/403, or repeated 429s) are avoided like the ones that
        // failed this request; they are still used when no other key is left.
        let cooldowns = live
            .cooldowns
            .get(&provider.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let cooling = |i: usize| cooldowns.get(i).is_some_and(|k| k.cooling(now));
        let with_cooling: Vec<usize>;
        let avoid = if (0..cooldowns.len()).any(cooling) {
            with_cooling = (0..provider.keys.len())
                .filter(|i| state.avoid.contains(i) || cooling(*i))
                .collect();
            &with_cooling
        } else {
            &state.avoid
        };
        // A call on a stored response the gateway did not see created names no model.
        let model = (!ctx
            .request
            .pin
            .as_ref()
            .is_some_and(|p| p.stored_only && p.key_id.is_none()))
        .then_some(&*attempt.model);
        match keys::select_within(provider, model, avoid, allowed, &mut rand::rng()) {
            Ok(choice) => {
                state.key = choice.map(|(index, _)| index);
                AttemptFlow::Continue
            }
            Err(e @ keys::KeyError::NoneForModel { .. }) => AttemptFlow::Fail(Rejection::bad_request(e.to_string())),
            Err(e @ keys::KeyError::NoneConfigured { .. }) => AttemptFlow::Fail(Rejection::gateway(500, e.to_string())),
        }
    }
}
