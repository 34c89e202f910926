//! Agents: created as version 1, every update a new version with the earlier ones still
//! readable, listed newest first a page at a time, each rule refused with its own code, and
//! written by everyone but auditors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, add_member, expect_json, register};
use crate::helpers::{TestApp, assert_problem};

/// A valid definition named `name`.
pub fn definition(name: &str) -> Value {
    json!({
        "name": name,
        "model": "echo",
        "system_prompt": "Answer briefly.\n\tUse tools when asked.",
        "tools": ["search", "send_mail"],
        "approval": { "send_mail": "always" },
        "max_steps": 5,
        "temperature": 0.5,
    })
}

/// Creates an agent and answers its id.
pub async fn create_agent(app: &TestApp, token: &str, body: &Value) -> String {
    let response = app.with_bearer(token).post_json("/v1/agents", body).await;
    let created = expect_json(response, StatusCode::CREATED, "POST /v1/agents").await;
    assert_eq!(created["version"], 1, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.with_bearer(token)
        .request(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, account: &Account, path: &str) -> Value {
    let response = app.with_bearer(&account.access_token).get(path).await;
    expect_json(response, StatusCode::OK, path).await
}

#[tokio::test]
async fn an_update_makes_version_2_and_version_1_stays_readable() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let id = create_agent(&app, &owner.access_token, &definition("Support")).await;

    let first = get(&app, &owner, &format!("/v1/agents/{id}")).await;
    assert_eq!(
        (first["version"].clone(), first["name"].clone()),
        (json!(1), json!("Support"))
    );
    assert_eq!(
        first["system_prompt"], "Answer briefly.\n\tUse tools when asked.",
        "{first}"
    );
    assert_eq!(first["approval"], json!({ "send_mail": "always" }), "{first}");
    assert_eq!(first["tools"], json!(["search", "send_mail"]), "{first}");
    assert!(
        first.get("max_output_tokens").is_none(),
        "absent, not null: {first}"
    );

    let response = patch(
        &app,
        &owner.access_token,
        &id,
        &json!({ "name": "Support v2", "approval": "never" }),
    )
    .await;
    let updated = expect_json(response, StatusCode::OK, "PATCH /v1/agents/{id}").await;
    assert_eq!(updated, json!({ "id": id, "version": 2 }));

    let latest = get(&app, &owner, &format!("/v1/agents/{id}")).await;
    assert_eq!(
        (latest["version"].clone(), latest["name"].clone()),
        (json!(2), json!("Support v2"))
    );
    assert_eq!(latest["approval"], "never", "{latest}");
    assert_eq!(latest["max_steps"], 5, "unchanged fields are kept: {latest}");

    let old = get(&app, &owner, &format!("/v1/agents/{id}?version=1")).await;
    assert_eq!(old["name"], "Support", "{old}");
    assert_eq!(old["version"], 1, "{old}");
    assert_eq!(old["latest_version"], 2, "{old}");
    assert_eq!(old["approval"], json!({ "send_mail": "always" }), "{old}");

    let missing = app
        .with_bearer(&owner.access_token)
        .get(&format!("/v1/agents/{id}?version=3"))
        .await;
    let problem = assert_problem(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(problem["code"], "agent_version_not_found", "{problem}");
    app.cleanup().await;
}

#[tokio::test]
async fn the_list_is_newest_first_a_page_at_a_time_and_only_the_organizations() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    create_agent(&app, &other.access_token, &definition("Theirs")).await;
    for name in ["first", "second", "third"] {
        create_agent(&app, &owner.access_token, &definition(name)).await;
    }

    let page = get(&app, &owner, "/v1/agents?limit=2").await;
    let names: Vec<&str> = page["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["third", "second"], "{page}");
    let cursor = page["next_cursor"]
        .as_i64()
        .unwrap_or_else(|| panic!("a next page: {page}"));

    let rest = get(&app, &owner, &format!("/v1/agents?limit=2&cursor={cursor}")).await;
    let names: Vec<&str> = rest["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first"], "{rest}");
    assert!(
        rest.get("next_cursor").is_none(),
        "the last page has no cursor: {rest}"
    );

    let refused = app
        .with_bearer(&owner.access_token)
        .get("/v1/agents?limit=0")
        .await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "page_limit_out_of_range", "{problem}");
    app.cleanup().await;
}

#[tokio::test]
async fn each_broken_rule_is_refused_with_its_code_and_records_nothing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let with = |field: &str, value: Value| {
        let mut body = definition("Agent");
        body[field] = value;
        body
    };
    let cases = [
        (with("name", json!("")), "agent_name_required"),
        (with("name", json!("   ")), "agent_name_required"),
        (with("name", json!("n".repeat(101))), "agent_name_too_long"),
        (with("model", json!("m".repeat(101))), "agent_model_too_long"),
        (
            with("system_prompt", json!("p".repeat(32 * 1024 + 1))),
            "system_prompt_too_long",
        ),
        (
            with(
                "tools",
                json!((0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()),
            ),
            "too_many_tools",
        ),
        (with("tools", json!(["search", "send mail"])), "invalid_tool_name"),
        (
            with("tools", json!(["search", "search", "send_mail"])),
            "duplicate_tool",
        ),
        (with("approval", json!("sometimes")), "invalid_approval"),
        (
            with("approval", json!({ "delete_all": "always" })),
            "approval_for_unknown_tool",
        ),
        (with("max_steps", json!(0)), "max_steps_out_of_range"),
        (with("max_steps", json!(101)), "max_steps_out_of_range"),
        (with("temperature", json!(2.5)), "temperature_out_of_range"),
        (
            with("max_output_tokens", json!(32_769)),
            "max_output_tokens_out_of_range",
        ),
    ];
    let before = app.event_count().await;
    for (body, code) in cases {
        let response = app
            .with_bearer(&owner.access_token)
            .post_json("/v1/agents", &body)
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["code"], code, "{problem}");
    }
    let control = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/agents", &with("system_prompt", json!("a\u{7}b")))
        .await;
    let problem = assert_problem(control, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["code"], "control_characters", "{problem}");

    let id = create_agent(&app, &owner.access_token, &definition("Agent")).await;
    let after_create = app.event_count().await;
    assert_eq!(after_create, before + 1, "only the valid creation was recorded");
    for (body, code) in [
        (json!({}), "agent_update_empty"),
        (json!({ "tools": ["search"] }), "approval_for_unknown_tool"),
        (json!({ "max_steps": 200 }), "max_steps_out_of_range"),
    ] {
        let problem = assert_problem(
            patch(&app, &owner.access_token, &id, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["code"], code, "{problem}");
    }
    assert_eq!(
        app.event_count().await,
        after_create,
        "no refused update was recorded"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn members_write_agents_and_auditors_only_read_them() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let member = add_member(&app, &owner, "member", "member").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;

    let id = create_agent(&app, &member.access_token, &definition("By a member")).await;
    let updated = patch(&app, &member.access_token, &id, &json!({ "max_steps": 7 })).await;
    assert_eq!(updated.status(), StatusCode::OK);

    let before = app.event_count().await;
    let refused = app
        .with_bearer(&auditor.access_token)
        .post_json("/v1/agents", &definition("By an auditor"))
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN).await;
    assert_problem(
        patch(&app, &auditor.access_token, &id, &json!({ "name": "x" })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(app.event_count().await, before, "nothing recorded");

    let read = get(&app, &auditor, &format!("/v1/agents/{id}")).await;
    assert_eq!(read["max_steps"], 7, "{read}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_model_the_deployment_does_not_offer_is_refused_naming_those_it_does() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "model-picker").await;
    let mut body = definition("Typo");
    body["model"] = json!("gpt-4o-mni");
    let before = app.event_count().await;
    let refused = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/agents", &body)
        .await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "unknown_model", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("echo"), "{problem}");
    assert_eq!(app.event_count().await, before, "nothing recorded");
    app.cleanup().await;

    let app = TestApp::spawn_with(|settings| {
        settings.runs.llm_base_url = Some("http://127.0.0.1:9/v1".to_owned());
        settings.runs.llm_models = Some(vec!["gpt-a".to_owned()]);
    })
    .await;
    let owner = register(&app, "model-picker").await;
    body["model"] = json!("gpt-a");
    let id = create_agent(&app, &owner.access_token, &body).await;
    let refused = patch(&app, &owner.access_token, &id, &json!({ "model": "gpt-b" })).await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "unknown_model", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("gpt-a"), "{problem}");
    app.cleanup().await;
}
