//! Agentry's HTTP API: poem + poem-openapi routes over the application services. HTTP only:
//! the process (settings, startup, background loops) is the `agentry` crate.
//!
//! A newcomer's map:
//! - [`app`]: the whole surface assembled, [`build_app`].
//! - [`http`]: what every route shares: problem+json errors, the auth guard, the body limit,
//!   request ids, access logs, metrics and rate limits.
//! - [`openapi`]: the OpenAPI document, finished for code generators.
//! - [`routes`]: one file per resource, each an `#[OpenApi]` struct with its DTOs.
//! - [`streaming`]: a run's events over SSE and WebSocket, and what a stream does while it
//!   lasts (heartbeats, standing checks, stream tickets).

pub mod app;
pub mod http;
pub mod openapi;
pub mod routes;
pub mod streaming;

pub use app::{build_app, metrics_app, openapi_document};
pub use routes::{AppState, HttpConfig};
