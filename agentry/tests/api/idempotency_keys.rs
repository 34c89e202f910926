//! `Idempotency-Key` on the requests that create: a conversation or a run sent again with its
//! key (after a lost answer, a 500 `outcome_unknown`, a client's own timeout) is the one the
//! first request created, whether the repeat comes later or at the same moment; the key with
//! another request is refused and changes nothing; a bad key is refused before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, expect_json, register};
use crate::helpers::{Authorized, TestApp, assert_problem, check_problem};
use crate::runs::{conversation, echo_agent, run_reaching};

async fn post_with_key(api: &Authorized<'_>, path: &str, key: &str, body: &Value) -> Response {
    api.request(Method::POST, path)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("POST request")
}

/// Sends the same keyed POST 8 times at once; each must answer `status`, and all the same
/// `field` (the whole body when `None`: a run's status may move between the answers). The
/// value they agree on.
async fn racing_repeats(
    api: &Authorized<'_>,
    path: &str,
    key: &str,
    body: &Value,
    status: StatusCode,
    field: Option<&str>,
) -> Value {
    let racing: Vec<_> = (0..8).map(|_| post_with_key(api, path, key, body)).collect();
    let mut answers = Vec::new();
    for answer in futures::future::join_all(racing).await {
        let answered = expect_json(answer, status, "a racing request").await;
        answers.push(field.map_or(answered.clone(), |field| answered[field].clone()));
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "every racer is answered the same: {answers:?}");
    answers.remove(0)
}

/// An owner with an echo agent and a conversation with it: (owner, agent, conversation).
async fn owner_with_conversation(app: &TestApp) -> (Account, String, String) {
    let owner = register(app, "owner").await;
    let agent_id = echo_agent(app, &owner.access_token, 3).await;
    let conversation_id = conversation(app, &owner.access_token, &agent_id).await;
    (owner, agent_id, conversation_id)
}

#[tokio::test]
async fn a_conversation_created_again_with_its_key_is_the_same_one() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let agent_id = echo_agent(&app, &owner.access_token, 3).await;
    let api = app.with_bearer(&owner.access_token);
    let body = json!({ "agent_id": agent_id, "title": "Trip" });

    // Without a key, two requests are two conversations (the path a key changes).
    for _ in 0..2 {
        let created = api.post_json("/v1/conversations", &body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    assert_eq!(app.events_of_type("conversation.created").await, 2);

    let first = expect_json(
        post_with_key(&api, "/v1/conversations", "trip-1", &body).await,
        StatusCode::CREATED,
        "create with a key",
    )
    .await;
    // The same body, trimmed the same way, is the same request.
    let same = json!({ "agent_id": agent_id, "title": " Trip " });
    let again = expect_json(
        post_with_key(&api, "/v1/conversations", "trip-1", &same).await,
        StatusCode::CREATED,
        "the same key again",
    )
    .await;
    assert_eq!(again, first, "the repeat answers what the first answered");
    assert_eq!(app.events_of_type("conversation.created").await, 3);
    let read = api
        .get(&format!("/v1/conversations/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(read.status(), StatusCode::OK);

    // The key with another request: refused, nothing written.
    let events = app.event_count().await;
    let other = json!({ "agent_id": agent_id, "title": "Another trip" });
    let refused = assert_problem(
        post_with_key(&api, "/v1/conversations", "trip-1", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["code"], "idempotency_key_reused", "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("agent or title"),
        "{refused}"
    );
    assert_eq!(app.event_count().await, events);

    // Another organization's key of the same text is its own.
    let stranger = register(&app, "stranger").await;
    let their_agent = echo_agent(&app, &stranger.access_token, 3).await;
    let theirs = expect_json(
        post_with_key(
            &app.with_bearer(&stranger.access_token),
            "/v1/conversations",
            "trip-1",
            &json!({ "agent_id": their_agent, "title": "Trip" }),
        )
        .await,
        StatusCode::CREATED,
        "another organization's key",
    )
    .await;
    assert_ne!(theirs["id"], first["id"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creations_with_one_key_create_one_conversation() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let agent_id = echo_agent(&app, &owner.access_token, 3).await;
    let api = app.with_bearer(&owner.access_token);
    let body = json!({ "agent_id": agent_id, "title": "Race" });

    racing_repeats(
        &api,
        "/v1/conversations",
        "race-1",
        &body,
        StatusCode::CREATED,
        Some("id"),
    )
    .await;
    assert_eq!(app.events_of_type("conversation.created").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_run_started_again_with_its_key_is_the_same_run_and_starts_no_other() {
    let app = TestApp::spawn().await;
    let (owner, agent_id, conversation_id) = owner_with_conversation(&app).await;
    let api = app.with_bearer(&owner.access_token);
    let runs = format!("/v1/conversations/{conversation_id}/runs");
    let input = json!({ "input": "hello there" });

    let first = expect_json(
        post_with_key(&api, &runs, "hello-1", &input).await,
        StatusCode::ACCEPTED,
        "start with a key",
    )
    .await;
    assert_eq!(first["status"], "queued", "{first}");
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    run_reaching(&app, &owner.access_token, &run_id, "completed").await;

    // Sent again after the run ended: the same run as it stands, not a second run.
    let again = expect_json(
        post_with_key(&api, &runs, "hello-1", &input).await,
        StatusCode::ACCEPTED,
        "the same key again",
    )
    .await;
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(app.events_of_type("run.queued").await, 1);

    // The key with another input: refused, nothing written.
    let events = app.settled_event_count().await;
    let refused = assert_problem(
        post_with_key(&api, &runs, "hello-1", &json!({ "input": "something else" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["code"], "idempotency_key_reused", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("input"), "{refused}");
    assert_eq!(app.event_count().await, events);

    // The key in another conversation is another run.
    let other_conversation = conversation(&app, &owner.access_token, &agent_id).await;
    let elsewhere = expect_json(
        post_with_key(
            &api,
            &format!("/v1/conversations/{other_conversation}/runs"),
            "hello-1",
            &input,
        )
        .await,
        StatusCode::ACCEPTED,
        "the key in another conversation",
    )
    .await;
    assert_ne!(elsewhere["run_id"], first["run_id"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_starts_with_one_key_start_one_run_and_none_is_told_run_active() {
    let app = TestApp::spawn().await;
    let (owner, _, conversation_id) = owner_with_conversation(&app).await;
    let api = app.with_bearer(&owner.access_token);
    let runs = format!("/v1/conversations/{conversation_id}/runs");
    let input = json!({ "input": "one run only" });

    let run_id = racing_repeats(
        &api,
        &runs,
        "once-1",
        &input,
        StatusCode::ACCEPTED,
        Some("run_id"),
    )
    .await;
    run_reaching(&app, &owner.access_token, run_id.as_str().unwrap(), "completed").await;
    assert_eq!(app.events_of_type("run.queued").await, 1);
    assert_eq!(app.events_of_type("run.started").await, 1);
    assert_eq!(app.events_of_type("run.completed").await, 1);

    // A new key then starts a new run, as without keys.
    let next = post_with_key(&api, &runs, "once-2", &input).await;
    assert_eq!(next.status(), StatusCode::ACCEPTED);
    app.cleanup().await;
}

#[tokio::test]
async fn a_bad_key_is_refused_with_its_code_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (owner, agent_id, conversation_id) = owner_with_conversation(&app).await;
    let api = app.with_bearer(&owner.access_token);
    let conversations = ("/v1/conversations".to_owned(), json!({ "agent_id": agent_id }));
    let runs = (
        format!("/v1/conversations/{conversation_id}/runs"),
        json!({ "input": "hello" }),
    );

    // The allowed path first: a good key is taken by both operations.
    let created = post_with_key(&api, &conversations.0, "good-key", &conversations.1).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let started = expect_json(
        post_with_key(&api, &runs.0, "good-key", &runs.1).await,
        StatusCode::ACCEPTED,
        "a good key",
    )
    .await;
    let run_id = started["run_id"].as_str().unwrap();
    run_reaching(&app, &owner.access_token, run_id, "completed").await;

    let events = app.settled_event_count().await;
    let too_long = "k".repeat(256);
    for key in ["two words", "tab\there", too_long.as_str(), ""] {
        for (path, body) in [&conversations, &runs] {
            let refused = check_problem(
                post_with_key(&api, path, key, body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
            .unwrap_or_else(|mismatch| panic!("{key:?} on {path}: {mismatch}"));
            assert_eq!(
                refused["code"], "invalid_idempotency_key",
                "{key:?} on {path}: {refused}"
            );
        }
    }
    // A header value that is not text at all (poem reads it as no header: refused, not ignored).
    for (path, body) in [&conversations, &runs] {
        let answer = api
            .request(Method::POST, path)
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .json(body)
            .send()
            .await
            .unwrap();
        let refused = assert_problem(answer, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(refused["code"], "invalid_idempotency_key", "{path}: {refused}");
    }
    assert_eq!(app.event_count().await, events, "a refused key wrote nothing");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeats_racing_the_first_start_are_not_refused_by_the_concurrent_run_limit() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = crate::accounts::platform_admin(&app, "admin").await;
    let limits = app
        .with_bearer(&admin.access_token)
        .request(Method::PUT, &format!("/v1/admin/orgs/{}/quotas", owner.org_id))
        .json(&json!({ "concurrent_runs": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(limits.status(), StatusCode::OK);
    let agent_id = echo_agent(&app, &owner.access_token, 3).await;
    let conversation_id = conversation(&app, &owner.access_token, &agent_id).await;
    let api = app.with_bearer(&owner.access_token);
    let runs = format!("/v1/conversations/{conversation_id}/runs");
    // A run that waits for approval stays active: the one run the limit allows.
    let input = json!({ "input": r#"/tool send_mail {"to": "ann@example.com"}"# });

    let run_id = racing_repeats(
        &api,
        &runs,
        "mail-1",
        &input,
        StatusCode::ACCEPTED,
        Some("run_id"),
    )
    .await;
    run_reaching(
        &app,
        &owner.access_token,
        run_id.as_str().unwrap(),
        "awaiting_approval",
    )
    .await;
    let again = expect_json(
        post_with_key(&api, &runs, "mail-1", &input).await,
        StatusCode::ACCEPTED,
        "a repeat while the run waits",
    )
    .await;
    assert_eq!(again["status"], "awaiting_approval", "{again}");

    // The limit itself still holds for a new request.
    let other_conversation = conversation(&app, &owner.access_token, &agent_id).await;
    let refused = post_with_key(
        &api,
        &format!("/v1/conversations/{other_conversation}/runs"),
        "mail-2",
        &input,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.events_of_type("run.queued").await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_interrupted_before_its_run_was_recorded_is_finished_by_its_repeat() {
    use crate::registration_recovery::{heal, inject_fault};

    let app = TestApp::spawn().await;
    let (owner, _, conversation_id) = owner_with_conversation(&app).await;
    let api = app.with_bearer(&owner.access_token);
    let runs = format!("/v1/conversations/{conversation_id}/runs");
    let input = json!({ "input": "hello again" });

    // The conversation is claimed, the run's record fails: as a crash between the two.
    inject_fault(&app, "run").await;
    let failed = post_with_key(&api, &runs, "again-1", &input).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    heal(&app).await;
    assert_eq!(app.events_of_type("conversation.run_started").await, 1);
    assert_eq!(app.events_of_type("run.queued").await, 0);

    let repeated = expect_json(
        post_with_key(&api, &runs, "again-1", &input).await,
        StatusCode::ACCEPTED,
        "the repeat",
    )
    .await;
    let run_id = repeated["run_id"].as_str().unwrap();
    let run = run_reaching(&app, &owner.access_token, run_id, "completed").await;
    assert_eq!(run["output"], "hello again", "{run}");
    assert_eq!(app.events_of_type("conversation.run_started").await, 1);
    assert_eq!(app.events_of_type("run.queued").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_key_on_another_organizations_conversation_is_404_and_several_keys_are_refused() {
    let app = TestApp::spawn().await;
    let (owner, _, conversation_id) = owner_with_conversation(&app).await;
    let runs = format!("/v1/conversations/{conversation_id}/runs");
    let input = json!({ "input": "hello" });

    // The allowed path first: the owner starts a run with the key.
    let owner_api = app.with_bearer(&owner.access_token);
    let started = post_with_key(&owner_api, &runs, "shared-1", &input).await;
    let run_id = expect_json(started, StatusCode::ACCEPTED, "the owner's start").await;
    run_reaching(
        &app,
        &owner.access_token,
        run_id["run_id"].as_str().unwrap(),
        "completed",
    )
    .await;

    let stranger = register(&app, "stranger").await;
    let stranger_api = app.with_bearer(&stranger.access_token);
    for key in ["shared-1", "shared-2"] {
        let refused = assert_problem(
            post_with_key(&stranger_api, &runs, key, &input).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(refused["code"], "conversation_not_found", "{refused}");
    }

    let twice = owner_api
        .request(Method::POST, &runs)
        .header("Idempotency-Key", "shared-3")
        .header("Idempotency-Key", "shared-4")
        .json(&input)
        .send()
        .await
        .unwrap();
    let refused = assert_problem(twice, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["code"], "invalid_idempotency_key", "{refused}");
    // Nothing was started by the refused requests.
    assert_eq!(app.events_of_type("run.queued").await, 1);
    assert_eq!(app.events_of_type("conversation.run_started").await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_created_again_with_its_key_is_the_same_one_even_after_an_update() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let api = app.with_bearer(&owner.access_token);
    let definition = json!({ "name": "Helper", "model": "echo", "max_steps": 3 });

    // Without a key, two requests are two agents (the path a key changes).
    for _ in 0..2 {
        let created = api.post_json("/v1/agents", &definition).await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    assert_eq!(app.events_of_type("agent.created").await, 2);

    // Racing with one key: one agent.
    let created = racing_repeats(
        &api,
        "/v1/agents",
        "helper-1",
        &definition,
        StatusCode::CREATED,
        None,
    )
    .await;
    assert_eq!(created["version"], 1);
    assert_eq!(app.events_of_type("agent.created").await, 3);

    // Updated since, the repeat still answers what the first request did.
    let id = created["id"].as_str().unwrap();
    let updated = api
        .request(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(&json!({ "max_steps": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let again = expect_json(
        post_with_key(&api, "/v1/agents", "helper-1", &definition).await,
        StatusCode::CREATED,
        "the repeat after an update",
    )
    .await;
    assert_eq!(again, created);

    let events = app.event_count().await;
    let other = json!({ "name": "Helper", "model": "echo", "max_steps": 4 });
    let refused = assert_problem(
        post_with_key(&api, "/v1/agents", "helper-1", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["code"], "idempotency_key_reused", "{refused}");
    assert_eq!(app.event_count().await, events);
    app.cleanup().await;
}
