use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};
use serde_json::json;

use super::AppState;
use crate::http::{Problem, problem_response};

/// `/healthz`, `/readyz` and `/metrics`: outside the `/v1` OpenAPI document because they are
/// for operators and orchestrators, not API clients.
pub fn service_routes(state: AppState) -> impl poem::Endpoint {
    Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics))
        .data(state)
}

/// 200 while the process lives.
#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when Postgres (and NATS when configured) answer; otherwise 503 naming what fails.
#[handler]
async fn readyz(state: Data<&AppState>) -> Response {
    let postgres = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    let mut failing = Vec::new();
    let postgres = match postgres {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(error)) => format!("failing: {error}"),
        Err(_) => "failing: no answer within 2 s".to_owned(),
    };
    if postgres != "ok" {
        failing.push(format!("postgres {postgres}"));
    }
    let nats = match &state.bus {
        eventstore::EventBus::Local(_) => "not configured (in-process bus)".to_owned(),
        bus if bus.is_connected() => "ok".to_owned(),
        _ => "failing: not connected".to_owned(),
    };
    if nats.starts_with("failing") {
        failing.push(format!("nats {nats}"));
    }
    if failing.is_empty() {
        return Json(json!({ "status": "ready", "checks": { "postgres": postgres, "nats": nats } }))
            .into_response();
    }
    let detail = format!("not ready: {}", failing.join("; "));
    problem_response(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", detail))
}

/// Prometheus text exposition.
#[handler]
fn metrics(state: Data<&AppState>) -> Response {
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}
