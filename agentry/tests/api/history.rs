//! `GET /v1/history/{aggregate_type}/{aggregate_id}`: one aggregate's events in order, with who
//! caused each and from where, for owners, admins and auditors; credentials never shown; a
//! platform-wide aggregate (a user) only as far as the organization's audit log holds it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, add_member, assert_code, create_api_key, expect_json, join_org, register};
use crate::audit::audit_caught_up;
use crate::helpers::TestApp;
use crate::tools::{create_tool, definition};

/// `GET /v1/history/{kind}/{id}{query}` with `token`, answer unchecked.
pub async fn history(app: &TestApp, token: &str, kind: &str, id: &str, query: &str) -> Response {
    app.with_bearer(token)
        .get(&format!("/v1/history/{kind}/{id}{query}"))
        .await
}

/// The history page, expecting 200.
async fn page(app: &TestApp, reader: &Account, kind: &str, id: &str, query: &str) -> Value {
    let response = history(app, &reader.access_token, kind, id, query).await;
    expect_json(response, StatusCode::OK, "reading a history").await
}

fn types(page: &Value) -> Vec<&str> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

fn sequences(page: &Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["sequence"].as_i64().unwrap())
        .collect()
}

/// A tool of `owner`'s created with `user_agent`, its secret then rotated: `(id, request id of
/// the creation, the two secrets)`.
async fn tool_with_a_rotated_secret(
    app: &TestApp,
    owner: &Account,
    user_agent: &str,
) -> (String, String, [String; 2]) {
    let response = app
        .with_bearer(&owner.access_token)
        .request(Method::POST, "/v1/tools")
        .header("user-agent", user_agent)
        .json(&definition("weather"))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let created = expect_json(response, StatusCode::CREATED, "creating a tool").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let rotated = app
        .with_bearer(&owner.access_token)
        .post_json(&format!("/v1/tools/{id}/secret"), &json!({}))
        .await;
    let rotated = expect_json(rotated, StatusCode::OK, "rotating the secret").await;
    let secrets = [&created["secret"], &rotated["secret"]].map(|secret| secret.as_str().unwrap().to_owned());
    (id, request_id, secrets)
}

#[tokio::test]
async fn an_auditor_reads_a_tools_events_in_order_with_who_and_from_where_but_never_its_secret() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;
    let (id, request_id, secrets) = tool_with_a_rotated_secret(&app, &owner, "history-check/1").await;

    let response = history(&app, &auditor.access_token, "tool", &id, "").await;

    let text = response.text().await.unwrap();
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["aggregate_type"], "tool", "{page}");
    assert_eq!(page["aggregate_id"], id.as_str(), "{page}");
    assert_eq!(types(&page), ["tool.created", "tool.secret_rotated"], "{page}");
    assert_eq!(sequences(&page), [1, 2]);
    assert!(page.get("next_cursor").is_none(), "one page: {page}");
    let created = &page["events"][0];
    assert_eq!(created["actor"], format!("user:{}", owner.user_id));
    assert_eq!(created["org_id"], owner.org_id.to_string());
    assert_eq!(created["request_id"], request_id.as_str());
    assert_eq!(created["client_ip"], "127.0.0.1");
    assert_eq!(created["user_agent"], "history-check/1");
    assert_eq!(created["version"], "1");
    assert!(created["correlation_id"].is_string(), "{created}");
    assert!(
        created.get("impersonator_id").is_none(),
        "absent, not null: {created}"
    );
    let recorded_at = created["recorded_at"].as_str().unwrap();
    assert!(
        recorded_at.len() == 27 && recorded_at.ends_with('Z'),
        "UTC, microseconds: {recorded_at}"
    );
    assert_eq!(created["data"]["definition"]["name"], "weather", "{created}");
    for event in page["events"].as_array().unwrap() {
        assert!(event["data"].get("secret").is_none(), "{event}");
        assert_eq!(event["redacted_fields"], json!(["secret"]), "{event}");
    }
    // Neither the secrets nor their sealed form, which the store does hold.
    let sealed: Vec<String> = sqlx::query_scalar(
        "SELECT payload ->> 'secret' FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(sealed.len(), 2);
    for secret in secrets.iter().chain(&sealed) {
        assert!(!text.contains(secret.as_str()), "the history shows `{secret}`");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_cursor_pages_through_the_events_in_sequence_order() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let created = create_tool(&app, &owner.access_token, &definition("weather")).await;
    let id = created["id"].as_str().unwrap();
    for timeout_ms in [2_000, 3_000, 4_000] {
        let response = app
            .with_bearer(&owner.access_token)
            .request(Method::PATCH, &format!("/v1/tools/{id}"))
            .json(&json!({ "timeout_ms": timeout_ms }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let first = page(&app, &owner, "tool", id, "?limit=3").await;
    let cursor = first["next_cursor"].as_i64().unwrap();
    let rest = page(&app, &owner, "tool", id, &format!("?limit=3&cursor={cursor}")).await;

    assert_eq!(sequences(&first), [1, 2, 3]);
    assert_eq!(cursor, 3);
    assert_eq!(types(&rest), ["tool.updated"]);
    assert_eq!(sequences(&rest), [4]);
    assert_eq!(
        rest["events"][0]["data"]["definition"]["timeout_ms"], 4_000,
        "{rest}"
    );
    assert!(rest.get("next_cursor").is_none(), "the last page: {rest}");
    // Exactly the page size left: no cursor to an empty page.
    let whole = page(&app, &owner, "tool", id, "?limit=4").await;
    assert!(whole.get("next_cursor").is_none(), "{whole}");
    app.cleanup().await;
}

/// A person belongs to several organizations; each sees of their account what its own audit
/// log holds (from the time they were a member), and another organization nothing.
#[tokio::test]
async fn a_users_account_shows_each_organization_what_its_audit_log_holds_and_no_digest() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let person = register(&app, "person").await;
    join_org(&app, &owner, &person, "member").await;
    let outsider = register(&app, "outsider").await;
    let reset = app
        .post_json("/v1/auth/password-reset", &json!({ "email": person.email }))
        .await;
    assert_eq!(reset.status(), StatusCode::ACCEPTED);
    let id = person.user_id.to_string();
    // The reset's work happens after the 202: wait for its event before the audit catches up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1
               AND event_type = 'user.password_reset_requested'",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if recorded > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reset was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    audit_caught_up(&app).await;

    // Their own organization (the one registered with them) has the whole account.
    let own = page(&app, &person, "user", &id, "").await;
    // The organization they joined: from their joining on.
    let joined = page(&app, &owner, "user", &id, "").await;
    let refused = history(&app, &outsider.access_token, "user", &id, "").await;

    assert_eq!(types(&own)[0], "user.registered", "{own}");
    assert_eq!(
        own["events"][0]["redacted_fields"],
        json!(["password_hash"]),
        "{own}"
    );
    assert_eq!(own["events"][0]["data"]["email"], person.email.as_str(), "{own}");
    assert!(
        own["events"][0].get("org_id").is_none(),
        "a platform-wide event: {own}"
    );
    assert!(!types(&joined).contains(&"user.registered"), "{joined}");
    for page in [&own, &joined] {
        let requested = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["type"] == "user.password_reset_requested")
            .unwrap_or_else(|| panic!("the reset request is there: {page}"));
        assert_eq!(requested["redacted_fields"], json!(["token_hash"]), "{page}");
        for event in page["events"].as_array().unwrap() {
            let fields = event["data"].as_object().unwrap();
            assert!(!fields.keys().any(|name| name.ends_with("_hash")), "{event}");
        }
        assert!(!page.to_string().contains("$argon2"), "no digest: {page}");
    }
    let problem = assert_code(refused, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!problem.to_string().contains(&person.email), "{problem}");
    app.cleanup().await;
}

#[tokio::test]
async fn owners_admins_and_auditors_read_histories_members_and_api_keys_do_not() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "admin", "admin").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;
    let member = add_member(&app, &owner, "member", "member").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    let org = owner.org_id.to_string();

    for allowed in [&owner, &admin, &auditor] {
        let history = page(&app, allowed, "organization", &org, "").await;
        assert_eq!(types(&history)[0], "organization.created", "{history}");
        assert!(
            types(&history).len() >= 4,
            "the founding and three members: {history}"
        );
    }
    for refused in [member.access_token.as_str(), key.key.as_str()] {
        let response = history(&app, refused, "organization", &org, "").await;
        assert_code(response, StatusCode::FORBIDDEN, "role_not_allowed").await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_type_a_bad_page_or_a_missing_aggregate_is_refused_with_its_code() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    let token = &owner.access_token;
    let key_id = key.id.to_string();
    assert_eq!(
        history(&app, token, "api_key", &key_id, "").await.status(),
        StatusCode::OK
    );

    let refused = [
        (
            "api_keys",
            key_id.clone(),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_aggregate_type",
        ),
        (
            "api_key",
            key_id.clone(),
            "?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "page_limit_out_of_range",
        ),
        (
            "api_key",
            key_id.clone(),
            "?cursor=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_cursor",
        ),
        // The key's id under another type, an id nobody has, one longer than any.
        ("api_key", "x".repeat(300), "", StatusCode::NOT_FOUND, "not_found"),
        ("tool", key_id.clone(), "", StatusCode::NOT_FOUND, "not_found"),
        (
            "api_key",
            uuid::Uuid::now_v7().to_string(),
            "",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (kind, id, query, status, code) in refused {
        let response = history(&app, token, kind, &id, query).await;
        assert_code(response, status, code).await;
    }
    // Past the last event: an empty page of an aggregate that exists.
    let after = page(&app, &owner, "api_key", &key_id, "?cursor=99").await;
    assert_eq!(after["events"], json!([]), "{after}");
    app.cleanup().await;
}
