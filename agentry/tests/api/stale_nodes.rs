//! Two nodes on one database, each with its own aggregate cache: what one node decided must
//! count on the other at once, and authorization must not trust a lagging read model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Account, accept_invitation, add_member, invitation_token, invite, login, register};
use crate::helpers::{TestApp, assert_problem};

async fn set_role(node: &TestApp, token: &str, member: Uuid, role: &str) -> reqwest::Response {
    node.with_bearer(token)
        .request(Method::PATCH, &format!("/v1/members/{member}"))
        .json(&json!({ "role": role }))
        .send()
        .await
        .unwrap()
}

async fn role_in_view(node: &TestApp, owner: &Account, member: Uuid) -> Option<String> {
    let response = node.with_bearer(&owner.access_token).get("/v1/members").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["user_id"] == member.to_string())
        .map(|row| row["role"].as_str().unwrap().to_owned())
}

async fn count_events(node: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&node.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_made_on_one_node_is_not_undone_by_another_nodes_stale_cache() {
    let first = TestApp::spawn().await;
    let second = first.spawn_node().await;
    let ann = register(&first, "ann").await;
    let bob = add_member(&first, &ann, "bob", "admin").await;
    // The second node remembers the organization with bob as admin.
    let warm = set_role(&second, &ann.access_token, bob.user_id, "admin").await;
    assert_eq!(warm.status(), StatusCode::NO_CONTENT);

    let demote = set_role(&first, &ann.access_token, bob.user_id, "member").await;
    assert_eq!(demote.status(), StatusCode::NO_CONTENT);
    let promote_again = set_role(&second, &ann.access_token, bob.user_id, "admin").await;

    assert_eq!(promote_again.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        count_events(&first, "organization.member_role_changed").await,
        2,
        "the second node recorded the promotion instead of answering from its stale cache"
    );
    assert_eq!(
        role_in_view(&first, &ann, bob.user_id).await.as_deref(),
        Some("admin")
    );
    second.cleanup().await;
    first.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_removed_on_one_node_can_join_again_through_another() {
    let first = TestApp::spawn().await;
    let second = first.spawn_node().await;
    let ann = register(&first, "ann").await;
    let bob = add_member(&first, &ann, "bob", "member").await;
    let warm = set_role(&second, &ann.access_token, bob.user_id, "member").await;
    assert_eq!(warm.status(), StatusCode::NO_CONTENT);

    let removed = first
        .with_bearer(&ann.access_token)
        .delete(&format!("/v1/members/{}", bob.user_id))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let invited_again = invite(&second, &ann.access_token, &bob.email, "member").await;
    assert_eq!(
        invited_again.status(),
        StatusCode::ACCEPTED,
        "not 'already a member': {}",
        invited_again.text().await.unwrap()
    );
    let token = invitation_token(&second, &bob.email).await;
    // Bob's token acted for the organization he was removed from: he logs in to his own.
    let bob_token = login(&second, &bob.email, None).await;
    let accepted = accept_invitation(&second, &bob_token, &token).await;
    assert_eq!(
        accepted.status(),
        StatusCode::OK,
        "not 'already a member': {}",
        accepted.text().await.unwrap()
    );
    assert_eq!(
        role_in_view(&first, &ann, bob.user_id).await.as_deref(),
        Some("member")
    );
    second.cleanup().await;
    first.cleanup().await;
}

/// Stops the identity projector for good: an event whose email holds U+0000, written behind
/// the store's back (Postgres `json` takes it, the view's `text` column never will). Every
/// later event stays out of the read model.
async fn stall_identity_view(node: &TestApp) {
    let payload = json!({
        "type": "user.registered",
        "email": "p\u{0}x@example.com",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    });
    let metadata = json!({ "actor": "system", "recorded_at": chrono::Utc::now().to_rfc3339() });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('user', $1, 1, 'user.registered', '1', $2::json, $3::json)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(payload.to_string())
    .bind(metadata.to_string())
    .execute(&node.pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_admin_is_refused_on_every_node_while_the_read_model_lags() {
    let first = TestApp::spawn().await;
    let second = first.spawn_node().await;
    let ann = register(&first, "ann").await;
    let bob = add_member(&first, &ann, "bob", "admin").await;
    let carol = add_member(&first, &ann, "carol", "member").await;
    // While the view is healthy, bob may manage members on both nodes (and the second node now
    // remembers the organization with bob as admin).
    for node in [&first, &second] {
        let allowed = set_role(node, &bob.access_token, carol.user_id, "member").await;
        assert_eq!(allowed.status(), StatusCode::NO_CONTENT, "bob is still an admin");
    }

    stall_identity_view(&first).await;
    let demote = set_role(&first, &ann.access_token, bob.user_id, "member").await;
    assert!(
        matches!(
            demote.status(),
            StatusCode::NO_CONTENT | StatusCode::SERVICE_UNAVAILABLE
        ),
        "the demotion is recorded (its view may not show it yet): {}",
        demote.status()
    );
    assert_eq!(
        role_in_view(&first, &ann, bob.user_id).await.as_deref(),
        Some("admin"),
        "the read model still lags behind the demotion"
    );
    let changes_before = count_events(&first, "organization.member_role_changed").await;

    for (name, node) in [("first", &first), ("second", &second)] {
        let refused = set_role(node, &bob.access_token, carol.user_id, "auditor").await;
        assert_problem(refused, StatusCode::FORBIDDEN).await;
        let removal = node
            .with_bearer(&bob.access_token)
            .delete(&format!("/v1/members/{}", carol.user_id))
            .await;
        assert_eq!(removal.status(), StatusCode::FORBIDDEN, "{name} node");
    }
    assert_eq!(
        count_events(&first, "organization.member_role_changed").await,
        changes_before,
        "nothing the demoted admin asked was recorded"
    );
    assert_eq!(count_events(&first, "organization.member_removed").await, 0);
    second.cleanup().await;
    first.cleanup().await;
}

async fn start_conversation(node: &TestApp, token: &str, agent_id: &str) -> Value {
    let response = node
        .with_bearer(token)
        .post_json("/v1/conversations", &json!({ "agent_id": agent_id }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_started_on_one_node_pins_the_agent_version_another_node_just_made() {
    let first = TestApp::spawn().await;
    let second = first.spawn_node().await;
    let ann = register(&first, "ann").await;
    let agent_id =
        crate::agents::create_agent(&first, &ann.access_token, &crate::agents::definition("Support")).await;
    // The second node remembers the agent at version 1.
    let before = start_conversation(&second, &ann.access_token, &agent_id).await;
    assert_eq!(before["agent_version"], 1, "{before}");

    let updated = first
        .with_bearer(&ann.access_token)
        .request(Method::PATCH, &format!("/v1/agents/{agent_id}"))
        .json(&json!({ "name": "Support v2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    let after = start_conversation(&second, &ann.access_token, &agent_id).await;

    assert_eq!(
        after["agent_version"], 2,
        "the second node pinned the version made on the first, not the one it remembered: {after}"
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT (payload ->> 'agent_version')::bigint FROM events
          WHERE aggregate_type = 'conversation' AND aggregate_id = $1",
    )
    .bind(after["id"].as_str().unwrap())
    .fetch_one(&first.pool)
    .await
    .unwrap();
    assert_eq!(stored, 2, "the recorded conversation holds version 2");
    second.cleanup().await;
    first.cleanup().await;
}
