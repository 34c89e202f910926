//! Run streams over real sockets against the real server: Server-Sent Events read with reqwest
//! and eventsource-stream, WebSocket with tokio-tungstenite; runs driven by the built-in `echo`
//! model or a [`testkit::FakeLlm`] streaming at a set pace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cut_off;
mod decisions;
mod reading;
mod slow_store;
mod support;

pub use support::connect_ws;
mod tickets;
