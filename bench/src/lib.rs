//! asbru-bench: the bench tools `asbru bench ...` runs, kept out of the gateway library: the mock provider (also used by the tests and `conf/demo.yaml`), the
//! open-loop load generator, and the direct-vs-gateway comparison.

pub mod compare;
pub mod compare_setup;
pub mod compare_tls;
pub mod load;
pub mod mock;
mod mock_anthropic;
pub mod mock_bedrock;
mod mock_cohere;
mod mock_gemini;
pub mod mock_openai_media;
mod mock_responses;
mod mock_shared;
mod mock_vertex;
pub mod nginx;
pub mod process;
pub mod report;
pub mod tls_client;
pub mod upstream_tls;
pub mod wakeups;
