//! The OpenAI-compatible chat model against `testkit::FakeLlm`, a real HTTP server speaking
//! the streaming chat-completions protocol.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cancellation;
mod helpers;
mod request;
mod retries;
mod streaming;
mod timeouts;
