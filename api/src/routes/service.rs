use std::time::Duration;

use eventstore::log::{BLOCKED_AFTER_ATTEMPTS, blocked_followers, stall_seconds};
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};
use serde_json::json;

use super::AppState;
use crate::http::{ErrorCode, Problem, problem_response};

/// `/healthz`, `/readyz` and `/metrics`: outside the `/v1` OpenAPI document because they are
/// for operators and orchestrators, not API clients.
pub fn service_routes(state: AppState) -> impl poem::Endpoint {
    let routes = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz));
    let routes = if state.config.metrics_on_api_port {
        routes.at("/metrics", get(metrics))
    } else {
        routes
    };
    routes.data(state)
}

/// `/metrics` alone, for the separate metrics address (`AGENTRY_METRICS_LISTEN`).
pub fn metrics_routes(state: AppState) -> impl poem::Endpoint {
    Route::new().at("/metrics", get(metrics)).data(state)
}

/// 200 while the process lives.
#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when Postgres (and NATS when configured) answer and no log follower is stalled or
/// blocked; otherwise 503 naming what fails.
///
/// Followers are judged from the store, so every node reports the same: a follower (the relay,
/// a projector) stalled past `AGENTRY_FOLLOWER_STALL_SECONDS` whatever the cause (gate held, NATS
/// down, no process holding its lease), and a projector stopped at an event it cannot apply,
/// with that event's id.
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
    let mut followers = "ok".to_owned();
    if postgres == "ok" {
        let problems = follower_problems(&state).await;
        if !problems.is_empty() {
            followers = format!("failing: {}", problems.join("; "));
            failing.extend(problems);
        }
    }
    if failing.is_empty() {
        return Json(json!({
            "status": "ready",
            "checks": { "postgres": postgres, "nats": nats, "followers": followers }
        }))
        .into_response();
    }
    let detail = format!("not ready: {}", failing.join("; "));
    problem_response(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotReady,
        detail,
    ))
}

/// Each follower stalled past the threshold, and each projector blocked by an event.
async fn follower_problems(state: &AppState) -> Vec<String> {
    let threshold = state.config.follower_stall_seconds as f64;
    let checks = async {
        let stalls = stall_seconds(&state.pool, None).await?;
        let blocked = blocked_followers(&state.pool, BLOCKED_AFTER_ATTEMPTS).await?;
        Ok::<_, sqlx::Error>((stalls, blocked))
    };
    let (stalls, blocked) = match tokio::time::timeout(Duration::from_secs(2), checks).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return vec![format!("followers unknown: {error}")],
        Err(_) => return vec!["followers unknown: no answer within 2 s".to_owned()],
    };
    let mut problems: Vec<String> = blocked
        .iter()
        .map(|fault| {
            format!(
                "projector {} blocked at event {} ({} attempts): {}",
                fault.name, fault.event_id, fault.attempts, fault.error
            )
        })
        .collect();
    problems.extend(
        stalls
            .into_iter()
            .filter(|(_, seconds)| *seconds > threshold)
            .map(|(name, seconds)| {
                format!(
                    "follower {name} stalled: an event has waited {seconds:.0} s (limit {threshold:.0} s)"
                )
            }),
    );
    problems
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
