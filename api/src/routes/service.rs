use std::time::Duration;

use eventstore::log::{BLOCKED_AFTER_ATTEMPTS, FollowerLag, blocked_followers, follower_lags};
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};
use serde_json::json;

use super::AppState;
use crate::http::{ErrorCode, Problem, problem_json};

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
///
/// Both answers carry `followers`: each follower's lag (events and seconds behind the head of
/// the log), whether or not this node runs it. Lag alone never makes the node unready: every
/// node reads the same store, so a lagging read model would take every node out of service at
/// once, for reads that are merely late. Only the stall threshold above does.
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
    let mut lags = None;
    if postgres == "ok" {
        let report = follower_report(&state).await;
        if !report.problems.is_empty() {
            followers = format!("failing: {}", report.problems.join("; "));
            failing.extend(report.problems);
        }
        lags = report.lags.map(|lags| lags_json(&lags));
    }
    let checks = json!({ "postgres": postgres, "nats": nats, "followers": followers });
    if failing.is_empty() {
        let mut body = json!({ "status": "ready", "checks": checks });
        if let Some(lags) = lags {
            body["followers"] = lags;
        }
        return Json(body).into_response();
    }
    let detail = format!("not ready: {}", failing.join("; "));
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut body = problem_json(&Problem::new(status, ErrorCode::NotReady, detail));
    body["checks"] = checks;
    if let Some(lags) = lags {
        body["followers"] = lags;
    }
    let mut response = Json(body).with_status(status).into_response();
    response.headers_mut().insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// What the store says of the followers: what fails, and each one's lag (`None` when it could
/// not be read).
struct FollowerReport {
    problems: Vec<String>,
    lags: Option<Vec<FollowerLag>>,
}

/// `{name: {events_behind, seconds_behind}}` for every follower.
fn lags_json(lags: &[FollowerLag]) -> serde_json::Value {
    let entries = lags.iter().map(|lag| {
        let seconds = (lag.seconds_behind * 1000.0).round() / 1000.0;
        let figures = json!({ "events_behind": lag.events_behind, "seconds_behind": seconds });
        (lag.name.clone(), figures)
    });
    serde_json::Value::Object(entries.collect())
}

/// Each follower stalled past the threshold, each projector blocked by an event, and every
/// follower's lag.
async fn follower_report(state: &AppState) -> FollowerReport {
    let threshold = state.config.follower_stall_seconds as f64;
    let checks = async {
        let lags = follower_lags(&state.pool, None).await?;
        let blocked = blocked_followers(&state.pool, BLOCKED_AFTER_ATTEMPTS).await?;
        Ok::<_, sqlx::Error>((lags, blocked))
    };
    let unknown = |why: String| FollowerReport {
        problems: vec![format!("followers unknown: {why}")],
        lags: None,
    };
    let (lags, blocked) = match tokio::time::timeout(Duration::from_secs(2), checks).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return unknown(error.to_string()),
        Err(_) => return unknown("no answer within 2 s".to_owned()),
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
        lags.iter()
            .filter(|lag| lag.seconds_behind > threshold)
            .map(|lag| {
                format!(
                    "follower {} stalled: an event has waited {:.0} s (limit {threshold:.0} s)",
                    lag.name, lag.seconds_behind
                )
            }),
    );
    FollowerReport {
        problems,
        lags: Some(lags),
    }
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
