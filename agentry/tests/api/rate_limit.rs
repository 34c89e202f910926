//! Rate limits: a token bucket per user and per API key (`AGENTRY_RATE_LIMIT_PER_MINUTE`,
//! `AGENTRY_RATE_LIMIT_BURST`); an empty bucket answers 429 with `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use crate::accounts::{create_api_key, me, register};
use crate::helpers::{TestApp, assert_problem};

/// One request a second, in bursts of at most three.
async fn spawn_limited() -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.http.rate_limit_per_minute = 60;
        settings.http.rate_limit_burst = 3;
    })
    .await
}

/// Sends `/v1/me` with `token` until the bucket is empty; the answer after the burst must be
/// 429 with a `Retry-After` of at least one second. Returns that wait.
async fn exhaust(app: &TestApp, token: &str, burst_left: usize) -> u64 {
    for attempt in 1..=burst_left {
        let response = app.with_bearer(token).get("/v1/me").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {attempt} of the burst is served"
        );
    }
    let response = app.with_bearer(token).get("/v1/me").await;
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let problem = assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    let retry_after = retry_after.unwrap_or_else(|| panic!("a numeric Retry-After: {problem}"));
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    retry_after
}

#[tokio::test]
async fn a_users_fourth_rapid_request_over_a_burst_of_three_gets_429_with_retry_after() {
    let app = spawn_limited().await;
    let ada = register(&app, "ada").await;
    let bob = register(&app, "bob").await;

    let before = app.event_count().await;
    exhaust(&app, &ada.access_token, 3).await;

    assert_eq!(app.event_count().await, before);
    me(&app, &bob.access_token).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_api_key_has_a_bucket_of_its_own() {
    let app = spawn_limited().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;

    exhaust(&app, &key.key, 3).await;

    // The owner spent one request of their own bucket creating the key.
    me(&app, &owner.access_token).await;
    app.cleanup().await;
}
