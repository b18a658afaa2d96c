//! asbru-filters: the request filters, pure logic over a [`Live`] view of the config. Nothing
//! here knows about Pingora or sockets; the gateway calls the chain and acts on its result.

pub mod auth;
pub mod chain;
pub mod governance;
pub mod live;
pub mod pricing;
pub mod request;
pub mod routing;

pub use chain::{Filter, FilterAction, FilterChain, Rejection};
pub use live::Live;
pub use request::GatewayRequest;
