//! asbru-filters: the request filters, pure logic over a [`Snapshot`](asbru_store::Snapshot).
//! Nothing here knows about Pingora or sockets; the gateway calls the chain and acts on its result.

pub mod chain;
pub mod request;
pub mod routing;

pub use chain::{Filter, FilterAction, FilterChain, Rejection};
pub use request::GatewayRequest;
