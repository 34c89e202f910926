//! People and credentials for identity and tenancy tests, made the way a client makes them:
//! through the HTTP API (and, for platform administrators, the real `agentry` binary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use commands::identity::TokenKeys;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem};
use crate::smtp_server::link_token;

/// Every account in these tests uses it: long enough, and containing no test email's name.
pub const PASSWORD: &str = "correct horse battery staple";

/// A user signed in to one organization.
#[derive(Clone, Debug)]
pub struct Account {
    pub user_id: Uuid,
    /// The organization `access_token` acts for.
    pub org_id: Uuid,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// An API key as `POST /v1/api-keys` answered it.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: Uuid,
    /// The full secret, `agk_<prefix>_<secret>`.
    pub key: String,
    pub prefix: String,
}

/// A platform administrator's own token (it acts for no organization).
#[derive(Clone, Debug)]
pub struct PlatformAdmin {
    pub user_id: Uuid,
    pub email: String,
    pub access_token: String,
}

/// `<name>@example.com`.
pub fn email_of(name: &str) -> String {
    format!("{name}@example.com")
}

/// Registers `<name>@example.com` with an organization of their own, which they own.
pub async fn register(app: &TestApp, name: &str) -> Account {
    register_email(app, &email_of(name)).await
}

/// Registers `email` with [`PASSWORD`] and an organization named after it; fails the test
/// unless the answer is 201 with the contract's fields.
pub async fn register_email(app: &TestApp, email: &str) -> Account {
    let response = register_request(app, email, PASSWORD, &format!("Org of {email}")).await;
    let body = expect_json(response, StatusCode::CREATED, "registration").await;
    Account {
        user_id: uuid_at(&body, "user_id"),
        org_id: uuid_at(&body, "org_id"),
        email: email.to_owned(),
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

/// `POST /v1/auth/register`, answer unchecked.
pub async fn register_request(app: &TestApp, email: &str, password: &str, org_name: &str) -> Response {
    app.post_json(
        "/v1/auth/register",
        &json!({ "email": email, "password": password, "org_name": org_name }),
    )
    .await
}

/// `POST /v1/auth/login` without an organization, answer unchecked.
pub async fn login_request(app: &TestApp, email: &str, password: &str) -> Response {
    app.post_json("/v1/auth/login", &json!({ "email": email, "password": password }))
        .await
}

/// Logs `email` in to `org_id` (or their first organization) and returns the access token.
pub async fn login(app: &TestApp, email: &str, org_id: Option<Uuid>) -> String {
    login_pair(app, email, org_id).await.0
}

/// Like [`login`], returning `(access_token, refresh_token)`.
pub async fn login_pair(app: &TestApp, email: &str, org_id: Option<Uuid>) -> (String, String) {
    let mut body = json!({ "email": email, "password": PASSWORD });
    if let Some(org_id) = org_id {
        body["org_id"] = json!(org_id);
    }
    let response = app.post_json("/v1/auth/login", &body).await;
    let body = expect_json(response, StatusCode::OK, "login").await;
    let token = |field: &str| body[field].as_str().unwrap().to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Subject of the mail with the email verification link.
pub const VERIFICATION_SUBJECT: &str = "Confirm your email";
/// Subject of an invitation mail.
pub const INVITATION_SUBJECT: &str = "You are invited";

/// Registers `<name>@example.com`, has `owner` invite them to the owner's organization with
/// `role`, accepts the mailed invitation as them, and signs them in to that organization.
pub async fn add_member(app: &TestApp, owner: &Account, name: &str, role: &str) -> Account {
    let user = register(app, name).await;
    join_org(app, owner, &user, role).await
}

/// `inviter` invites `user` with `role` (verifying the inviter's email first if needed), `user`
/// accepts the mailed token, and logs in to the inviter's organization.
pub async fn join_org(app: &TestApp, inviter: &Account, user: &Account, role: &str) -> Account {
    ensure_verified(app, inviter).await;
    let response = invite(app, &inviter.access_token, &user.email, role).await;
    expect_json(response, StatusCode::ACCEPTED, "inviting a member").await;
    let token = invitation_token(app, &user.email).await;
    let accepted = accept_invitation(app, &user.access_token, &token).await;
    let body = expect_json(accepted, StatusCode::OK, "accepting an invitation").await;
    assert_eq!(uuid_at(&body, "org_id"), inviter.org_id, "{body}");
    assert_eq!(body["role"], role, "{body}");
    let (access_token, refresh_token) = login_pair(app, &user.email, Some(inviter.org_id)).await;
    Account {
        org_id: inviter.org_id,
        access_token,
        refresh_token,
        ..user.clone()
    }
}

/// `POST /v1/members` (an invitation), answer unchecked.
pub async fn invite(app: &TestApp, token: &str, email: &str, role: &str) -> Response {
    app.with_bearer(token)
        .post_json("/v1/members", &json!({ "email": email, "role": role }))
        .await
}

/// `POST /v1/invitations/accept` with `token`'s credentials, answer unchecked.
pub async fn accept_invitation(app: &TestApp, token: &str, invitation: &str) -> Response {
    app.with_bearer(token)
        .post_json("/v1/invitations/accept", &json!({ "token": invitation }))
        .await
}

/// The token of the next invitation mailed to `email` (from the app's mailbox).
pub async fn invitation_token(app: &TestApp, email: &str) -> String {
    let mail = app.mail_to(email, INVITATION_SUBJECT).await;
    link_token(&mail, "/accept-invitation")
}

/// The token of the next verification link mailed to `email` (from the app's mailbox).
pub async fn verification_token(app: &TestApp, email: &str) -> String {
    let mail = app.mail_to(email, VERIFICATION_SUBJECT).await;
    link_token(&mail, "/verify-email")
}

/// `POST /v1/auth/verify-email`, answer unchecked.
pub async fn verify_email_request(app: &TestApp, token: &str) -> Response {
    app.post_json("/v1/auth/verify-email", &json!({ "token": token }))
        .await
}

/// Verifies `account`'s email with the link mailed at registration, unless it is verified.
pub async fn ensure_verified(app: &TestApp, account: &Account) {
    if me(app, &account.access_token).await["email_verified"] == true {
        return;
    }
    let token = verification_token(app, &account.email).await;
    let response = verify_email_request(app, &token).await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "verifying {}",
        account.email
    );
}

/// Creates an API key named `name` with `token`'s credentials.
pub async fn create_api_key(app: &TestApp, token: &str, name: &str) -> ApiKey {
    let response = app
        .with_bearer(token)
        .post_json("/v1/api-keys", &json!({ "name": name }))
        .await;
    let body = expect_json(response, StatusCode::CREATED, "creating an API key").await;
    ApiKey {
        id: uuid_at(&body, "id"),
        key: body["key"].as_str().unwrap().to_owned(),
        prefix: body["prefix"].as_str().unwrap().to_owned(),
    }
}

/// Creates a platform administrator `<name>@example.com` with `agentry admin create` (the
/// real binary, on the app's database) and logs them in.
pub async fn platform_admin(app: &TestApp, name: &str) -> PlatformAdmin {
    let email = email_of(name);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["admin", "create", "--email", &email, "--password", PASSWORD])
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .env_remove("NATS_URL")
        .env_remove("AGENTRY_JWT_SECRET")
        .kill_on_drop(true)
        .output()
        .await
        .expect("running `agentry admin create`");
    assert!(
        output.status.success(),
        "`agentry admin create` exited with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let access_token = login_when_visible(app, &email).await;
    let me = me(app, &access_token).await;
    assert_eq!(me["is_platform_admin"], true, "{me}");
    PlatformAdmin {
        user_id: uuid_at(&me, "user_id"),
        email,
        access_token,
    }
}

/// The binary wrote the administrator from another process; this app's read model finds such
/// appends by polling, so login is retried until it sees them.
async fn login_when_visible(app: &TestApp, email: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = app
            .post_json("/v1/auth/login", &json!({ "email": email, "password": PASSWORD }))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::OK {
            return body["access_token"].as_str().unwrap().to_owned();
        }
        assert!(
            status == StatusCode::UNAUTHORIZED && Instant::now() < deadline,
            "the administrator could not log in: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /v1/me` with `token`, which must answer 200.
pub async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.with_bearer(token).get("/v1/me").await;
    expect_json(response, StatusCode::OK, "GET /v1/me").await
}

/// The metadata of every event of `event_type`, oldest first.
pub async fn event_metadata(app: &TestApp, event_type: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Value>(
        "SELECT metadata::jsonb FROM events WHERE event_type = $1 ORDER BY position",
    )
    .bind(event_type)
    .fetch_all(&app.pool)
    .await
    .expect("reading event metadata")
}

/// Asserts `status` and returns the JSON body, showing the body when the status is wrong.
pub async fn expect_json(response: reqwest::Response, status: StatusCode, what: &str) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{what} answered {actual}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{what}: not JSON ({error}): {text}"))
}

/// The UUID in string field `field` of `body`.
pub fn uuid_at(body: &Value, field: &str) -> Uuid {
    body[field]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("`{field}` is not a UUID: {body}"))
}

/// Asserts a problem with `status` and `code`; returns its body.
pub async fn assert_code(response: Response, status: StatusCode, code: &str) -> Value {
    let problem = assert_problem(response, status).await;
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(
        problem["type"],
        format!("urn:agentry:problem:{code}"),
        "{problem}"
    );
    problem
}

/// The key the application signs access tokens with (generated into the database at start).
pub async fn signing_keys(app: &TestApp) -> TokenKeys {
    let secret: String =
        sqlx::query_scalar("SELECT value FROM platform_secrets WHERE name = 'jwt_signing_key'")
            .fetch_one(&app.pool)
            .await
            .expect("the application's signing key");
    TokenKeys::new(secret.as_bytes())
}
