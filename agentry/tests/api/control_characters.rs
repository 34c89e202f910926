//! "Refuse control characters in every text the API accepts (400 with a code)": one table of
//! every text field of every `/v1` request, each first shown accepted with clean text (so the
//! refusal is about the character, not the request), then with each kind of control character:
//! 400 `control_characters`, and nothing recorded.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{PASSWORD, platform_admin, register};
use crate::helpers::{TestApp, check_problem};

/// NUL (unstorable), BEL, a line feed (forged log lines, mail headers), ESC (terminal
/// sequences), DEL and NEL (a C1 line break).
const CONTROLS: [char; 6] = ['\u{0}', '\u{7}', '\n', '\u{1b}', '\u{7f}', '\u{85}'];

/// One text field of one request.
struct Field {
    method: Method,
    /// The path, with `{org}` standing for the owner's organization.
    path: &'static str,
    /// Whose token: `None`, the owner's, or the platform administrator's.
    bearer: Bearer,
    /// A valid body; `{n}` in its strings becomes a fresh number for each request.
    body: Value,
    /// The field spoiled; `?reason` means the query parameter `reason`.
    field: &'static str,
}

#[derive(Clone, Copy)]
enum Bearer {
    None,
    Owner,
    Admin,
}

fn field(method: Method, path: &'static str, bearer: Bearer, body: Value, field: &'static str) -> Field {
    Field {
        method,
        path,
        bearer,
        body,
        field,
    }
}

fn fields(refresh_token: &str, owner_email: &str, user_id: Uuid, org_id: Uuid) -> Vec<Field> {
    let register = json!({ "email": "new{n}@example.com", "password": PASSWORD, "org_name": "Org {n}" });
    let login = json!({ "email": owner_email, "password": PASSWORD });
    let impersonation =
        json!({ "user_id": user_id, "org_id": org_id, "reason": "support ticket {n}", "ttl_seconds": 60 });
    let confirm = json!({ "token": "not-a-token-{n}", "new_password": "another fine passphrase {n}" });
    vec![
        field(
            Method::POST,
            "/v1/auth/register",
            Bearer::None,
            register.clone(),
            "email",
        ),
        field(
            Method::POST,
            "/v1/auth/register",
            Bearer::None,
            register.clone(),
            "password",
        ),
        field(
            Method::POST,
            "/v1/auth/register",
            Bearer::None,
            register,
            "org_name",
        ),
        field(
            Method::POST,
            "/v1/auth/login",
            Bearer::None,
            login.clone(),
            "email",
        ),
        field(Method::POST, "/v1/auth/login", Bearer::None, login, "password"),
        field(
            Method::POST,
            "/v1/auth/refresh",
            Bearer::None,
            json!({ "refresh_token": refresh_token }),
            "refresh_token",
        ),
        field(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            Bearer::None,
            confirm.clone(),
            "token",
        ),
        field(
            Method::POST,
            "/v1/auth/password-reset/confirm",
            Bearer::None,
            confirm,
            "new_password",
        ),
        field(
            Method::POST,
            "/v1/api-keys",
            Bearer::Owner,
            json!({ "name": "key {n}" }),
            "name",
        ),
        field(
            Method::POST,
            "/v1/members",
            Bearer::Owner,
            json!({ "email": "invitee{n}@example.com", "role": "member" }),
            "email",
        ),
        field(
            Method::POST,
            "/v1/admin/impersonations",
            Bearer::Admin,
            impersonation,
            "reason",
        ),
        field(
            Method::POST,
            "/v1/admin/orgs/{org}/suspend",
            Bearer::Admin,
            json!(null),
            "?reason",
        ),
        // Last: the reset mail is sent (and its event written) after the answer.
        field(
            Method::POST,
            "/v1/auth/password-reset",
            Bearer::None,
            json!({ "email": owner_email }),
            "email",
        ),
    ]
}

/// Replaces `{n}` in every string of `value`.
fn numbered(value: &Value, n: usize) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace("{n}", &n.to_string())),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), numbered(value, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn control_characters_in_any_text_field_are_a_400_and_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = platform_admin(&app, "root").await;
    let mut n = 0;
    for field in fields(&owner.refresh_token, &owner.email, owner.user_id, owner.org_id) {
        let path = field.path.replace("{org}", &owner.org_id.to_string());
        let what = format!("{} {path} {}", field.method, field.field);
        let send = |body: Value, reason: Option<String>| {
            let mut url = reqwest::Url::parse(&app.url(&path)).unwrap();
            if let Some(reason) = reason {
                url.query_pairs_mut().append_pair("reason", &reason);
            }
            let mut request = app.client.request(field.method.clone(), url);
            request = match field.bearer {
                Bearer::None => request,
                Bearer::Owner => request.bearer_auth(&owner.access_token),
                Bearer::Admin => request.bearer_auth(&admin.access_token),
            };
            if !body.is_null() {
                request = request.json(&body);
            }
            request.send()
        };
        let spoiled = |body: &Value, control: Option<char>| -> (Value, Option<String>) {
            let text = |clean: &str| match control {
                Some(control) => format!("{}{control}{}", &clean[..1], &clean[1..]),
                None => clean.to_owned(),
            };
            match field.field.strip_prefix('?') {
                Some(_) => (body.clone(), Some(text("a reason"))),
                None => {
                    let mut body = body.clone();
                    let clean = body[field.field].as_str().unwrap().to_owned();
                    body[field.field] = Value::String(text(&clean));
                    (body, None)
                }
            }
        };

        for control in CONTROLS {
            n += 1;
            let body = numbered(&field.body, n);
            let before = app.event_count().await;
            let (bad_body, bad_reason) = spoiled(&body, Some(control));
            let response = send(bad_body, bad_reason).await.unwrap();
            let problem = check_problem(response, StatusCode::BAD_REQUEST)
                .await
                .unwrap_or_else(|error| panic!("{what} with {control:?}: {error}"));
            assert_eq!(
                problem["code"], "control_characters",
                "{what} with {control:?}: {problem}"
            );
            assert_eq!(
                app.event_count().await,
                before,
                "{what} with {control:?} recorded something"
            );
        }

        // The same request with clean text is not refused as input (so the refusal above was
        // about the character). Last, since some of these change state (a suspension).
        n += 1;
        let (clean_body, clean_reason) = spoiled(&numbered(&field.body, n), None);
        let response = send(clean_body, clean_reason).await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            status != StatusCode::BAD_REQUEST
                && status != StatusCode::UNPROCESSABLE_ENTITY
                && !status.is_server_error(),
            "{what} with clean text answered {status}: {body}"
        );
        // A suspended organization would refuse the owner's later requests.
        if field.path.ends_with("/suspend") {
            let reactivated = app
                .request(
                    Method::POST,
                    &format!("/v1/admin/orgs/{}/reactivate", owner.org_id),
                )
                .bearer_auth(&admin.access_token)
                .send()
                .await
                .unwrap();
            assert!(reactivated.status().is_success());
        }
    }
    app.cleanup().await;
}
