//! The whole HTTP surface assembled: `/v1` with its OpenAPI document and docs page, the service
//! routes, and the layers every request passes.

use poem::{Endpoint, EndpointExt, Route};

use crate::http::{
    BodyLimit, BrowserCors, CheckUpgradeOrigin, Observe, RefuseNulls, ResolveClient, into_problem,
};
use crate::openapi;
use crate::routes::{AppState, metrics_routes, service_routes};

/// The whole HTTP surface: `/v1` (documented in `/openapi.json`, browsable at `/docs`) and
/// the service routes, behind the body limit, problem+json for every error, CORS for the
/// allowed browser origins (and WebSocket upgrades refused to the others), request ids, access
/// logs and metrics.
pub fn build_app(state: AppState) -> impl Endpoint {
    let api = openapi::service();
    let (spec, docs) = openapi::endpoints(&api);
    let max_body_bytes = state.config.max_body_bytes;
    let resolve_client = ResolveClient::new(state.config.trusted_proxy_header.clone());
    let origins = state.config.browser_origins.clone();
    Route::new()
        .nest("/v1", api.data(state.clone()))
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", service_routes(state))
        .with(RefuseNulls)
        .with(BodyLimit::new(max_body_bytes))
        .with(resolve_client)
        .catch_all_error(into_problem)
        .with(CheckUpgradeOrigin::new(origins.clone()))
        // Outside the problem mapping, so every answer a page gets, errors too, carries the
        // CORS headers; preflights are answered here, before any route or limit.
        .with(BrowserCors::new(origins))
        // Preflights CORS refuses (a method or header the API does not use): problem+json too.
        .catch_all_error(into_problem)
        .with(Observe)
}

/// `/metrics` on its own, for a separate operators' address; unknown paths there get
/// problem+json too.
pub fn metrics_app(state: AppState) -> impl Endpoint {
    metrics_routes(state).catch_all_error(into_problem)
}

/// The OpenAPI document of `/v1`, as `/openapi.json` serves it.
pub fn openapi_document() -> serde_json::Value {
    openapi::document(&openapi::service())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::openapi_document;

    /// Generated clients turn descriptions into doc comments; a field without one is a field
    /// its users have to guess about.
    #[test]
    fn every_schema_property_and_parameter_is_described() {
        let document = openapi_document();
        let mut missing = Vec::new();
        let schemas = document["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (schema, body) in &schemas {
            for (property, definition) in body["properties"].as_object().into_iter().flatten() {
                if !is_described(definition) {
                    missing.push(format!("{schema}.{property}"));
                }
            }
        }
        for (path, operations) in document["paths"].as_object().into_iter().flatten() {
            for (method, operation) in operations.as_object().into_iter().flatten() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    if !is_described(parameter) {
                        missing.push(format!("{method} {path} parameter {}", parameter["name"]));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }

    /// A description of its own, or (for a property that is a reference) the referenced schema's.
    fn is_described(definition: &Value) -> bool {
        let text = |value: &Value| value.as_str().is_some_and(|text| !text.trim().is_empty());
        text(&definition["description"])
            || definition["allOf"]
                .as_array()
                .is_some_and(|all| all.iter().any(|part| text(&part["description"])))
    }
}
