//! Password reset by email, against a real SMTP server started by the test: a request for any
//! well-formed address answers 202, only a real account gets a link, and the link's token works once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::accounts::{PASSWORD, assert_code, login_request, register_email};
use crate::helpers::{TestApp, assert_problem};
use crate::smtp_server::{ReceivedMail, SmtpServer};

const PUBLIC_URL: &str = "https://agentry.example";
pub(crate) const NEW_PASSWORD: &str = "a brand new passphrase";

/// The application with its mail going to `smtp` and links pointing at [`PUBLIC_URL`].
pub(crate) async fn spawn_with_mail(smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_with(move |settings| {
        settings.identity.smtp_url = Some(url.into());
        settings.identity.public_url = PUBLIC_URL.to_owned();
    })
    .await
}

async fn request_reset(app: &TestApp, email: &str) -> Response {
    app.post_json("/v1/auth/password-reset", &json!({ "email": email }))
        .await
}

pub(crate) async fn confirm(app: &TestApp, token: &str, new_password: &str) -> Response {
    app.post_json(
        "/v1/auth/password-reset/confirm",
        &json!({ "token": token, "new_password": new_password }),
    )
    .await
}

/// 202 with nothing to read: the same whether or not the account exists.
async fn assert_accepted(response: Response) {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body.is_empty(), "a 202 tells nothing: {body:?}");
}

/// The token of the reset link in `mail`, after undoing the transfer encoding.
fn reset_token(mail: &ReceivedMail) -> String {
    let body = mail.body_text();
    let link_start = format!("{PUBLIC_URL}/reset-password?token=");
    let start = body
        .find(&link_start)
        .unwrap_or_else(|| panic!("the mail holds a link {link_start}…: {body}"));
    body[start + link_start.len()..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Requests a reset for `email` and returns the token the mail brought.
pub(crate) async fn reset_token_for(app: &TestApp, smtp: &mut SmtpServer, email: &str) -> String {
    assert_accepted(request_reset(app, email).await).await;
    reset_token(&smtp.expect_mail_to(email, "password").await)
}

#[tokio::test]
async fn a_reset_for_an_unknown_email_answers_202_and_sends_no_mail() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;
    let before = app.event_count().await;

    // Registration mailed ada a verification link; nothing else may follow.
    smtp.expect_mail_to("ada@example.com", "Confirm your email").await;
    assert_accepted(request_reset(&app, "nobody@example.com").await).await;
    // What can never be an address breaks the document (`format: email`) and is refused at
    // once; that says nothing about accounts.
    assert_code(
        request_reset(&app, "not an email").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
    )
    .await;

    let mail = smtp.next_mail(Duration::from_millis(500)).await;
    assert!(mail.is_none(), "no mail for an unknown address: {mail:?}");
    assert_eq!(app.event_count().await, before, "nothing is written");
    app.cleanup().await;
}

#[tokio::test]
async fn a_reset_link_arrives_by_smtp_and_sets_a_new_password_once() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;

    assert_accepted(request_reset(&app, "Ada@Example.com").await).await;
    let mail = smtp.expect_mail_to("ada@example.com", "password").await;

    assert_eq!(mail.rcpt_to, vec!["ada@example.com".to_owned()], "{mail:?}");
    assert_eq!(mail.mail_from, "no-reply@agentry.invalid", "{mail:?}");
    let to = mail.header("To").unwrap_or_default();
    assert!(to.contains("ada@example.com"), "To: {to}");
    let subject = mail.header("Subject").unwrap_or_default();
    assert!(subject.contains("password"), "Subject: {subject}");
    let token = reset_token(&mail);
    assert!(!token.is_empty(), "{}", mail.body_text());

    assert_eq!(
        confirm(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_code(
        login_request(&app, "ada@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        login_request(&app, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    let before = app.event_count().await;
    assert_code(
        confirm(&app, &token, "yet another passphrase").await,
        StatusCode::UNAUTHORIZED,
        "invalid_reset_token",
    )
    .await;
    assert_eq!(app.event_count().await, before, "a spent token changes nothing");
    assert_eq!(
        login_request(&app, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK,
        "the spent token's second use did not change the password"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_or_forged_reset_tokens_answer_401_and_change_nothing() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let account = register_email(&app, "ada@example.com").await;
    let real = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    let before = app.event_count().await;

    let (user_part, secret) = real.split_once('.').unwrap();
    let wrong_secret = format!("{user_part}.{}", secret.chars().rev().collect::<String>());
    let someone_else = format!("{}.{secret}", Uuid::now_v7().simple());
    let no_secret = format!("{}.", account.user_id.simple());
    for token in [
        "garbage",
        "",
        ".",
        wrong_secret.as_str(),
        someone_else.as_str(),
        no_secret.as_str(),
    ] {
        let response = confirm(&app, token, NEW_PASSWORD).await;
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(problem["code"], "invalid_reset_token", "{token:?}: {problem}");
    }

    assert_eq!(app.event_count().await, before);
    assert_eq!(
        login_request(&app, "ada@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "the password is unchanged"
    );
    // The real link still works.
    assert_eq!(
        confirm(&app, &real, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_weak_new_password_answers_422_and_the_link_still_works() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;
    let token = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    let before = app.event_count().await;

    let problem = assert_code(
        confirm(&app, &token, "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
    )
    .await;

    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("12"), "the detail states the rule: {detail}");
    assert_eq!(app.event_count().await, before, "nothing is written");
    assert_eq!(
        confirm(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        login_request(&app, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    app.cleanup().await;
}

/// The token is checked before the password rule: a guessed link with a weak password learns
/// only that the link is wrong (never 422, which would say the account and link are real), and
/// costs no password hash. The password's length is a rule of the document, checked before
/// anything else for every link alike, so its 422 says nothing about the link either.
#[tokio::test]
async fn a_wrong_link_with_a_weak_password_answers_401_not_422() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let ada = register_email(&app, "ada@example.com").await;
    let token = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    let guessed = format!("{}.{}", ada.user_id, "x".repeat(43));
    assert_ne!(guessed, token);
    let before = app.event_count().await;

    // Long enough for the document, weak for the domain (one repeated character).
    let response = confirm(&app, &guessed, &"a".repeat(16)).await;

    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        response.text().await.unwrap()
    );
    for link in [&guessed, &token] {
        let too_short = confirm(&app, link, "short").await;
        assert_code(too_short, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    }
    assert_eq!(app.event_count().await, before, "nothing is written");
    app.cleanup().await;
}

/// A second request (by the owner, or by anyone who knows the address) mails a new link and
/// leaves the first one working: nobody else's request can take away a link the owner has.
#[tokio::test]
async fn a_second_request_leaves_the_first_link_working() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;

    let first = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    let second = reset_token_for(&app, &mut smtp, "ada@example.com").await;

    assert_ne!(first, second, "each request mails a new token");
    assert_eq!(
        confirm(&app, &first, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT,
        "the first link still works after a second request"
    );
    assert_eq!(
        login_request(&app, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    app.cleanup().await;
}

/// Using one link ends every other outstanding link.
#[tokio::test]
async fn after_a_completed_reset_every_other_link_is_dead() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;
    let first = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    let second = reset_token_for(&app, &mut smtp, "ada@example.com").await;

    assert_eq!(
        confirm(&app, &second, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    for spent in [&first, &second] {
        assert_code(
            confirm(&app, spent, "yet another passphrase").await,
            StatusCode::UNAUTHORIZED,
            "invalid_reset_token",
        )
        .await;
    }
    app.cleanup().await;
}

/// However often someone asks, the mailbox gets at most three links per link lifetime; every
/// request still answers the same 202.
#[tokio::test]
async fn ten_requests_send_at_most_three_mails() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;

    for _ in 0..10 {
        assert_accepted(request_reset(&app, "ada@example.com").await).await;
    }

    let mut tokens = Vec::new();
    while let Some(mail) = smtp
        .next_mail_to("ada@example.com", "password", Duration::from_secs(3))
        .await
    {
        tokens.push(reset_token(&mail));
    }
    assert_eq!(tokens.len(), 3, "mails sent for ten requests");
    // The first link mailed still works.
    assert_eq!(
        confirm(&app, &tokens[0], NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_completed_reset_ends_the_sessions_started_before_it() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let account = register_email(&app, "ada@example.com").await;

    let before = app.with_bearer(&account.access_token).get("/v1/me").await;
    assert_eq!(before.status(), StatusCode::OK);
    let token = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    assert_eq!(
        confirm(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    // The access token issued before the reset stops at once, not when it expires.
    let old_access = app.with_bearer(&account.access_token).get("/v1/me").await;
    assert_code(old_access, StatusCode::UNAUTHORIZED, "session_ended").await;
    let refresh = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": account.refresh_token }),
        )
        .await;
    let problem = assert_problem(refresh, StatusCode::UNAUTHORIZED).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("password was changed")
    );
    let fresh = login_request(&app, "ada@example.com", NEW_PASSWORD).await;
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "a new login starts a session that refreshes"
    );
    let fresh: serde_json::Value = fresh.json().await.unwrap();
    let refreshed = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": fresh["refresh_token"] }),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    app.cleanup().await;
}

/// "Always answers 202 (no account enumeration)" holds for the answer's timing too: the
/// look-up, the event and the mail happen after the answer. With a mail server that takes two
/// seconds to greet, a request for a real account still answers at once (as fast as one for an
/// unknown address), and the mail arrives later.
#[tokio::test]
async fn a_reset_request_answers_at_once_whether_or_not_the_account_exists() {
    let mut smtp = SmtpServer::start_with_greeting_delay(Duration::from_secs(2)).await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;

    for email in ["ada@example.com", "nobody@example.com"] {
        let started = Instant::now();
        assert_accepted(request_reset(&app, email).await).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(1500),
            "{email}: the answer waited {elapsed:?}, as if for the mail server"
        );
    }
    let mail = smtp.expect_mail_to("ada@example.com", "password").await;
    assert_eq!(mail.rcpt_to, vec!["ada@example.com".to_owned()]);
    app.cleanup().await;
}

/// Whoever completes a reset reads the mailbox: the account's failed logins and locks are
/// forgotten, so the owner logs in at once with the new password from the address that was
/// locked (the lock would otherwise last a minute).
#[tokio::test]
async fn a_completed_reset_lifts_the_login_lock() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    register_email(&app, "ada@example.com").await;
    for _ in 0..5 {
        let response = login_request(&app, "ada@example.com", "not the right password at all").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_code(
        login_request(&app, "ada@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    )
    .await;

    let token = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    assert_eq!(
        confirm(&app, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        login_request(&app, "ada@example.com", NEW_PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    app.cleanup().await;
}
