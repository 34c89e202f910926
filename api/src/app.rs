//! The whole HTTP surface assembled: `/v1` with its OpenAPI document and docs page, the service
//! routes, and the layers every request passes.

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::http::{BodyLimit, Observe, ResolveClient, into_problem};
use crate::routes::{AppState, service_routes, v1_apis};

/// The service's version, shown in the OpenAPI document.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole HTTP surface: `/v1` (documented in `/openapi.json`, browsable at `/docs`) and
/// the service routes, behind the body limit, problem+json for every error, request ids,
/// access logs and metrics.
pub fn build_app(state: AppState) -> impl Endpoint {
    let api = OpenApiService::new(v1_apis(), "Agentry", VERSION)
        .description(
            "Event-sourced backend for AI-agent SaaS. Every error is application/problem+json (RFC 9457).",
        )
        .server("/v1");
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let max_body_bytes = state.config.max_body_bytes;
    let resolve_client = ResolveClient::new(state.config.trusted_proxy_header.clone());
    Route::new()
        .nest("/v1", api.data(state.clone()))
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", service_routes(state))
        .with(BodyLimit::new(max_body_bytes))
        .with(resolve_client)
        .catch_all_error(into_problem)
        .with(Observe)
}
