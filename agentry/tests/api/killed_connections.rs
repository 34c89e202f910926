//! Connections Postgres ends on its side (`pg_terminate_backend`, what an administrator, a
//! pooler or a failover does to idle sessions) never reach a user as an error: the next
//! requests are answered as if nothing happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::json;

use crate::accounts::register;
use crate::agents::{create_agent, definition};
use crate::helpers::TestApp;

/// Ends every session the application holds on its database (the main pool's `agentry`, the
/// appends' pool, the connections held by the log's shared read and the standing reads, and
/// the progress listener, all named `agentry-…`); answers how many.
async fn terminate_application_sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE 'agentry%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_right_after_postgres_ended_the_applications_sessions_succeed() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let agent_id = create_agent(&app, &owner.access_token, &definition("Support")).await;
    let api = app.with_bearer(&owner.access_token);
    let agent_path = format!("/v1/agents/{agent_id}");

    for round in 1..=3 {
        // Several requests at once first, so the pool holds several idle connections.
        let warm: Vec<_> = (0..4).map(|_| api.get(&agent_path)).collect();
        for response in futures::future::join_all(warm).await {
            assert_eq!(response.status(), StatusCode::OK);
        }
        let ended = terminate_application_sessions(&app).await;
        assert!(ended > 0, "round {round}: the application's sessions were ended");

        for request in 0..10 {
            let read = api.get(&agent_path).await;
            assert_eq!(
                read.status(),
                StatusCode::OK,
                "round {round}, request {request}: {}",
                read.text().await.unwrap()
            );
            let created = api
                .post_json("/v1/conversations", &json!({ "agent_id": agent_id }))
                .await;
            assert_eq!(
                created.status(),
                StatusCode::CREATED,
                "round {round}, request {request}: {}",
                created.text().await.unwrap()
            );
        }
    }
    app.cleanup().await;
}
