//! asbru-providers: wire formats and pure translations between them. No I/O.
//!
//! - [`formats::openai`]: reading the few fields the gateway needs from an OpenAI-shaped body
//!   without decoding the rest, and rewriting them in place.
//! - [`errors`]: error bodies in each ingress format.

pub mod edit;
pub mod errors;
pub mod formats;
