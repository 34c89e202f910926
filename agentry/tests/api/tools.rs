//! Tools: created with a signing secret shown once and never again (not in answers, not in
//! clear in the event log or what the bus carries), every update a new version, the secret
//! rotated at will, deletion, each rule refused with its own code and nothing written, and
//! written by everyone but auditors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use commands::secret_box::secrets_key;
use commands::tools::{ArgumentValidators, ToolService};
use eventstore::EventStore;
use reqwest::{Method, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::accounts::{Account, add_member, assert_code, expect_json, register};
use crate::helpers::{TestApp, assert_problem};

/// A valid definition named `name`.
pub fn definition(name: &str) -> Value {
    json!({
        "name": name,
        "description": "Looks up the weather.\nGive a city.",
        "parameters": {
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"]
        },
        "url": "https://tools.example.com/weather",
    })
}

/// `definition(name)` with `secret`.
fn with_secret(name: &str, secret: &str) -> Value {
    let mut body = definition(name);
    body["secret"] = json!(secret);
    body
}

/// Creates a tool and answers the 201 body (`id`, `name`, `version`, `secret`).
pub async fn create_tool(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.with_bearer(token).post_json("/v1/tools", body).await;
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "an answer carrying a secret is not to be cached"
    );
    expect_json(response, StatusCode::CREATED, "POST /v1/tools").await
}

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<&Value>) -> Response {
    let mut request = app.with_bearer(token).request(method, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

async fn patch(app: &TestApp, token: &str, id: &str, body: &Value) -> Response {
    send(app, token, Method::PATCH, &format!("/v1/tools/{id}"), Some(body)).await
}

async fn rotate(app: &TestApp, token: &str, id: &str, body: &Value) -> Response {
    send(
        app,
        token,
        Method::POST,
        &format!("/v1/tools/{id}/secret"),
        Some(body),
    )
    .await
}

async fn get(app: &TestApp, account: &Account, path: &str) -> Value {
    let response = app.with_bearer(&account.access_token).get(path).await;
    expect_json(response, StatusCode::OK, path).await
}

/// Every stored event's payload and metadata, as text.
async fn stored_events(app: &TestApp) -> String {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT payload::text, metadata::text FROM events ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    rows.into_iter().map(|(p, m)| format!("{p}\n{m}\n")).collect()
}

#[tokio::test]
async fn a_generated_secret_is_shown_once_and_never_again() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let created = create_tool(&app, &owner.access_token, &definition("weather")).await;
    assert_eq!(created["name"], "weather", "{created}");
    assert_eq!(created["version"], 1, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "32 random bytes in base64url: {secret}");
    let id = created["id"].as_str().unwrap();

    let tool = get(&app, &owner, &format!("/v1/tools/{id}")).await;
    assert_eq!(tool["name"], "weather", "{tool}");
    assert_eq!(
        tool["description"], "Looks up the weather.\nGive a city.",
        "{tool}"
    );
    assert_eq!(tool["parameters"], definition("x")["parameters"], "{tool}");
    assert_eq!(tool["url"], "https://tools.example.com/weather", "{tool}");
    assert_eq!(tool["timeout_ms"], 10_000, "the default: {tool}");
    assert_eq!(tool["has_secret"], true, "{tool}");
    assert!(tool["secret_rotated_at"].is_string(), "{tool}");
    assert!(tool.get("secret").is_none(), "{tool}");
    let list = get(&app, &owner, "/v1/tools").await;
    assert_eq!(list["tools"][0]["id"], id, "{list}");
    for answer in [tool.to_string(), list.to_string()] {
        assert!(!answer.contains(&secret), "the secret was shown again: {answer}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn secrets_are_never_in_clear_in_the_event_log_or_the_events_clients_read() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let given = "my-own-signing-secret-0123456789";
    let created = create_tool(&app, &owner.access_token, &with_secret("signed", given)).await;
    assert_eq!(created["secret"], given, "a given secret is the one kept");
    let id = created["id"].as_str().unwrap();
    let generated = create_tool(&app, &owner.access_token, &definition("generated")).await;
    let rotated_to = "the-rotated-signing-secret-!#$%";
    let rotated = expect_json(
        rotate(&app, &owner.access_token, id, &json!({ "secret": rotated_to })).await,
        StatusCode::OK,
        "rotation",
    )
    .await;
    assert_eq!(rotated, json!({ "secret": rotated_to }));
    let secrets = [
        given.to_owned(),
        rotated_to.to_owned(),
        generated["secret"].as_str().unwrap().to_owned(),
    ];

    let stored = stored_events(&app).await;
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "`{secret}` is in clear in the event log"
        );
    }
    // What the bus carries is the stored event JSON, and what clients read of it is this.
    for event_type in ["tool.created", "tool.secret_rotated"] {
        let event_id: uuid::Uuid = sqlx::query_scalar(
            "SELECT event_id FROM events WHERE event_type = $1 ORDER BY position DESC LIMIT 1",
        )
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let event = get(&app, &owner, &format!("/v1/events/{event_id}")).await;
        let sealed = event["data"]["secret"].as_str().unwrap_or_default();
        assert!(
            sealed.starts_with("v1."),
            "sealed as `v1.<key id>.<nonce>.<ciphertext>`: {event}"
        );
        for secret in &secrets {
            assert!(
                !event.to_string().contains(secret.as_str()),
                "{event_type} shows `{secret}`"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn rotation_replaces_the_secret_and_records_when() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let created = create_tool(&app, &owner.access_token, &definition("weather")).await;
    let id = created["id"].as_str().unwrap();
    let before = get(&app, &owner, &format!("/v1/tools/{id}")).await;

    let response = rotate(&app, &owner.access_token, id, &json!({})).await;
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let rotated = expect_json(response, StatusCode::OK, "rotation").await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_eq!(new_secret.len(), 43, "{rotated}");
    assert_ne!(new_secret, created["secret"].as_str().unwrap());

    let after = get(&app, &owner, &format!("/v1/tools/{id}")).await;
    assert_eq!(after["version"], 1, "a rotation is not a new definition: {after}");
    let when = |tool: &Value| {
        chrono::DateTime::parse_from_rfc3339(tool["secret_rotated_at"].as_str().unwrap()).unwrap()
    };
    assert!(when(&after) > when(&before), "{before} then {after}");
    assert!(!after.to_string().contains(new_secret), "{after}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_update_makes_a_new_version_and_the_name_never_changes() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let id = create_tool(&app, &owner.access_token, &definition("weather")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let change = json!({ "url": "HTTPS://Tools.Example.COM/v2", "timeout_ms": 2500 });
    let updated = expect_json(
        patch(&app, &owner.access_token, &id, &change).await,
        StatusCode::OK,
        "PATCH",
    )
    .await;
    assert_eq!(updated, json!({ "id": id, "version": 2 }));
    let tool = get(&app, &owner, &format!("/v1/tools/{id}")).await;
    assert_eq!(tool["version"], 2, "{tool}");
    assert_eq!(tool["url"], "https://tools.example.com/v2", "normalized: {tool}");
    assert_eq!(tool["timeout_ms"], 2500, "{tool}");
    assert_eq!(
        tool["description"], "Looks up the weather.\nGive a city.",
        "kept: {tool}"
    );

    let same_name = json!({ "name": "weather", "description": "Weather by city." });
    let updated = expect_json(
        patch(&app, &owner.access_token, &id, &same_name).await,
        StatusCode::OK,
        "PATCH naming the tool's own name",
    )
    .await;
    assert_eq!(updated["version"], 3, "{updated}");
    let before = app.event_count().await;
    let renamed = patch(&app, &owner.access_token, &id, &json!({ "name": "climate" })).await;
    assert_code(renamed, StatusCode::UNPROCESSABLE_ENTITY, "tool_name_immutable").await;
    let only_name = patch(&app, &owner.access_token, &id, &json!({ "name": "weather" })).await;
    assert_code(only_name, StatusCode::UNPROCESSABLE_ENTITY, "tool_update_empty").await;
    assert_eq!(app.event_count().await, before, "nothing recorded");
    app.cleanup().await;
}

/// `null` is data inside a JSON Schema (the API refuses it as a field value everywhere else).
#[tokio::test]
async fn a_schema_may_hold_null_values() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let parameters = json!({
        "type": "object",
        "properties": { "unit": { "enum": ["c", "f", null], "default": null } }
    });
    let mut body = definition("weather");
    body["parameters"] = parameters.clone();
    let id = create_tool(&app, &owner.access_token, &body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tool = get(&app, &owner, &format!("/v1/tools/{id}")).await;
    assert_eq!(tool["parameters"], parameters, "{tool}");
    body["timeout_ms"] = Value::Null;
    let refused = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/tools", &body)
        .await;
    assert_code(refused, StatusCode::BAD_REQUEST, "null_value").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_name_is_unique_in_its_organization_only() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    let first = create_tool(&app, &owner.access_token, &definition("weather")).await;
    let before = app.event_count().await;
    let again = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/tools", &definition("weather"))
        .await;
    assert_code(again, StatusCode::CONFLICT, "tool_exists").await;
    assert_eq!(app.event_count().await, before, "nothing recorded");
    let theirs = create_tool(&app, &other.access_token, &definition("weather")).await;
    assert_ne!(theirs["id"], first["id"]);
    app.cleanup().await;
}

#[tokio::test]
async fn a_deleted_tool_is_gone_and_its_name_can_be_used_again() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let token = &owner.access_token;
    let created = create_tool(&app, token, &definition("weather")).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/tools/{id}");
    patch(&app, token, id, &json!({ "timeout_ms": 5000 })).await;

    let deleted = send(&app, token, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let before = app.event_count().await;
    let gone = [
        send(&app, token, Method::GET, &path, None).await,
        send(&app, token, Method::DELETE, &path, None).await,
        patch(&app, token, id, &json!({ "timeout_ms": 3000 })).await,
        rotate(&app, token, id, &json!({})).await,
    ];
    for response in gone {
        assert_code(response, StatusCode::NOT_FOUND, "tool_not_found").await;
    }
    assert_eq!(app.event_count().await, before, "nothing recorded");
    let list = get(&app, &owner, "/v1/tools").await;
    assert_eq!(list["tools"], json!([]), "{list}");

    let again = create_tool(&app, token, &definition("weather")).await;
    assert_eq!(again["id"], id, "the same name, the same id");
    assert_eq!(again["version"], 3, "versions go on counting: {again}");
    assert_ne!(again["secret"], created["secret"]);
    let tool = get(&app, &owner, &path).await;
    assert_eq!(
        tool["timeout_ms"], 10_000,
        "the new definition, not the old: {tool}"
    );
    let list = get(&app, &owner, "/v1/tools").await;
    assert_eq!(list["tools"].as_array().unwrap().len(), 1, "listed once: {list}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_list_is_newest_first_a_page_at_a_time_and_only_the_organizations() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    create_tool(&app, &other.access_token, &definition("theirs")).await;
    for name in ["first", "second", "third"] {
        create_tool(&app, &owner.access_token, &definition(name)).await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = get(&app, &owner, "/v1/tools?limit=2").await;
    assert_eq!(names(&page), ["third", "second"], "{page}");
    let cursor = page["next_cursor"].as_i64().unwrap();
    let rest = get(&app, &owner, &format!("/v1/tools?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&rest), ["first"], "{rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let refused = app
        .with_bearer(&owner.access_token)
        .get("/v1/tools?limit=101")
        .await;
    assert_code(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "page_limit_out_of_range",
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn each_broken_rule_is_refused_with_its_code_and_records_nothing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let with = |field: &str, value: Value| {
        let mut body = definition("weather");
        body[field] = value;
        body
    };
    let schema = |property: Value| json!({ "type": "object", "properties": { "x": property } });
    let cases = [
        (with("name", json!("")), "invalid_tool_name"),
        (with("name", json!("has space")), "invalid_tool_name"),
        (with("name", json!("t".repeat(65))), "invalid_tool_name"),
        (with("description", json!("")), "tool_description_required"),
        (with("description", json!(" \n ")), "tool_description_required"),
        (
            with("description", json!("d".repeat(1025))),
            "tool_description_too_long",
        ),
        (
            with("parameters", json!({ "type": "string" })),
            "tool_parameters_not_object",
        ),
        (
            with("parameters", json!({ "properties": {} })),
            "tool_parameters_not_object",
        ),
        (
            with(
                "parameters",
                json!({ "type": "object", "description": "x".repeat(16 * 1024) }),
            ),
            "tool_parameters_too_large",
        ),
        (
            with("parameters", schema(json!({ "type": "strin" }))),
            "invalid_tool_schema",
        ),
        (
            with("parameters", schema(json!({ "pattern": "([" }))),
            "invalid_tool_schema",
        ),
        (
            with("parameters", schema(json!({ "$ref": "#/$defs/none" }))),
            "invalid_tool_schema",
        ),
        (
            with("url", json!("ftp://tools.example.com/x")),
            "tool_url_not_http",
        ),
        (with("url", json!("file:///etc/passwd")), "tool_url_not_http"),
        (with("url", json!("tools.example.com")), "tool_url_not_http"),
        (with("url", json!("https://")), "invalid_tool_url"),
        (with("url", json!("https://exa mple.com/")), "invalid_tool_url"),
        (
            with("url", json!("https://user:pw@tools.example.com/")),
            "tool_url_has_credentials",
        ),
        (
            with(
                "url",
                json!(format!("https://tools.example.com/{}", "p".repeat(2030))),
            ),
            "tool_url_too_long",
        ),
        (with("timeout_ms", json!(999)), "tool_timeout_out_of_range"),
        (with("timeout_ms", json!(60_001)), "tool_timeout_out_of_range"),
        (with("secret", json!("too-short")), "invalid_tool_secret"),
        (with("secret", json!("s".repeat(257))), "invalid_tool_secret"),
        (
            with("secret", json!("has spaces in the secret")),
            "invalid_tool_secret",
        ),
    ];
    let before = app.event_count().await;
    let mut mismatches = Vec::new();
    for (body, code) in cases {
        let response = app
            .with_bearer(&owner.access_token)
            .post_json("/v1/tools", &body)
            .await;
        let status = response.status();
        let text = response.text().await.unwrap();
        let problem: Value = serde_json::from_str(&text).unwrap_or_default();
        if status != StatusCode::UNPROCESSABLE_ENTITY || problem["code"] != code {
            mismatches.push(format!("expected 422 {code}, got {status} {text}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let schema_detail = app
        .with_bearer(&owner.access_token)
        .post_json(
            "/v1/tools",
            &with("parameters", schema(json!({ "type": "strin" }))),
        )
        .await;
    let problem = assert_problem(schema_detail, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("strin"),
        "the validator's message: {problem}"
    );

    for (field, value) in [
        ("name", json!("a\u{7}b")),
        ("description", json!("a\u{1b}[31mb")),
        ("url", json!("https://tools.example.com/\u{0}")),
        ("secret", json!("0123456789abcdef\u{7f}")),
    ] {
        let response = app
            .with_bearer(&owner.access_token)
            .post_json("/v1/tools", &with(field, value))
            .await;
        assert_code(response, StatusCode::BAD_REQUEST, "control_characters").await;
    }
    assert_eq!(
        app.event_count().await,
        before,
        "no refused creation was recorded"
    );

    let id = create_tool(&app, &owner.access_token, &definition("weather")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let after_create = app.event_count().await;
    for (body, code) in [
        (json!({}), "tool_update_empty"),
        (json!({ "url": "gopher://x" }), "tool_url_not_http"),
        (
            json!({ "parameters": { "type": "object", "required": "x" } }),
            "invalid_tool_schema",
        ),
        (json!({ "timeout_ms": 0 }), "tool_timeout_out_of_range"),
        (json!({ "description": "" }), "tool_description_required"),
    ] {
        let response = patch(&app, &owner.access_token, &id, &body).await;
        assert_code(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let response = rotate(&app, &owner.access_token, &id, &json!({ "secret": "short" })).await;
    assert_code(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_tool_secret").await;
    assert_eq!(
        app.event_count().await,
        after_create,
        "no refused change was recorded"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn members_write_tools_and_auditors_only_read_them() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let member = add_member(&app, &owner, "member", "member").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;
    let created = create_tool(&app, &member.access_token, &definition("by_member")).await;
    let id = created["id"].as_str().unwrap();
    let updated = patch(&app, &member.access_token, id, &json!({ "timeout_ms": 2000 })).await;
    assert_eq!(updated.status(), StatusCode::OK);

    let before = app.event_count().await;
    let token = &auditor.access_token;
    let path = format!("/v1/tools/{id}");
    let refused = [
        send(
            &app,
            token,
            Method::POST,
            "/v1/tools",
            Some(&definition("by_auditor")),
        )
        .await,
        patch(&app, token, id, &json!({ "timeout_ms": 3000 })).await,
        rotate(&app, token, id, &json!({})).await,
        send(&app, token, Method::DELETE, &path, None).await,
    ];
    for response in refused {
        assert_code(response, StatusCode::FORBIDDEN, "role_not_allowed").await;
    }
    assert_eq!(app.event_count().await, before, "nothing recorded");
    let read = get(&app, &auditor, &path).await;
    assert_eq!(read["timeout_ms"], 2000, "{read}");
    let list = get(&app, &auditor, "/v1/tools").await;
    assert_eq!(list["tools"][0]["id"], id, "{list}");
    app.cleanup().await;
}

/// What the runtime gets: a second service over the same database (another node) finds the
/// key the application generated, opens the secret in force, and leaves out what is no tool.
#[tokio::test]
async fn resolve_answers_the_organizations_tools_by_name_with_their_secrets_opened() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    let token = &owner.access_token;
    let weather = create_tool(&app, token, &with_secret("weather", "first-secret-0123456789")).await;
    let id = weather["id"].as_str().unwrap();
    patch(&app, token, id, &json!({ "timeout_ms": 2500 })).await;
    rotate(&app, token, id, &json!({ "secret": "second-secret-0123456789" })).await;
    let gone = create_tool(&app, token, &definition("gone")).await;
    let path = format!("/v1/tools/{}", gone["id"].as_str().unwrap());
    send(&app, token, Method::DELETE, &path, None).await;
    create_tool(&app, &other.access_token, &definition("theirs")).await;

    let store = EventStore::new(app.pool.clone(), domain::upcasting::upcasters());
    // Configuring a key for the first time: what the generated key sealed still opens.
    let configured = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [42u8; 32]);
    let sealer = secrets_key(&app.pool, Some(&configured), &[]).await.unwrap();
    let tools = ToolService::new(&store, Arc::new(sealer));
    let names: Vec<String> = ["weather", "gone", "theirs", "missing", "not a name", "weather"]
        .map(str::to_owned)
        .to_vec();
    let resolved = tools.resolve(owner.org_id, &names).await.unwrap();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let tool = &resolved[0];
    assert_eq!(tool.id.to_string(), id);
    assert_eq!((tool.name.as_str(), tool.version), ("weather", 2));
    assert_eq!(tool.url, "https://tools.example.com/weather");
    assert_eq!(tool.timeout, Duration::from_millis(2500));
    assert_eq!(tool.parameters, definition("x")["parameters"]);
    assert_eq!(
        tool.secret.expose_secret(),
        "second-secret-0123456789",
        "the rotated secret"
    );
    assert!(
        !format!("{tool:?}").contains("second-secret"),
        "Debug redacts the secret"
    );

    let validators = ArgumentValidators::default();
    assert_eq!(
        validators.check(tool, r#"{"city":"Oslo"}"#).unwrap(),
        json!({"city": "Oslo"})
    );
    assert!(validators.check(tool, r#"{"town":"Oslo"}"#).is_err());
    app.cleanup().await;
}
