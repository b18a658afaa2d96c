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

    /// Records that the reply failed after its head went out (a stream cut short).
    pub fn fail(&mut self, error_type: &'static str, message: &str) {
        self.ctx.record_error(error_type, None, message);
    }

    /// Keeps a whole reply for the request log, when a filter asked for its content.
    pub fn reply(&mut self, body: &bytes::Bytes) {
        if self.ctx.capture.content {
            self.ctx.capture.reply = Some(body.clone());
        }
    }

    /// Notes streamed bytes written to the client: their timing for the metrics, and the
    /// bytes themselves for the request log when a filter asked for the content.
    pub fn streamed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let now = self.ctx.started.elapsed();
        let outcome = &mut self.ctx.outcome;
        outcome.first_chunk_after.get_or_insert(now);
        outcome.last_chunk_after = Some(now);
        outcome.stream_chunks += 1;
        self.ctx.capture.stream_bytes(bytes);
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
        units: u.units,
    }
}
