//! The governance policy, resolved from config: virtual keys indexed by the hash of their value,
//! each with its chain of scopes (provider config, key, team, customer), provider and model
//! scopes, prices ([`runtime`]); the lock-free meters that hold live usage ([`meter`]); and
//! their reset windows ([`window`]). Data only: the governance filter reads it to admit and
//! settle requests, the auth filter to find a key.

pub mod meter;
pub mod runtime;
pub mod window;

pub use meter::{Meter, Registry};
pub use runtime::{Governance, MeterLimit, VirtualKeyRuntime, key_hash};
