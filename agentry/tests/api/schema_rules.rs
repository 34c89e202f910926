//! "A value the OpenAPI document forbids gets 422 problem+json with a specific code": lengths,
//! ranges, enums and email format, declared with poem-openapi validators (so the document shows
//! them), answered with the code the domain gives for the same value, and nothing recorded.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{PASSWORD, assert_code, expect_json, platform_admin, register};
use crate::helpers::TestApp;

/// One forbidden value: the request and the code it must answer with 422.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Value,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: impl Into<String>,
    body: Value,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        token: None,
        body,
        code,
    }
}

impl Case {
    fn by(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
}

fn chars(n: usize) -> String {
    "x".repeat(n)
}

/// An address of `n` characters that is otherwise well-formed.
fn email_of_length(n: usize) -> String {
    format!("{}@example.com", "a".repeat(n - "@example.com".len()))
}

fn registration(field: &str, value: Value) -> Value {
    let mut body = json!({ "email": "new@example.com", "password": PASSWORD, "org_name": "New" });
    body[field] = value;
    body
}

async fn run(app: &TestApp, cases: Vec<Case>) {
    let mut mismatches = Vec::new();
    for case in cases {
        let before = app.event_count().await;
        let mut request = app.request(case.method.clone(), &case.path).json(&case.body);
        if let Some(token) = &case.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let problem: Value = serde_json::from_str(&text).unwrap_or_default();
        if status != StatusCode::UNPROCESSABLE_ENTITY || problem["code"] != case.code {
            mismatches.push(format!(
                "{}: expected 422 {}, got {status} {text}",
                case.what, case.code
            ));
        }
        if app.event_count().await != before {
            mismatches.push(format!("{}: events were written", case.what));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn public_routes_answer_values_the_document_forbids_with_422_and_their_code() {
    let app = TestApp::spawn().await;
    let post = Method::POST;
    let reset_confirm = json!({ "token": "x.y", "new_password": "short" });
    let cases = vec![
        case(
            "org_name empty",
            post.clone(),
            "/v1/auth/register",
            registration("org_name", json!("")),
            "organization_name_required",
        ),
        case(
            "org_name 101 chars",
            post.clone(),
            "/v1/auth/register",
            registration("org_name", json!(chars(101))),
            "organization_name_too_long",
        ),
        case(
            "password 11 chars",
            post.clone(),
            "/v1/auth/register",
            registration("password", json!(chars(11))),
            "weak_password",
        ),
        case(
            "password 129 chars",
            post.clone(),
            "/v1/auth/register",
            registration("password", json!(chars(129))),
            "weak_password",
        ),
        case(
            "email 255 chars",
            post.clone(),
            "/v1/auth/register",
            registration("email", json!(email_of_length(255))),
            "invalid_email",
        ),
        case(
            "login email 255 chars",
            post.clone(),
            "/v1/auth/login",
            json!({ "email": email_of_length(255), "password": PASSWORD }),
            "invalid_email",
        ),
        case(
            "reset for no address",
            post.clone(),
            "/v1/auth/password-reset",
            json!({ "email": "not an address" }),
            "invalid_email",
        ),
        case(
            "reset email 255 chars",
            post.clone(),
            "/v1/auth/password-reset",
            json!({ "email": email_of_length(255) }),
            "invalid_email",
        ),
        case(
            "new password too short",
            post.clone(),
            "/v1/auth/password-reset/confirm",
            reset_confirm,
            "weak_password",
        ),
    ];

    run(&app, cases).await;

    // The limits are the domain's: at the limit the same values pass.
    let at_limits = registration("org_name", json!(chars(100)));
    let at_limits = json!({ "email": email_of_length(254), "password": chars(127) + "y", "org_name": at_limits["org_name"] });
    let response = app.post_json("/v1/auth/register", &at_limits).await;
    expect_json(response, StatusCode::CREATED, "a registration at every limit").await;
    app.cleanup().await;
}

#[tokio::test]
async fn bearer_routes_answer_values_the_document_forbids_with_422_and_their_code() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = platform_admin(&app, "root").await;
    let token = owner.access_token.as_str();
    let member = format!("/v1/members/{}", owner.user_id);
    let impersonation = |field: &str, value: Value| {
        let mut body = json!({ "user_id": owner.user_id, "org_id": owner.org_id, "reason": "support", "ttl_seconds": 60 });
        body[field] = value;
        body
    };
    let suspend = format!("/v1/admin/orgs/{}/suspend?reason={}", owner.org_id, chars(501));
    let cases = vec![
        case(
            "key name empty",
            Method::POST,
            "/v1/api-keys",
            json!({ "name": "" }),
            "api_key_name_required",
        )
        .by(token),
        case(
            "key name 101 chars",
            Method::POST,
            "/v1/api-keys",
            json!({ "name": chars(101) }),
            "api_key_name_too_long",
        )
        .by(token),
        case(
            "invite with an unknown role",
            Method::POST,
            "/v1/members",
            json!({ "email": "b@example.com", "role": "boss" }),
            "invalid_role",
        )
        .by(token),
        case(
            "invite email 255 chars",
            Method::POST,
            "/v1/members",
            json!({ "email": email_of_length(255), "role": "member" }),
            "invalid_email",
        )
        .by(token),
        case(
            "change to an unknown role",
            Method::PATCH,
            member,
            json!({ "role": "Owner" }),
            "invalid_role",
        )
        .by(token),
        case(
            "ttl 0 s",
            Method::POST,
            "/v1/admin/impersonations",
            impersonation("ttl_seconds", json!(0)),
            "impersonation_ttl_out_of_range",
        )
        .by(&admin.access_token),
        case(
            "ttl 3601 s",
            Method::POST,
            "/v1/admin/impersonations",
            impersonation("ttl_seconds", json!(3601)),
            "impersonation_ttl_out_of_range",
        )
        .by(&admin.access_token),
        case(
            "reason empty",
            Method::POST,
            "/v1/admin/impersonations",
            impersonation("reason", json!("")),
            "impersonation_reason_required",
        )
        .by(&admin.access_token),
        case(
            "reason 501 chars",
            Method::POST,
            "/v1/admin/impersonations",
            impersonation("reason", json!(chars(501))),
            "impersonation_reason_too_long",
        )
        .by(&admin.access_token),
        case(
            "suspension reason 501 chars",
            Method::POST,
            suspend,
            json!({}),
            "suspension_reason_too_long",
        )
        .by(&admin.access_token),
    ];

    run(&app, cases).await;

    let key = app
        .with_bearer(token)
        .post_json("/v1/api-keys", &json!({ "name": chars(100) }))
        .await;
    expect_json(key, StatusCode::CREATED, "a key name of 100 characters").await;
    app.cleanup().await;
}

/// A wrong JSON type is still a 400: the body is not of the documented shape at all.
#[tokio::test]
async fn a_wrong_type_stays_a_400() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json("/v1/auth/register", &registration("org_name", json!(5)))
        .await;
    assert_code(response, StatusCode::BAD_REQUEST, "bad_request").await;
    app.cleanup().await;
}
