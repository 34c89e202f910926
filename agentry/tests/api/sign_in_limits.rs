//! The sign-in routes under abuse (issue 11, findings 2 and 3): password hashing is bounded and
//! answers 503 `auth_busy` past its bound, `/v1/auth/*` is limited per client address (429
//! `auth_rate_limited`), and failed logins lock an (account, address) pair for a while (429
//! `too_many_attempts`, even with the right password) without locking the owner out elsewhere.
//!
//! Every test runs from 127.0.0.1; another client is 127.0.0.2 (see `TestApp::client_from`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::header::RETRY_AFTER;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{PASSWORD, assert_code, login_request, register_email};
use crate::helpers::TestApp;

const WRONG: &str = "not the right password at all";
const OTHER_ADDRESS: [u8; 4] = [127, 0, 0, 2];

async fn login_from(app: &TestApp, client: &Client, email: &str, password: &str) -> Response {
    client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request")
}

/// The numeric `Retry-After` of a refusal, which must be there and at least one second.
fn retry_after(response: &Response) -> u64 {
    let seconds = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a numeric Retry-After on {}", response.status()));
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// Sends `count` concurrent logins with distinct unknown emails from the app's own client;
/// each answer's status, code, `Retry-After` and how long it took.
async fn flood(app: &TestApp, count: usize) -> Vec<(StatusCode, Value, Option<u64>, Duration)> {
    let logins = (0..count).map(|i| async move {
        let started = Instant::now();
        let response = login_request(app, &format!("nobody{i}@example.com"), WRONG).await;
        let elapsed = started.elapsed();
        let status = response.status();
        let wait = (status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(&response));
        let body: Value = response.json().await.unwrap();
        (status, body, wait, elapsed)
    });
    join_all(logins).await
}

// --- finding 2: hashing bound and per-address limit ------------------------------------------

/// One hash at a time and one waiter: of 48 simultaneous logins most are told at once that the
/// service is busy (503 `auth_busy` with `Retry-After`) instead of all hashing at once, and the
/// service is fine afterwards.
#[tokio::test]
async fn a_flood_of_logins_past_the_hashing_bound_is_answered_503_at_once() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_in_limits.password_hash_concurrency = Some(1);
        settings.sign_in_limits.password_hash_queue = Some(1);
        settings.sign_in_limits.password_hash_wait_ms = 2_000;
    })
    .await;
    register_email(&app, "ada@example.com").await;

    let answers = flood(&app, 48).await;

    let mut busy = 0;
    for (status, body, _, elapsed) in &answers {
        match *status {
            StatusCode::UNAUTHORIZED => assert_eq!(body["code"], "invalid_credentials", "{body}"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "auth_busy", "{body}");
                assert!(
                    *elapsed < Duration::from_millis(1500),
                    "a busy answer comes at once, not after queueing: {elapsed:?}"
                );
                busy += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        busy >= 24,
        "most of 48 simultaneous logins are refused past one hash and one waiter; {busy} were"
    );
    assert_eq!(
        login_request(&app, "ada@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "after the flood a real login works"
    );
    app.cleanup().await;
}

/// One address floods login (96 at once); past its small burst it gets 429
/// `auth_rate_limited` without costing a hash, and the owner, logging in from another address
/// during the flood, gets in within a few seconds.
#[tokio::test]
async fn the_owner_logs_in_from_another_address_while_one_address_floods() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_in_limits.auth_rate_limit_per_minute = 60;
        settings.sign_in_limits.auth_rate_limit_burst = 5;
    })
    .await;
    register_email(&app, "ada@example.com").await;
    let owner = app.client_from(OTHER_ADDRESS);

    let owner_login = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let response = login_from(&app, &owner, "ada@example.com", PASSWORD).await;
        (response.status(), started.elapsed())
    };
    let (answers, (owner_status, owner_took)) = tokio::join!(flood(&app, 96), owner_login);

    assert_eq!(owner_status, StatusCode::OK, "the owner logs in during the flood");
    assert!(
        owner_took < Duration::from_secs(5),
        "the owner's login took {owner_took:?} during the flood"
    );
    let mut limited = 0;
    for (status, body, _, _) in &answers {
        match *status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "auth_rate_limited", "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        limited >= 88,
        "all but the burst of one address's 96 logins are refused; {limited} were"
    );
    app.cleanup().await;
}

/// Every `/v1/auth/*` route draws on the same per-address budget, reset requests included (so
/// one address cannot have mail sent without end); another address has its own.
#[tokio::test]
async fn every_auth_route_shares_one_budget_per_client_address() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_in_limits.auth_rate_limit_per_minute = 1;
        settings.sign_in_limits.auth_rate_limit_burst = 3;
    })
    .await;
    let reset = json!({ "email": "ada@example.com" });
    for _ in 0..3 {
        let response = app.post_json("/v1/auth/password-reset", &reset).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let before = app.event_count().await;

    // Every operation the document lists under /auth, so a route added later is covered (the
    // limit runs before the body is read, so an empty object does for every route).
    let document: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let auth_routes: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, operations)| path.starts_with("/auth/") && operations.get("post").is_some())
        .map(|(path, _)| format!("/v1{path}"))
        .collect();
    assert!(auth_routes.len() >= 7, "{auth_routes:?}");
    for path in &auth_routes {
        let response = app.post_json(path, &json!({})).await;
        retry_after(&response);
        let problem = assert_code(response, StatusCode::TOO_MANY_REQUESTS, "auth_rate_limited").await;
        assert!(problem["detail"].is_string(), "{path}: {problem}");
    }
    assert_eq!(app.event_count().await, before, "refused requests change nothing");

    let elsewhere = app
        .client_from(OTHER_ADDRESS)
        .post(app.url("/v1/auth/password-reset"))
        .json(&reset)
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        StatusCode::ACCEPTED,
        "another address has its own budget"
    );
    app.cleanup().await;
}

// --- finding 3: password guessing -------------------------------------------------------------

/// Five wrong passwords lock the account for that address: the right password is then refused
/// too (429 `too_many_attempts` with `Retry-After`), while the owner at another address logs
/// in, and once the lock has run out the right password works again.
#[tokio::test]
async fn five_wrong_passwords_lock_that_address_out_until_the_lock_runs_out() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_in_limits.login_lock_seconds = 3;
        settings.sign_in_limits.login_max_lock_seconds = 6;
    })
    .await;
    register_email(&app, "ada@example.com").await;

    for attempt in 1..=5 {
        let response = login_request(&app, "ada@example.com", WRONG).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "wrong password {attempt}"
        );
    }
    let locked = login_request(&app, "ada@example.com", PASSWORD).await;
    let wait = retry_after(&locked);
    assert!(wait <= 3, "Retry-After {wait} is at most the lock");
    assert_code(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;

    let owner = app.client_from(OTHER_ADDRESS);
    assert_eq!(
        login_from(&app, &owner, "ada@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK,
        "a guesser at one address does not lock the owner out at another"
    );

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(300)).await;
    assert_eq!(
        login_request(&app, "ada@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "the lock ends by itself"
    );
    app.cleanup().await;
}

/// An email without an account is locked exactly like one with an account, so the lock tells
/// nobody which emails have accounts.
#[tokio::test]
async fn an_unknown_email_is_locked_like_a_known_one() {
    let app = TestApp::spawn().await;
    register_email(&app, "ada@example.com").await;

    let mut refusals = Vec::new();
    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            let response = login_request(&app, email, WRONG).await;
            assert_code(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
        let response = login_request(&app, email, WRONG).await;
        let wait = retry_after(&response);
        let problem = assert_code(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
        refusals.push((wait, problem["detail"].clone()));
    }
    assert_eq!(refusals[0].0.abs_diff(refusals[1].0), 0, "{refusals:?}");
    assert_eq!(refusals[0].1, refusals[1].1, "the same refusal");
    app.cleanup().await;
}

/// A success clears the count: someone who mistypes four times, logs in, and later mistypes
/// four times again is never locked.
#[tokio::test]
async fn a_successful_login_clears_the_failures_before_it() {
    let app = TestApp::spawn().await;
    register_email(&app, "ada@example.com").await;

    for round in 1..=2 {
        for _ in 0..4 {
            let response = login_request(&app, "ada@example.com", WRONG).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            login_request(&app, "ada@example.com", PASSWORD).await.status(),
            StatusCode::OK,
            "round {round}"
        );
    }
    app.cleanup().await;
}
