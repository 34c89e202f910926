//! The HTTP API end to end: the real application on an ephemeral port, against a fresh
//! database per test, spoken to over real HTTP. One test binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod bad_input;
mod helpers;
mod service_routes;
