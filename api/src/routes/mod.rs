//! HTTP routes: service routes (health, readiness, metrics, docs) and the `/v1` API.

mod service;
mod state;

pub use service::service_routes;
pub use state::AppState;
