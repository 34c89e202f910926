//! Conversations and runs over HTTP with the built-in `echo` model: the run's steps, the one
//! active run per conversation, approvals bound to a pending call, cancellation, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::{expect_json, register};
use crate::helpers::{TestApp, assert_problem};

/// An echo agent with two tools; `send_mail` waits for approval.
pub async fn echo_agent(app: &TestApp, token: &str, max_steps: u32) -> String {
    let body = json!({
        "name": "Echo",
        "model": "echo",
        "tools": ["search", "send_mail"],
        "approval": { "send_mail": "always" },
        "max_steps": max_steps,
    });
    let created = expect_json(
        app.with_bearer(token).post_json("/v1/agents", &body).await,
        StatusCode::CREATED,
        "create agent",
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

/// A conversation with `agent_id`; answers its id.
pub async fn conversation(app: &TestApp, token: &str, agent_id: &str) -> String {
    let created = expect_json(
        app.with_bearer(token)
            .post_json(
                "/v1/conversations",
                &json!({ "agent_id": agent_id, "title": "Trip" }),
            )
            .await,
        StatusCode::CREATED,
        "create conversation",
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

/// Starts a run and answers its id.
pub async fn start_run(app: &TestApp, token: &str, conversation_id: &str, input: &str) -> String {
    let queued = expect_json(
        app.with_bearer(token)
            .post_json(
                &format!("/v1/conversations/{conversation_id}/runs"),
                &json!({ "input": input }),
            )
            .await,
        StatusCode::ACCEPTED,
        "start run",
    )
    .await;
    assert_eq!(queued["status"], "queued", "{queued}");
    queued["run_id"].as_str().unwrap().to_owned()
}

/// Reads the run until its status is `status` (10 s at most).
pub async fn run_reaching(app: &TestApp, token: &str, run_id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let run = expect_json(
            app.with_bearer(token).get(&format!("/v1/runs/{run_id}")).await,
            StatusCode::OK,
            "get run",
        )
        .await;
        if run["status"] == status {
            return run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the run did not reach {status}: {run}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run of `owner`'s waiting for approval of its `send_mail` call: (conversation, run, call).
pub async fn waiting_call(app: &TestApp, token: &str, to: &str) -> (String, String, String) {
    let agent = echo_agent(app, token, 5).await;
    let conversation_id = conversation(app, token, &agent).await;
    let input = format!(r#"/tool send_mail {{"to": "{to}"}}"#);
    let run_id = start_run(app, token, &conversation_id, &input).await;
    let waiting = run_reaching(app, token, &run_id, "awaiting_approval").await;
    let call = &waiting["steps"][0]["tool_calls"][0];
    assert_eq!(call["status"], "awaiting_approval", "{waiting}");
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    (conversation_id, run_id, call_id)
}

async fn event_types(app: &TestApp, run_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'run' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(run_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_echo_run_answers_its_input_and_records_every_step_once() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "runner").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 5).await;
    let conversation_id = conversation(&app, token, &agent).await;
    let run_id = start_run(&app, token, &conversation_id, "Hello from\nAgentry").await;

    let run = run_reaching(&app, token, &run_id, "completed").await;
    assert_eq!(run["output"], "Hello from\nAgentry", "{run}");
    assert_eq!(run["conversation_id"], conversation_id.as_str());
    assert_eq!(run["steps"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(run["steps"][0]["content"], "Hello from\nAgentry");
    assert_eq!(run["steps"][0]["finish_reason"], "stop");
    assert_eq!(run["usage"]["completion_tokens"], 3, "one token per word: {run}");
    assert_eq!(run["usage"]["prompt_tokens"], 3, "{run}");
    assert!(
        run["usage"]["credits"].as_u64().unwrap() >= 1,
        "echo is priced: {run}"
    );
    assert_eq!(
        event_types(&app, &run_id).await,
        [
            "run.queued",
            "run.started",
            "llm_call.started",
            "message.delta",
            "llm_call.completed",
            "message.completed",
            "run.completed"
        ]
    );
    assert_eq!(run["last_event_id"], 9, "three deltas take an id each: {run}");

    let conversation = expect_json(
        app.with_bearer(token)
            .get(&format!("/v1/conversations/{conversation_id}"))
            .await,
        StatusCode::OK,
        "get conversation",
    )
    .await;
    let messages = conversation["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{conversation}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Hello from\nAgentry");
    assert_eq!(messages[1]["run_id"], run_id.as_str());
    assert!(
        conversation.get("active_run").is_none(),
        "the run ended: {conversation}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_second_run_while_one_is_active_is_409_naming_it_and_cancel_frees_the_conversation() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "one-at-a-time").await;
    let token = owner.access_token.as_str();
    let (conversation_id, first, _) = waiting_call(&app, token, "bob").await;

    let refused = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/conversations/{conversation_id}/runs"),
            &json!({ "input": "again" }),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "run_active", "{problem}");
    assert_eq!(problem["run_id"], first.as_str(), "{problem}");

    let cancelled = app
        .with_bearer(token)
        .post_json(&format!("/v1/runs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    run_reaching(&app, token, &first, "cancelled").await;
    let again = app
        .with_bearer(token)
        .post_json(&format!("/v1/runs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(
        assert_problem(again, StatusCode::CONFLICT).await["code"],
        "run_finished"
    );
    let second = start_run(&app, token, &conversation_id, "now").await;
    run_reaching(&app, token, &second, "completed").await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_approval_names_one_pending_call_and_a_denial_reason_reaches_the_model() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "approver").await;
    let token = owner.access_token.as_str();
    let (conversation_id, run_id, call_id) = waiting_call(&app, token, "bob").await;

    let unknown = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/runs/{run_id}/tool-calls/{}/approve", uuid::Uuid::new_v4()),
            &json!({}),
        )
        .await;
    assert_eq!(
        assert_problem(unknown, StatusCode::NOT_FOUND).await["code"],
        "tool_call_not_found"
    );

    let approve = |call: String| {
        let path = format!("/v1/runs/{run_id}/tool-calls/{call}/approve");
        let app = &app;
        async move { app.with_bearer(token).post_json(&path, &json!({})).await }
    };
    assert_eq!(approve(call_id.clone()).await.status(), StatusCode::ACCEPTED);
    let again = approve(call_id.clone()).await;
    assert_eq!(
        assert_problem(again, StatusCode::CONFLICT).await["code"],
        "tool_call_not_pending"
    );

    let done = run_reaching(&app, token, &run_id, "completed").await;
    let call = &done["steps"][0]["tool_calls"][0];
    assert_eq!(call["approval"], "approved", "{done}");
    assert_eq!(call["decided_by"], format!("user:{}", owner.user_id), "{done}");
    // No tool named send_mail exists yet in the organization: the model is told, the run goes on.
    assert_eq!(call["status"], "failed", "{done}");
    assert_eq!(call["error"]["code"], "unknown_tool", "{done}");
    assert!(
        done["output"].as_str().unwrap().contains("unknown_tool"),
        "{done}"
    );

    let denied_run = start_run(&app, token, &conversation_id, r#"/tool send_mail {"to": "eve"}"#).await;
    let waiting = run_reaching(&app, token, &denied_run, "awaiting_approval").await;
    let denied_call = waiting["steps"][0]["tool_calls"][0]["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_runs_call = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/runs/{denied_run}/tool-calls/{call_id}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(
        assert_problem(other_runs_call, StatusCode::NOT_FOUND).await["code"],
        "tool_call_not_found",
        "a call of another run is not this run's"
    );
    let deny = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/runs/{denied_run}/tool-calls/{denied_call}/deny"),
            &json!({ "reason": "not to eve" }),
        )
        .await;
    assert_eq!(deny.status(), StatusCode::ACCEPTED);
    let done = run_reaching(&app, token, &denied_run, "completed").await;
    assert_eq!(done["output"], "denied: not to eve", "{done}");
    assert_eq!(done["steps"][0]["tool_calls"][0]["reason"], "not to eve");
    app.cleanup().await;
}

#[tokio::test]
async fn a_run_that_needs_more_model_steps_than_allowed_fails_with_max_steps_exceeded() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "limited").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 1).await;
    let conversation_id = conversation(&app, token, &agent).await;
    let run_id = start_run(&app, token, &conversation_id, "/tool search {}").await;
    let failed = run_reaching(&app, token, &run_id, "failed").await;
    assert_eq!(failed["error"]["code"], "max_steps_exceeded", "{failed}");
    assert_eq!(failed["steps"].as_array().unwrap().len(), 1, "{failed}");
    app.cleanup().await;
}

#[tokio::test]
async fn bad_run_input_is_refused_with_its_code_and_records_nothing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "careful").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 5).await;
    let conversation_id = conversation(&app, token, &agent).await;
    let fine = start_run(&app, token, &conversation_id, "fine").await;
    run_reaching(&app, token, &fine, "completed").await;
    // The conversation records the run's end just after the run does: let it, so the counts
    // below see only what the refused requests would add.
    let conversation_path = format!("/v1/conversations/{conversation_id}");
    while app
        .with_bearer(token)
        .get(&conversation_path)
        .await
        .json::<Value>()
        .await
        .unwrap()
        .get("active_run")
        .is_some()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let path = format!("/v1/conversations/{conversation_id}/runs");
    let cases = [
        (
            json!({ "input": "" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "input_required",
        ),
        (
            json!({ "input": "   " }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "input_required",
        ),
        (
            json!({ "input": "a\u{1b}b" }),
            StatusCode::BAD_REQUEST,
            "control_characters",
        ),
        (
            json!({ "input": "x".repeat(33 * 1024) }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "input_too_long",
        ),
    ];
    for (body, status, code) in cases {
        let before = app.event_count().await;
        let problem = assert_problem(app.with_bearer(token).post_json(&path, &body).await, status).await;
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(app.event_count().await, before, "{code} recorded something");
    }
    let missing = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/conversations/{}/runs", uuid::Uuid::new_v4()),
            &json!({ "input": "hi" }),
        )
        .await;
    assert_eq!(
        assert_problem(missing, StatusCode::NOT_FOUND).await["code"],
        "conversation_not_found"
    );
    let archived = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/conversations/{conversation_id}/archive"),
            &json!({}),
        )
        .await;
    assert_eq!(archived.status(), StatusCode::NO_CONTENT);
    let refused = app
        .with_bearer(token)
        .post_json(&path, &json!({ "input": "hi" }))
        .await;
    assert_eq!(
        assert_problem(refused, StatusCode::CONFLICT).await["code"],
        "conversation_archived"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn calls_awaiting_approval_are_listed_and_one_past_the_agents_timeout_is_denied_as_expired() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "timekeeper").await;
    let token = owner.access_token.as_str();
    let mut body = json!({
        "name": "Patient",
        "model": "echo",
        "tools": ["send_mail"],
        "approval": "always",
        "approval_timeout_seconds": 0,
    });
    let refused = app.with_bearer(token).post_json("/v1/agents", &body).await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "approval_timeout_out_of_range", "{problem}");
    body["approval_timeout_seconds"] = json!(2);
    let agent = expect_json(
        app.with_bearer(token).post_json("/v1/agents", &body).await,
        StatusCode::CREATED,
        "create agent",
    )
    .await;
    let conversation_id = conversation(&app, token, agent["id"].as_str().unwrap()).await;
    let run_id = start_run(&app, token, &conversation_id, r#"/tool send_mail {"to": "bob"}"#).await;
    let waiting = run_reaching(&app, token, &run_id, "awaiting_approval").await;
    let call_id = waiting["steps"][0]["tool_calls"][0]["call_id"].clone();

    let listed = expect_json(
        app.with_bearer(token).get("/v1/approvals").await,
        StatusCode::OK,
        "approvals",
    )
    .await;
    let approvals = listed["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{listed}");
    assert_eq!(approvals[0]["call_id"], call_id, "{listed}");
    assert_eq!(approvals[0]["run_id"], run_id.as_str(), "{listed}");
    assert_eq!(approvals[0]["arguments"], r#"{"to": "bob"}"#, "{listed}");
    assert!(approvals[0]["expires_at"].is_string(), "{listed}");

    let other = register(&app, "other-org").await;
    let theirs = expect_json(
        app.with_bearer(&other.access_token).get("/v1/approvals").await,
        StatusCode::OK,
        "another organization's approvals",
    )
    .await;
    assert_eq!(
        theirs["approvals"],
        json!([]),
        "another organization sees none: {theirs}"
    );

    let done = run_reaching(&app, token, &run_id, "completed").await;
    let call = &done["steps"][0]["tool_calls"][0];
    assert_eq!(call["approval"], "denied", "{done}");
    assert_eq!(call["reason"], "expired", "{done}");
    assert_eq!(call["decided_by"], "system", "{done}");
    assert_eq!(done["output"], "denied: expired", "the model was told: {done}");
    let listed = expect_json(
        app.with_bearer(token).get("/v1/approvals").await,
        StatusCode::OK,
        "approvals",
    )
    .await;
    assert_eq!(listed["approvals"], json!([]), "{listed}");
    app.cleanup().await;
}

#[tokio::test]
async fn auditors_read_runs_and_conversations_but_never_start_cancel_or_decide() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let auditor = crate::accounts::add_member(&app, &owner, "auditor", "auditor").await;
    let token = owner.access_token.as_str();
    let (conversation_id, run_id, call_id) = waiting_call(&app, token, "bob").await;
    let agent = echo_agent(&app, token, 5).await;

    let as_auditor = app.with_bearer(&auditor.access_token);
    assert_eq!(
        as_auditor.get(&format!("/v1/runs/{run_id}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        as_auditor
            .get(&format!("/v1/conversations/{conversation_id}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(as_auditor.get("/v1/approvals").await.status(), StatusCode::OK);
    let before = app.event_count().await;
    for path in [
        format!("/v1/conversations/{conversation_id}/runs"),
        format!("/v1/runs/{run_id}/cancel"),
        format!("/v1/runs/{run_id}/tool-calls/{call_id}/approve"),
        format!("/v1/runs/{run_id}/tool-calls/{call_id}/deny"),
    ] {
        let refused = as_auditor.post_json(&path, &json!({ "input": "hi" })).await;
        let problem = assert_problem(refused, StatusCode::FORBIDDEN).await;
        assert_eq!(problem["code"], "role_not_allowed", "{path}: {problem}");
    }
    let refused = as_auditor
        .post_json("/v1/conversations", &json!({ "agent_id": agent }))
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before, "nothing recorded");
    app.cleanup().await;
}
