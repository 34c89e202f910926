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
