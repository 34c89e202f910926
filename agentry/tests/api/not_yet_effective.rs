//! A write whose effect depends on the identity read model (a revocation) never answers
//! success while that model cannot hold it: 503 `not_yet_effective` with `Retry-After`, saying
//! the change is recorded, instead of a 204 while the key still works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::accounts::{create_api_key, me, register};
use crate::helpers::{TestApp, assert_problem};

/// Short, so the stalled case answers quickly; generous for the healthy case on a loaded machine.
const VIEW_WAIT_MS: u64 = 2_000;

/// Stalls the identity projector for good: a `user.registered` whose email holds U+0000, which
/// the `events` table's `json` accepts and the `users` table's `text` refuses, so every batch
/// that reaches it fails and is retried. Written by raw SQL, as a past writer could have.
async fn poison_the_identity_projector(app: &TestApp) {
    let (payload, metadata): (String, String) = sqlx::query_as(
        "SELECT payload::text, metadata::text FROM events WHERE event_type = 'user.registered' LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let mut payload: Value = serde_json::from_str(&payload).unwrap();
    payload["email"] = Value::from("poison\u{0}@example.com");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT aggregate_type, $1, 1, event_type, event_version, $2::text::json, $3::text::json
           FROM events WHERE event_type = 'user.registered' LIMIT 1",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(payload.to_string())
    .bind(metadata)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_revocation_the_identity_view_cannot_apply_is_a_503_with_retry_after_not_a_204() {
    let app = TestApp::spawn_with(|settings| settings.identity.view_wait_ms = VIEW_WAIT_MS).await;
    let owner = register(&app, "owner").await;
    let healthy = create_api_key(&app, &owner.access_token, "healthy").await;
    let stalled = create_api_key(&app, &owner.access_token, "stalled").await;

    // Allowed: with the projector healthy, the revocation is in effect when it answers 204.
    let response = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/api-keys/{}", healthy.id))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let refused = app.with_bearer(&healthy.key).get("/v1/me").await;
    assert_problem(refused, StatusCode::UNAUTHORIZED).await;

    poison_the_identity_projector(&app).await;
    let started = Instant::now();
    let response = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/api-keys/{}", stalled.id))
        .await;
    let waited = started.elapsed();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "not_yet_effective", "{problem}");
    assert!(
        retry_after.is_some_and(|seconds| seconds >= 1),
        "Retry-After: {retry_after:?}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("revoked") && detail.contains("recorded") && detail.contains("do not repeat"),
        "the detail says what is recorded and not to repeat it: {detail}"
    );
    // Bounded by the configured wait (plus slack for a loaded machine), not a request hanging.
    assert!(
        waited < Duration::from_millis(VIEW_WAIT_MS) + Duration::from_secs(8),
        "answered after {waited:?}"
    );

    // The answer is true: the revocation is recorded, and (the view being stuck) the key still
    // works, which is exactly why the answer may not be a success.
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'api_key.revoked' AND aggregate_id = $1",
    )
    .bind(stalled.id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1, "the revocation is committed");
    me(&app, &stalled.key).await;
    app.cleanup().await;
}
