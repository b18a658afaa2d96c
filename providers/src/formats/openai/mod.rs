//! The OpenAI chat-completions wire: the cheap head reader used for pass-through, and serde types
//! for the translating paths.

mod head;
pub mod responses;
pub mod types;

pub use head::{BodyError, OutputCap, RequestHead};
