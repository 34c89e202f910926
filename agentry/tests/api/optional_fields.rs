//! One rule for optional fields in answers: a field without a value is left out, never `null`
//! (the OpenAPI document declares no field `nullable`, so a generated client would choke on a
//! `null`: openapi-python-client's `fromisoformat(None)`, TypeScript's `new Date(null)`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::{PASSWORD, create_api_key, expect_json, register};
use crate::helpers::TestApp;

/// The paths of every `null` in `value`.
fn nulls(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(path.to_owned()),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                nulls(item, &format!("{path}[{index}]"), found);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                nulls(field, &format!("{path}.{name}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn answers_leave_out_empty_optional_fields_instead_of_sending_null() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "never used").await;
    let user = app.with_bearer(&owner.access_token);
    let login = json!({ "email": owner.email, "password": PASSWORD });

    let answers = vec![
        (
            "GET /v1/api-keys",
            expect_json(user.get("/v1/api-keys").await, StatusCode::OK, "keys").await,
        ),
        (
            "GET /v1/me (user)",
            expect_json(user.get("/v1/me").await, StatusCode::OK, "me").await,
        ),
        (
            "GET /v1/members",
            expect_json(user.get("/v1/members").await, StatusCode::OK, "members").await,
        ),
        (
            "POST /v1/auth/login",
            expect_json(
                app.post_json("/v1/auth/login", &login).await,
                StatusCode::OK,
                "login",
            )
            .await,
        ),
        (
            "GET /v1/me (API key)",
            expect_json(
                app.with_bearer(&key.key).get("/v1/me").await,
                StatusCode::OK,
                "me",
            )
            .await,
        ),
    ];

    let mut found = Vec::new();
    for (what, answer) in &answers {
        nulls(answer, what, &mut found);
    }
    assert!(found.is_empty(), "null fields: {found:?}\n{answers:#?}");
    let listed = &answers[0].1["keys"][0];
    assert!(
        listed.get("last_used_at").is_none() && listed.get("revoked_at").is_none(),
        "{listed}"
    );
    app.cleanup().await;
}
