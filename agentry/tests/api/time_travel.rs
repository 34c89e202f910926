//! `?as_of=`: a conversation and a run as they stood at a past moment, folded from the events
//! recorded until then.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::accounts::{assert_code, expect_json, register};
use crate::helpers::TestApp;
use crate::runs::{conversation, echo_agent, run_reaching, start_run};

/// When the event of `aggregate_id` with this type was recorded.
async fn recorded(app: &TestApp, aggregate_id: &str, event_type: &str) -> DateTime<Utc> {
    let text: String = sqlx::query_scalar(
        "SELECT metadata ->> 'recorded_at' FROM events WHERE aggregate_id = $1 AND event_type = $2",
    )
    .bind(aggregate_id)
    .bind(event_type)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    text.parse().unwrap()
}

fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    expect_json(app.with_bearer(token).get(path).await, StatusCode::OK, path).await
}

#[tokio::test]
async fn a_conversation_and_a_run_read_as_they_stood_at_a_past_moment() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let token = &owner.access_token;
    let agent = echo_agent(&app, token, 5).await;
    let conversation_id = conversation(&app, token, &agent).await;
    let run_id = start_run(&app, token, &conversation_id, "hello there").await;
    run_reaching(&app, token, &run_id, "completed").await;
    let conversation_path = format!("/v1/conversations/{conversation_id}");
    // The conversation records the run's end after the run does.
    while get(&app, token, &conversation_path)
        .await
        .get("active_run")
        .is_some()
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let created = recorded(&app, &conversation_id, "conversation.created").await;
    let queued = recorded(&app, &run_id, "run.queued").await;
    let run_path = format!("/v1/runs/{run_id}");

    // Before it existed: 404, as for an id that never existed.
    let before = format!(
        "{conversation_path}?as_of={}",
        at(created - Duration::microseconds(1))
    );
    assert_code(
        app.with_bearer(token).get(&before).await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    )
    .await;
    let before_run = format!("{run_path}?as_of={}", at(queued - Duration::microseconds(1)));
    assert_code(
        app.with_bearer(token).get(&before_run).await,
        StatusCode::NOT_FOUND,
        "run_not_found",
    )
    .await;

    // Created, no run yet.
    let empty = get(&app, token, &format!("{conversation_path}?as_of={}", at(created))).await;
    assert_eq!(empty["messages"], Value::Array(Vec::new()), "{empty}");

    // The run just queued: the user's words, no answer, no steps.
    let then = get(&app, token, &format!("{run_path}?as_of={}", at(queued))).await;
    assert_eq!(then["status"], "queued", "{then}");
    assert_eq!(then["input"], "hello there");
    assert!(then.get("output").is_none(), "{then}");
    assert_eq!(then["steps"], Value::Array(Vec::new()));
    let asked = get(&app, token, &format!("{conversation_path}?as_of={}", at(queued))).await;
    let roles: Vec<&str> = asked["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user"], "{asked}");

    // Now, and any time after the end: the whole run.
    let now = get(&app, token, &run_path).await;
    assert_eq!(now["status"], "completed");
    let later = get(
        &app,
        token,
        &format!("{run_path}?as_of={}", at(Utc::now() + Duration::days(1))),
    )
    .await;
    assert_eq!(later, now);
    let answered = get(
        &app,
        token,
        &format!("{conversation_path}?as_of={}", at(Utc::now())),
    )
    .await;
    assert_eq!(answered, get(&app, token, &conversation_path).await);
    app.cleanup().await;
}

#[tokio::test]
async fn a_malformed_as_of_is_a_400_and_another_organizations_past_a_404() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    let agent = echo_agent(&app, &owner.access_token, 5).await;
    let conversation_id = conversation(&app, &owner.access_token, &agent).await;

    for bad in ["yesterday", "2026-12-06", "2026-12-06T25:00:00Z"] {
        let path = format!("/v1/conversations/{conversation_id}?as_of={bad}");
        assert_code(
            app.with_bearer(&owner.access_token).get(&path).await,
            StatusCode::BAD_REQUEST,
            "invalid_time",
        )
        .await;
    }
    let path = format!("/v1/conversations/{conversation_id}?as_of={}", at(Utc::now()));
    assert_code(
        app.with_bearer(&other.access_token).get(&path).await,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    )
    .await;
    app.cleanup().await;
}
