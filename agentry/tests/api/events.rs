//! `GET /v1/events/{id}`: one event of the caller's organization, whole and without digests,
//! for any role; what a bus subscriber reads when NATS carried the event cut. And what the
//! store refuses (too large, U+0000) reaches clients as problem+json, never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::CommandContext;
use eventstore::store::{NewEvent, append_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{add_member, create_api_key, expect_json, register};
use crate::helpers::{TestApp, assert_problem};

/// The id of the newest event of `event_type` in `org_id`, read behind the API.
pub async fn event_id_of(app: &TestApp, org_id: Uuid, event_type: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT event_id FROM events WHERE org_id = $1 AND event_type = $2 ORDER BY position DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .expect("the event was written")
}

async fn get_event(app: &TestApp, token: &str, id: Uuid) -> reqwest::Response {
    app.with_bearer(token).get(&format!("/v1/events/{id}")).await
}

#[tokio::test]
async fn every_role_and_an_api_key_read_their_organizations_event_without_digests() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "deploy").await;
    let id = event_id_of(&app, owner.org_id, "api_key.created").await;
    let mut tokens = vec![
        ("owner", owner.access_token.clone()),
        ("api key", key.key.clone()),
    ];
    for role in ["admin", "member", "auditor"] {
        let account = add_member(&app, &owner, &format!("{role}-reader"), role).await;
        tokens.push((role, account.access_token));
    }

    for (who, token) in tokens {
        let event = expect_json(get_event(&app, &token, id).await, StatusCode::OK, who).await;

        assert_eq!(event["id"], id.to_string(), "{who}: {event}");
        assert_eq!(event["type"], "api_key.created", "{who}");
        assert_eq!(event["org_id"], owner.org_id.to_string(), "{who}");
        assert_eq!(event["aggregate_type"], "api_key", "{who}");
        assert_eq!(event["sequence"], 1, "{who}");
        assert_eq!(event["data"]["name"], "deploy", "{who}");
        assert_eq!(
            event["metadata"]["actor"],
            format!("user:{}", owner.user_id),
            "{who}"
        );
        assert!(
            event["transaction_id"].as_str().unwrap().parse::<u64>().is_ok(),
            "{who}"
        );
        let text = event.to_string();
        assert!(
            !text.contains("_hash"),
            "{who}: a digest field left the store: {text}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_id_and_a_platform_wide_event_answer_404() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    // The owner's own registration has no organization: it is not theirs to read here.
    let registered: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE event_type = 'user.registered' AND aggregate_id = $1",
    )
    .bind(owner.user_id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();

    for id in [Uuid::now_v7(), registered] {
        let problem = assert_problem(
            get_event(&app, &owner.access_token, id).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(problem["code"], "not_found", "{problem}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_event_too_large_for_the_bus_is_served_whole() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let output = "tool output ".repeat(500_000);
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "tool_call.completed".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({ "type": "tool_call.completed", "output": output }).to_string(),
    };
    append_with(
        &app.pool,
        "run",
        &Uuid::now_v7().to_string(),
        0,
        std::slice::from_ref(&event),
        &CommandContext::system(Some(owner.org_id)),
    )
    .await
    .unwrap();

    let served: Value = expect_json(
        get_event(&app, &owner.access_token, event.event_id).await,
        StatusCode::OK,
        "a 6 MB event",
    )
    .await;

    assert_eq!(served["data"]["output"].as_str().unwrap().len(), output.len());
    assert!(served.get("truncated").is_none());
    app.cleanup().await;
}

#[tokio::test]
async fn a_nul_character_in_input_that_would_reach_an_event_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;

    let response = app
        .post_json(
            "/v1/auth/register",
            &json!({ "email": "nul\u{0}@example.com", "password": "correct horse battery staple", "org_name": "N" }),
        )
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["code"], "control_characters", "{problem}");
    assert_eq!(app.event_count().await, before, "nothing was written");
    app.cleanup().await;
}
