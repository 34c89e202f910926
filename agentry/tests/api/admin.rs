//! Platform administrators (made by the real `agentry admin create`): suspending and
//! reactivating organizations, and impersonating users with a reason and a time limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{
    PASSWORD, create_api_key, event_metadata, expect_json, login, me, platform_admin, register, uuid_at,
};
use crate::helpers::{TestApp, assert_problem, check_problem};

pub(crate) async fn suspend(app: &TestApp, token: &str, org_id: Uuid, reason: &str) -> Response {
    app.with_bearer(token)
        .post_json(
            &format!("/v1/admin/orgs/{org_id}/suspend?reason={reason}"),
            &json!({}),
        )
        .await
}

async fn reactivate(app: &TestApp, token: &str, org_id: Uuid) -> Response {
    app.with_bearer(token)
        .post_json(&format!("/v1/admin/orgs/{org_id}/reactivate"), &json!({}))
        .await
}

pub(crate) async fn impersonate(app: &TestApp, token: &str, body: &Value) -> Response {
    app.with_bearer(token)
        .post_json("/v1/admin/impersonations", body)
        .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh_token }))
        .await
}

pub(crate) fn impersonation_of(user_id: Uuid, org_id: Uuid) -> Value {
    json!({ "user_id": user_id, "org_id": org_id, "reason": "support ticket 42", "ttl_seconds": 600 })
}

/// `/v1/me` with `token` answers 403 `organization_suspended`.
async fn assert_suspended(app: &TestApp, token: &str, who: &str) {
    let response = app.with_bearer(token).get("/v1/me").await;
    let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "organization_suspended", "{who}: {problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("suspended"),
        "{who}: the detail says why: {problem}"
    );
}

#[tokio::test]
async fn the_cli_creates_a_platform_administrator_who_acts_for_no_organization() {
    let app = TestApp::spawn().await;

    let admin = platform_admin(&app, "root").await;

    let itself = me(&app, &admin.access_token).await;
    assert_eq!(itself["is_platform_admin"], true, "{itself}");
    assert_eq!(itself["email"], admin.email, "{itself}");
    assert!(itself.get("org_id").is_none(), "{itself}");
    assert!(itself.get("role").is_none(), "{itself}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_suspended_organizations_tokens_and_keys_get_403_until_it_is_reactivated() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;
    let a_key = create_api_key(&app, &a.access_token, "ci").await;
    let b = register(&app, "owner-b").await;

    let response = suspend(&app, &admin.access_token, a.org_id, "unpaid-invoices").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_suspended(&app, &a.access_token, "A's owner token").await;
    assert_suspended(&app, &a_key.key, "A's API key").await;
    let relogin = app
        .post_json(
            "/v1/auth/login",
            &json!({ "email": a.email, "password": PASSWORD }),
        )
        .await;
    let problem = assert_problem(relogin, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "organization_suspended", "{problem}");
    assert_eq!(me(&app, &b.access_token).await["org_id"], b.org_id.to_string());
    let suspended = event_metadata(&app, "organization.suspended").await;
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0]["actor"], format!("user:{}", admin.user_id));
    assert_eq!(suspended[0]["org_id"], a.org_id.to_string());

    let response = reactivate(&app, &admin.access_token, a.org_id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_eq!(me(&app, &a.access_token).await["org_id"], a.org_id.to_string());
    assert_eq!(me(&app, &a_key.key).await["org_id"], a.org_id.to_string());
    login(&app, &a.email, Some(a.org_id)).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_impersonation_token_stops_working_when_its_time_limit_is_up() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let user = register(&app, "owner-a").await;
    let mut body = impersonation_of(user.user_id, user.org_id);
    body["ttl_seconds"] = json!(1);
    let response = impersonate(&app, &admin.access_token, &body).await;
    let started = expect_json(response, StatusCode::CREATED, "impersonation").await;
    let token = started["access_token"].as_str().unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;

    let response = app.with_bearer(token).get("/v1/me").await;
    let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["code"], "access_token_expired", "{problem}");
    app.cleanup().await;
}

/// A client whose access token expired during a suspension tries to refresh: it must be told
/// the organization is suspended without its refresh token being spent, so the same token
/// works once the organization is reactivated.
#[tokio::test]
async fn a_refresh_during_a_suspension_is_refused_and_spends_nothing() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;
    let response = suspend(&app, &admin.access_token, a.org_id, "review").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let before = app.event_count().await;
    let refused = refresh(&app, &a.refresh_token).await;
    let problem = assert_problem(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "organization_suspended", "{problem}");
    let after = app.event_count().await;

    let response = reactivate(&app, &admin.access_token, a.org_id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let again = refresh(&app, &a.refresh_token).await;
    let again_status = again.status();
    let again_body = again.text().await.unwrap();
    assert_eq!(
        (after - before, again_status),
        (0, StatusCode::OK),
        "the refused refresh wrote {} event(s); after reactivation the same refresh token \
         answered {again_status}: {again_body}",
        after - before
    );
    app.cleanup().await;
}

#[tokio::test]
async fn suspending_twice_reactivating_an_active_or_an_unknown_organization_are_problems() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;

    let response = reactivate(&app, &admin.access_token, a.org_id).await;
    let problem = assert_problem(response, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "not_suspended", "{problem}");
    let response = suspend(&app, &admin.access_token, Uuid::now_v7(), "nobody").await;
    let problem = assert_problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["code"], "organization_not_found", "{problem}");
    let response = suspend(&app, &admin.access_token, a.org_id, "first").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let before = app.event_count().await;
    let response = suspend(&app, &admin.access_token, a.org_id, "second").await;
    let problem = assert_problem(response, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "already_suspended", "{problem}");
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn only_platform_administrators_suspend_reactivate_and_impersonate() {
    let app = TestApp::spawn().await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;

    let before = app.event_count().await;
    let mut answers = Vec::new();
    answers.push(suspend(&app, &a.access_token, b.org_id, "takeover").await);
    answers.push(suspend(&app, &a.access_token, a.org_id, "own").await);
    answers.push(reactivate(&app, &a.access_token, a.org_id).await);
    answers.push(impersonate(&app, &a.access_token, &impersonation_of(b.user_id, b.org_id)).await);
    for response in answers {
        let problem = assert_problem(response, StatusCode::FORBIDDEN).await;
        assert_eq!(problem["code"], "platform_admin_required", "{problem}");
    }

    assert_eq!(app.event_count().await, before);
    assert_eq!(me(&app, &b.access_token).await["role"], "owner");
    app.cleanup().await;
}

#[tokio::test]
async fn an_impersonation_token_says_so_and_its_events_record_the_administrator_and_the_user() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let user = register(&app, "owner-a").await;

    let response = impersonate(
        &app,
        &admin.access_token,
        &impersonation_of(user.user_id, user.org_id),
    )
    .await;
    let started = expect_json(response, StatusCode::CREATED, "impersonation").await;
    let token = started["access_token"].as_str().unwrap().to_owned();
    let expires_at: chrono::DateTime<chrono::Utc> = started["expires_at"].as_str().unwrap().parse().unwrap();
    let lasts = expires_at - chrono::Utc::now();
    assert!(
        (590..=600).contains(&lasts.num_seconds()),
        "the token lasts the 600 s asked for: {started}"
    );

    let itself = me(&app, &token).await;
    assert_eq!(itself["user_id"], user.user_id.to_string(), "{itself}");
    assert_eq!(itself["org_id"], user.org_id.to_string(), "{itself}");
    assert_eq!(itself["role"], "owner", "{itself}");
    assert_eq!(itself["impersonator_id"], admin.user_id.to_string(), "{itself}");
    assert_eq!(itself["is_platform_admin"], false, "{itself}");
    let recorded = event_metadata(&app, "impersonation.started").await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["actor"], format!("user:{}", admin.user_id));
    assert_eq!(recorded[0]["org_id"], user.org_id.to_string());

    let key = create_api_key(&app, &token, "made while impersonating").await;
    let created = event_metadata(&app, "api_key.created").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0]["actor"],
        format!("user:{}", user.user_id),
        "{}",
        created[0]
    );
    assert_eq!(
        created[0]["impersonator_id"],
        admin.user_id.to_string(),
        "{}",
        created[0]
    );
    assert_eq!(created[0]["org_id"], user.org_id.to_string(), "{}", created[0]);
    assert_eq!(me(&app, &key.key).await["org_id"], user.org_id.to_string());

    // Impersonating confers none of the administrator's own powers.
    let response = suspend(&app, &token, user.org_id, "from-inside").await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    app.cleanup().await;
}

#[tokio::test]
async fn impersonation_needs_a_reason_a_time_limit_of_at_most_an_hour_and_a_membership() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let user = register(&app, "owner-a").await;
    let other = register(&app, "owner-b").await;
    let valid = impersonation_of(user.user_id, user.org_id);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (
            "an empty reason",
            with("reason", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a blank reason",
            with("reason", json!("   ")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("no reason", without("reason"), StatusCode::BAD_REQUEST),
        (
            "a ttl of 0 s",
            with("ttl_seconds", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a ttl of 2 hours",
            with("ttl_seconds", json!(7200)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("no ttl", without("ttl_seconds"), StatusCode::BAD_REQUEST),
        (
            "a user in an organization they do not belong to",
            with("org_id", json!(other.org_id)),
            StatusCode::NOT_FOUND,
        ),
        (
            "an unknown user",
            with("user_id", json!(Uuid::now_v7())),
            StatusCode::NOT_FOUND,
        ),
        (
            "the administrator themself (no member there)",
            with("user_id", json!(admin.user_id)),
            StatusCode::NOT_FOUND,
        ),
    ];

    let mut mismatches = Vec::new();
    for (what, body, status) in cases {
        let before = app.event_count().await;
        let response = impersonate(&app, &admin.access_token, &body).await;
        match check_problem(response, status).await {
            Ok(problem) if status == StatusCode::UNPROCESSABLE_ENTITY => {
                let detail = problem["detail"].as_str().unwrap();
                let field = if what.contains("ttl") {
                    "ttl_seconds"
                } else {
                    "reason"
                };
                if !detail.contains(field) {
                    mismatches.push(format!("{what}: the detail should name {field}: {problem}"));
                }
            }
            Ok(_) => {}
            Err(mismatch) => mismatches.push(format!("{what}: {mismatch}")),
        }
        let after = app.event_count().await;
        if after != before {
            mismatches.push(format!("{what}: events went from {before} to {after}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} case(s) failed:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );

    // The control: the unchanged request is accepted.
    let response = impersonate(&app, &admin.access_token, &valid).await;
    let started = expect_json(response, StatusCode::CREATED, "impersonation").await;
    let itself = me(&app, started["access_token"].as_str().unwrap()).await;
    assert_eq!(uuid_at(&itself, "impersonator_id"), admin.user_id, "{itself}");
    app.cleanup().await;
}
