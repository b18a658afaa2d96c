//! The Anthropic Messages wire: requests, responses, stream events, usage and errors.

pub mod types;
