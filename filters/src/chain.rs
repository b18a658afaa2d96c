//! [`FilterChain`]: the ordered filters and the calls that run one hook across all of them. It
//! knows the [`Filter`] trait and nothing of any filter; the gateway's composition root builds it
//! from a name → constructor table.

use std::sync::Arc;

use crate::ctx::RequestCtx;
use crate::filter::{AttemptFlow, Filter, Flow, UpstreamHead};
use crate::live::Live;
use crate::pricing::TokenUsage;

/// The ordered filters every inference request passes.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<Arc<dyn Filter>>,
}

impl FilterChain {
    /// A chain of `filters`, run in this order.
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> FilterChain {
        FilterChain { filters }
    }

    /// The filter names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Lets every filter compile its per-config state into `live`, built from `config`.
    pub fn prepare(&self, live: &mut Live, config: &asbru_config::Config) {
        let mut slots = std::mem::take(&mut live.slots);
        for filter in &self.filters {
            filter.on_config(live, config, &mut slots);
        }
        live.slots = slots;
    }

    /// `on_request` in order; the first rejection wins.
    pub fn on_request(&self, live: &Live, ctx: &mut RequestCtx) -> Flow {
        self.on_request_from(0, live, ctx).0
    }

    /// `on_request` from the filter at `start` on; returns the flow and, on a rejection, the
    /// index of the filter that refused (to ask again from there, see
    /// [`crate::ctx::Recheck`]).
    pub fn on_request_from(&self, start: usize, live: &Live, ctx: &mut RequestCtx) -> (Flow, usize) {
        for (index, filter) in self.filters.iter().enumerate().skip(start) {
            if let Flow::Reject(rejection) = filter.on_request(live, ctx) {
                return (Flow::Reject(rejection), index);
            }
        }
        (Flow::Continue, self.filters.len())
    }

    /// `on_attempt` in order; the first skip or failure wins.
    pub fn on_attempt(&self, live: &Live, ctx: &mut RequestCtx) -> AttemptFlow {
        for filter in &self.filters {
            match filter.on_attempt(live, ctx) {
                AttemptFlow::Continue => {}
                other => return other,
            }
        }
        AttemptFlow::Continue
    }

    /// `on_upstream_head` in order; the first rejection wins.
    pub fn on_upstream_head(&self, live: &Live, ctx: &mut RequestCtx, head: &UpstreamHead<'_>) -> Flow {
        for filter in &self.filters {
            if let Flow::Reject(rejection) = filter.on_upstream_head(live, ctx, head) {
                return Flow::Reject(rejection);
            }
        }
        Flow::Continue
    }

    /// `on_usage` on every filter.
    pub fn on_usage(&self, live: &Live, ctx: &mut RequestCtx, usage: Option<TokenUsage>) {
        for filter in &self.filters {
            filter.on_usage(live, ctx, usage);
        }
    }

    /// `on_attempt_failed` on every filter.
    pub fn on_attempt_failed(&self, live: &Live, ctx: &mut RequestCtx) {
        for filter in &self.filters {
            filter.on_attempt_failed(live, ctx);
        }
    }

    /// `on_complete` on every filter.
    pub fn on_complete(&self, live: &Live, ctx: &mut RequestCtx) {
        for filter in &self.filters {
            filter.on_complete(live, ctx);
        }
    }

    /// Runs `on_request` for a fresh context (benches and unit tests).
    pub fn run(&self, live: &Live, ctx: &mut RequestCtx) -> Result<(), crate::filter::Rejection> {
        match self.on_request(live, ctx) {
            Flow::Continue => Ok(()),
            Flow::Reject(rejection) => Err(rejection),
        }
    }
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
