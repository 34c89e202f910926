//! Email verification (issue 11, finding 5): the link mailed at registration, re-sent a few
//! times an hour at most, single-use and expiring; and bad input on the invitation and
//! verification routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{assert_code, ensure_verified, me, register, verification_token, verify_email_request};
use crate::helpers::{TestApp, check_problem};

async fn resend(app: &TestApp, token: &str) -> reqwest::Response {
    app.with_bearer(token)
        .post_json("/v1/auth/verify-email/resend", &json!({}))
        .await
}

#[tokio::test]
async fn the_link_mailed_at_registration_verifies_the_email_once() {
    let app = TestApp::spawn().await;
    let ada = register(&app, "ada").await;
    assert_eq!(me(&app, &ada.access_token).await["email_verified"], false);
    let token = verification_token(&app, &ada.email).await;

    let verified = verify_email_request(&app, &token).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &ada.access_token).await["email_verified"], true);

    let before = app.event_count().await;
    assert_code(
        verify_email_request(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_verification_token",
    )
    .await;
    assert_eq!(app.event_count().await, before, "a spent token changes nothing");
    app.cleanup().await;
}

#[tokio::test]
async fn wrong_verification_tokens_answer_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    let ada = register(&app, "ada").await;
    let real = verification_token(&app, &ada.email).await;
    let before = app.event_count().await;

    let (user_part, secret) = real.split_once('.').unwrap();
    let wrong_secret = format!("{user_part}.{}", secret.chars().rev().collect::<String>());
    let someone_else = format!("{}.{secret}", Uuid::now_v7().simple());
    let no_secret = format!("{user_part}.");
    for token in ["garbage", "", ".", &wrong_secret, &someone_else, &no_secret] {
        assert_code(
            verify_email_request(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_verification_token",
        )
        .await;
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(me(&app, &ada.access_token).await["email_verified"], false);
    assert_eq!(
        verify_email_request(&app, &real).await.status(),
        StatusCode::NO_CONTENT
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_expired_verification_link_is_refused_and_a_new_one_works() {
    let app = TestApp::spawn_with(|settings| settings.identity.email_verification_ttl_seconds = 1).await;
    let ada = register(&app, "ada").await;
    let old = verification_token(&app, &ada.email).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    assert_code(
        verify_email_request(&app, &old).await,
        StatusCode::UNAUTHORIZED,
        "verification_token_expired",
    )
    .await;
    assert_eq!(
        resend(&app, &ada.access_token).await.status(),
        StatusCode::ACCEPTED
    );
    let fresh = verification_token(&app, &ada.email).await;
    assert_eq!(
        verify_email_request(&app, &fresh).await.status(),
        StatusCode::NO_CONTENT
    );
    app.cleanup().await;
}

/// Registration's mail and two re-sends make three in an hour; the fourth is refused with
/// `Retry-After`. Earlier links keep working; a verified account gets no more mail.
#[tokio::test]
async fn verification_mail_is_resent_at_most_a_few_times_an_hour() {
    let app = TestApp::spawn().await;
    let ada = register(&app, "ada").await;
    let first = verification_token(&app, &ada.email).await;
    for _ in 0..2 {
        assert_eq!(
            resend(&app, &ada.access_token).await.status(),
            StatusCode::ACCEPTED
        );
        verification_token(&app, &ada.email).await;
    }

    let limited = resend(&app, &ada.access_token).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_code(limited, StatusCode::TOO_MANY_REQUESTS, "verification_mail_limit").await;

    assert_eq!(
        verify_email_request(&app, &first).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_code(
        resend(&app, &ada.access_token).await,
        StatusCode::CONFLICT,
        "email_already_verified",
    )
    .await;
    app.cleanup().await;
}

/// Control characters and huge values in the new routes' fields answer 4xx problems and
/// record nothing.
#[tokio::test]
async fn bad_input_on_invitation_and_verification_routes_answers_4xx_problems() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    ensure_verified(&app, &owner).await;
    let huge = "a".repeat(60_000);
    let cases: Vec<(&str, Value)> = vec![
        (
            "/v1/members",
            json!({ "email": "bob\u{0}@example.com", "role": "member" }),
        ),
        (
            "/v1/members",
            json!({ "email": "bob\u{1}@example.com", "role": "member" }),
        ),
        (
            "/v1/members",
            json!({ "email": "bob\u{7f}@example.com", "role": "member" }),
        ),
        (
            "/v1/members",
            json!({ "email": format!("{huge}@example.com"), "role": "member" }),
        ),
        (
            "/v1/members",
            json!({ "email": "bob@example.com", "role": "superuser" }),
        ),
        (
            "/v1/members",
            json!({ "email": "bob@example.com", "role": "member\u{0}" }),
        ),
        ("/v1/members", json!({ "email": 5, "role": "member" })),
        ("/v1/members", json!({ "role": "member" })),
        ("/v1/invitations/accept", json!({ "token": "abc\u{0}def" })),
        ("/v1/invitations/accept", json!({ "token": "abc\u{1b}def" })),
        ("/v1/invitations/accept", json!({ "token": huge })),
        ("/v1/invitations/accept", json!({ "token": 7 })),
        ("/v1/auth/verify-email", json!({ "token": "abc\u{0}def" })),
        ("/v1/auth/verify-email", json!({ "token": "abc\u{1b}def" })),
        ("/v1/auth/verify-email", json!({ "token": huge })),
        ("/v1/auth/verify-email", json!({})),
    ];
    let before = app.event_count().await;
    let mut failures = Vec::new();
    for (path, body) in cases {
        let response = app.with_bearer(&owner.access_token).post_json(path, &body).await;
        let status = response.status();
        let shown = body.to_string().chars().take(80).collect::<String>();
        if !status.is_client_error() {
            failures.push(format!("{path} {shown}: {status}"));
            continue;
        }
        if let Err(mismatch) = check_problem(response, status).await {
            failures.push(format!("{path} {shown}: {mismatch}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(app.event_count().await, before, "nothing is recorded");
    app.cleanup().await;
}
