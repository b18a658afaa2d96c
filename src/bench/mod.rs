//! Bundled bench tools: the mock provider (also used by the tests and `conf/demo.yaml`).

pub mod mock;
