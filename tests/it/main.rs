//! Integration tests: one binary. Each test starts a real gateway in-process on a free loopback
//! port and real mock providers on others, and talks HTTP to them.

mod support;

mod admin;
mod bedrock;
mod bench;
mod cli;
mod cluster;
mod cohere;
mod dashboard;
mod dropin;
mod edge;
mod errors;
mod forwarding;
mod gemini;
mod governance;
mod lifecycle;
mod observability;
mod openai_surface;
mod reliability;
mod resilience;
mod responses;
mod routing_rules;
mod store_modes;
mod tracing;
mod translation;
mod vertex;
