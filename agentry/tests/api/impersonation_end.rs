//! Ending an impersonation early: by a platform administrator's request, and by a password
//! reset of the impersonated user. Either way its token is refused from the next request on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{assert_code, expect_json, me, platform_admin, register, register_email, uuid_at};
use crate::admin::{impersonate, impersonation_of};
use crate::helpers::{TestApp, assert_problem};
use crate::password_reset::{NEW_PASSWORD, confirm, reset_token_for, spawn_with_mail};
use crate::smtp_server::SmtpServer;

async fn end(app: &TestApp, token: &str, impersonation_id: Uuid) -> Response {
    app.with_bearer(token)
        .post_json(
            &format!("/v1/admin/impersonations/{impersonation_id}/end"),
            &json!({}),
        )
        .await
}

/// Starts an impersonation of the account's owner in their organization; its answer.
async fn started(app: &TestApp, admin_token: &str, user_id: Uuid, org_id: Uuid) -> Value {
    let response = impersonate(app, admin_token, &impersonation_of(user_id, org_id)).await;
    expect_json(response, StatusCode::CREATED, "impersonation").await
}

#[tokio::test]
async fn an_ended_impersonation_token_is_refused_on_its_next_request() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let user = register(&app, "owner-a").await;
    let impersonation = started(&app, &admin.access_token, user.user_id, user.org_id).await;
    let token = impersonation["access_token"].as_str().unwrap();
    let id = uuid_at(&impersonation, "impersonation_id");
    assert_eq!(me(&app, token).await["user_id"], user.user_id.to_string());

    let response = end(&app, &admin.access_token, id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let refused = app.with_bearer(token).get("/v1/me").await;
    assert_code(refused, StatusCode::UNAUTHORIZED, "impersonation_ended").await;
    // Ending it again changes nothing and still answers 204.
    let before = app.event_count().await;
    assert_eq!(
        end(&app, &admin.access_token, id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.event_count().await, before);
    // The impersonated user's own credentials are untouched.
    assert_eq!(me(&app, &user.access_token).await["role"], "owner");
    app.cleanup().await;
}

#[tokio::test]
async fn only_platform_administrators_end_impersonations_and_an_unknown_one_is_404() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let user = register(&app, "owner-a").await;
    let impersonation = started(&app, &admin.access_token, user.user_id, user.org_id).await;
    let token = impersonation["access_token"].as_str().unwrap();
    let id = uuid_at(&impersonation, "impersonation_id");
    let before = app.event_count().await;

    // Neither the impersonated owner nor the impersonation token itself may end it.
    for caller in [user.access_token.as_str(), token] {
        assert_code(
            end(&app, caller, id).await,
            StatusCode::FORBIDDEN,
            "platform_admin_required",
        )
        .await;
    }
    let unknown = end(&app, &admin.access_token, Uuid::now_v7()).await;
    let problem = assert_problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["code"], "impersonation_not_found", "{problem}");

    assert_eq!(app.event_count().await, before);
    assert_eq!(me(&app, token).await["user_id"], user.user_id.to_string());
    app.cleanup().await;
}

#[tokio::test]
async fn a_password_reset_ends_every_live_impersonation_of_the_user() {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(&smtp).await;
    let admin = platform_admin(&app, "root").await;
    let user = register_email(&app, "ada@example.com").await;
    let other = register(&app, "owner-b").await;
    let of_user = started(&app, &admin.access_token, user.user_id, user.org_id).await;
    let of_other = started(&app, &admin.access_token, other.user_id, other.org_id).await;
    let token = of_user["access_token"].as_str().unwrap();
    assert_eq!(me(&app, token).await["user_id"], user.user_id.to_string());

    let reset = reset_token_for(&app, &mut smtp, "ada@example.com").await;
    assert_eq!(
        confirm(&app, &reset, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    let refused = app.with_bearer(token).get("/v1/me").await;
    assert_code(refused, StatusCode::UNAUTHORIZED, "impersonation_ended").await;
    // Another user's impersonation is not theirs to end.
    let untouched = of_other["access_token"].as_str().unwrap();
    assert_eq!(me(&app, untouched).await["user_id"], other.user_id.to_string());
    app.cleanup().await;
}
