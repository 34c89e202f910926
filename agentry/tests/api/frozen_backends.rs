//! A Postgres backend frozen in the middle of a session (SIGSTOP here; a paused VM or a
//! connection whose peer vanished without a reset in production) holds authenticated requests
//! for a bounded time only: the standing read authenticated requests make gives up on
//! its connection after its timeout and asks again on a new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use testkit::FrozenBackends;

use crate::accounts::register;
use crate::helpers::TestApp;

/// Freezes every backend of this test's database whose application name is `name`.
async fn freeze_backends_of(app: &TestApp, name: &str) -> FrozenBackends {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = $1",
    )
    .bind(name)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    FrozenBackends::freeze(pids)
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticated_requests_go_on_while_the_standing_reads_backend_is_frozen() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let api = app.with_bearer(&owner.access_token);

    // The allowed path first, which also opens the standing reads' connection.
    for _ in 0..3 {
        let warm: Vec<_> = (0..4).map(|_| api.get("/v1/agents")).collect();
        for response in futures::future::join_all(warm).await {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }

    let frozen = freeze_backends_of(&app, "agentry-standings").await;
    assert!(!frozen.pids().is_empty(), "the standing reads hold a connection");

    let started = Instant::now();
    let during: Vec<_> = (0..8).map(|_| api.get("/v1/agents")).collect();
    let answered = tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(during))
        .await
        .expect("requests are answered while the backend stays frozen");
    let waited = started.elapsed();
    for response in answered {
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
    }
    // One attempt's timeout (2 s) on the frozen connection, then a new connection.
    assert!(waited < Duration::from_secs(6), "answered after {waited:?}");

    // And the next requests do not wait again: the frozen connection was dropped.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(api.get("/v1/agents").await.status(), StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "then {:?}",
        started.elapsed()
    );

    drop(frozen);
    app.cleanup().await;
}

/// A write whose backend froze under it is answered 500 with a code of its own,
/// `outcome_unknown`, not the bare `internal`: the frozen statement may still commit when the
/// backend wakes (whether it does depends on how far the statement got, see
/// `eventstore/tests/store/frozen_writers.rs`). Repeated with its `Idempotency-Key`, the request
/// is safe: one conversation, whichever way the frozen statement went.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_backend_froze_is_answered_outcome_unknown_and_its_key_makes_the_repeat_safe() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let agent_id = crate::runs::echo_agent(&app, &owner.access_token, 3).await;
    let api = app.with_bearer(&owner.access_token);
    let create = |key: String| {
        let body = serde_json::json!({ "agent_id": agent_id, "title": "Trip" });
        let api = &api;
        async move {
            api.request(reqwest::Method::POST, "/v1/conversations")
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("POST request")
        }
    };

    let mut attempt = 0;
    let key = loop {
        attempt += 1;
        // The allowed path first; it also leaves the appends' writers with connections used
        // within the pool's idle limit (1 s), so the frozen one is used untested.
        let warm: Vec<_> = (0..8).map(|n| create(format!("warm-{attempt}-{n}"))).collect();
        for response in futures::future::join_all(warm).await {
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        let frozen = freeze_backends_of(&app, "agentry-appends").await;
        assert!(!frozen.pids().is_empty(), "the appends' writers hold connections");

        let key = format!("frozen-{attempt}");
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(15), create(key.clone()))
            .await
            .expect("answered while the backends stay frozen");
        let waited = started.elapsed();
        // A machine too slow for the premise: the pool tested an idle connection first and
        // found it frozen (503 `database_busy`, nothing sent). Tried again, a few times.
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE && attempt < 3 {
            drop(frozen);
            continue;
        }
        let problem = crate::helpers::assert_problem(answer, StatusCode::INTERNAL_SERVER_ERROR).await;
        assert_eq!(problem["code"], "outcome_unknown", "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("may or may not be recorded"),
            "{problem}"
        );
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_secs(9),
            "answered after {waited:?}, the appends' deadline is 5 s"
        );
        drop(frozen);
        break key;
    };

    // Woken, the backend may run the statement it had received, or not (the client cannot
    // tell). The client repeats with its key: the one conversation, whichever it was.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let repeat = tokio::time::timeout(Duration::from_secs(15), create(key.clone()))
            .await
            .expect("answered after the wake");
        let created = crate::accounts::expect_json(repeat, StatusCode::CREATED, "the repeat").await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'conversation.created'",
    )
    .bind(&ids[0])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 1);
    app.cleanup().await;
}
