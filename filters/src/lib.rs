//! asbru-filters: the request lifecycle's filters, pure logic over a [`Live`] view of the config.
//! Nothing here knows about Pingora or sockets; the gateway calls the hooks and acts on their
//! results.
//!
//! The core every filter builds on: [`filter`] (the trait and its results), [`ctx`] (the
//! per-request context and the facts filters share), [`chain`] (running a hook across the
//! filters), [`live`] (the per-config view), [`snapshot`] (providers resolved), [`slots`], [`policy`] (governance data), [`pricing`],
//! [`health`] and [`labels`]. The filters, none of which imports another: [`auth`], [`routing`],
//! [`governance`], [`telemetry`], [`logging`], [`response_headers`].

pub mod cel_json;
pub mod chain;
pub mod clock;
pub mod concurrency;
pub mod ctx;
pub mod filter;
pub mod health;
pub mod labels;
pub mod live;
pub mod policy;
pub mod pricing;
pub mod slots;
pub mod snapshot;

pub mod auth;
pub mod governance;
pub mod logging;
pub mod otel;
pub mod response_headers;
pub mod routing;
pub mod routing_rules;
pub mod telemetry;
pub mod tokens;

pub use chain::FilterChain;
pub use ctx::{Attempt, AttemptState, Facts, GatewayRequest, Outcome, Pin, RequestCtx};
pub use filter::{AttemptFlow, Filter, Flow, Rejection, UpstreamHead};
pub use live::Live;
pub use slots::Slots;
