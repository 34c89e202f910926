//! A client refreshing twice at once with one refresh token (two tabs, a retry after a lost
//! answer) is not a thief: within the grace window both get the same new pair. After the
//! window, presenting a spent token still revokes the session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{assert_code, me, register};
use crate::helpers::TestApp;

async fn refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post_json("/v1/auth/refresh", &json!({ "refresh_token": refresh_token }))
        .await
}

/// The body of a 200 token answer.
async fn pair(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "expected a token pair: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_refreshes_of_one_token_both_get_the_same_pair_which_then_works() {
    let app = TestApp::spawn().await;
    let account = register(&app, "ada").await;

    let (first, second) = tokio::join!(
        refresh(&app, &account.refresh_token),
        refresh(&app, &account.refresh_token)
    );
    let (first, second) = (pair(first).await, pair(second).await);

    assert_eq!(
        first["refresh_token"], second["refresh_token"],
        "{first} {second}"
    );
    assert_eq!(first["access_token"], second["access_token"], "{first} {second}");
    assert_ne!(first["refresh_token"], account.refresh_token.as_str());
    let rotations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'session.refreshed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(rotations, 1, "one rotation, not two");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(me(&app, access).await["user_id"], account.user_id.to_string());
    // The shared successor is the session's current token: it refreshes once more.
    let next = pair(refresh(&app, first["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(
        me(&app, next["access_token"].as_str().unwrap()).await["role"],
        "owner"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_token_presented_after_the_grace_window_still_revokes_the_session() {
    let app = TestApp::spawn_with(|settings| settings.identity.refresh_grace_ms = 300).await;
    let account = register(&app, "ada").await;
    let newer = pair(refresh(&app, &account.refresh_token).await).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let reused = refresh(&app, &account.refresh_token).await;

    assert_code(reused, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let newer = refresh(&app, newer["refresh_token"].as_str().unwrap()).await;
    assert_code(newer, StatusCode::UNAUTHORIZED, "session_ended").await;
    app.cleanup().await;
}
