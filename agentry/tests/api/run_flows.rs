//! Agent runs end to end over HTTP against real servers started by the tests: [`FakeLlm`]
//! speaking the OpenAI streaming protocol with scripted replies, and a [`ToolServer`] that
//! records and verifies every signed request. Each test checks what a user sees
//! (`GET /v1/runs/{id}`, `GET /v1/conversations/{id}`) and, where it matters, the event log.
//!
//! [`FakeLlm`]: testkit::FakeLlm
//! [`ToolServer`]: crate::tool_server::ToolServer
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approval_proof;
mod cancellation;
mod deltas;
mod history;
mod provider;
mod several_calls;
pub(crate) mod support;
mod tool_failures;
mod unbilled;
