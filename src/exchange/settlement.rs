//! [`Settlement`]: the filters' usage hook as the relay sees it.

use asbru_filters::pricing::TokenUsage;
use asbru_filters::{FilterChain, Live, RequestCtx};
use asbru_providers::usage::Usage;

/// The usage hook, as the relay calls it: the usage seen so far is kept as the reply passes,
/// and the filters' `on_usage` runs once, before the reply's last bytes (or when the relay ends
/// early, with what the provider reported until then).
pub struct Settlement<'a> {
    chain: &'a FilterChain,
    live: &'a Live,
    ctx: &'a mut RequestCtx,
    seen: Option<Usage>,
    done: bool,
}

impl<'a> Settlement<'a> {
    /// A settlement for `ctx`, nothing seen yet.
    pub fn new(chain: &'a FilterChain, live: &'a Live, ctx: &'a mut RequestCtx) -> Settlement<'a> {
        Settlement {
            chain,
            live,
            ctx,
            seen: None,
            done: false,
        }
    }

    /// Records the usage the provider reported so far.
    pub fn seen(&mut self, usage: Option<Usage>) {
        if usage.is_some() {
            self.seen = usage;
        }
    }

    /// Runs `on_usage` with the usage seen, once.
    pub fn settle(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let usage = self.seen.map(token_usage);
        self.ctx.outcome.usage = usage;
        self.chain.on_usage(self.live, self.ctx, usage);
    }

    /// The headers filters added for the client.
    pub fn response_headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &self.ctx.response_headers
    }
}

/// The provider's usage as the filters count it.
pub fn token_usage(u: Usage) -> TokenUsage {
    TokenUsage {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_tokens,
        cache_write: u.cache_write_tokens,
        reasoning: u.reasoning_tokens,
    }
}
