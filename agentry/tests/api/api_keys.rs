//! API keys: created with a name and shown once, stored only as a hash, recognisable by a
//! prefix, acting for their organization, with a last-used time, and revocable with effect on
//! the next request on every node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{ApiKey, create_api_key, event_metadata, expect_json, me, register};
use crate::helpers::{TestApp, assert_problem};

async fn list_keys(app: &TestApp, token: &str) -> Value {
    let response = app.with_bearer(token).get("/v1/api-keys").await;
    expect_json(response, StatusCode::OK, "GET /v1/api-keys").await
}

/// The listed entry of `key`.
fn entry<'a>(list: &'a Value, key: &ApiKey) -> &'a Value {
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key.id.to_string())
        .unwrap_or_else(|| panic!("key {} is not listed: {list}", key.id))
}

#[tokio::test]
async fn a_new_key_is_shown_once_with_its_prefix_and_listed_without_its_secret() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;

    let response = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/api-keys", &json!({ "name": "ci deploys" }))
        .await;
    let created = expect_json(response, StatusCode::CREATED, "POST /v1/api-keys").await;

    let key = created["key"].as_str().unwrap();
    let prefix = created["prefix"].as_str().unwrap();
    assert!(!prefix.is_empty(), "{created}");
    let secret = key
        .strip_prefix(&format!("agk_{prefix}_"))
        .unwrap_or_else(|| panic!("the key is agk_<prefix>_<secret>: {created}"));
    assert!(secret.len() >= 16, "the secret part is substantial: {created}");

    let list = list_keys(&app, &owner.access_token).await;
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{list}");
    let listed = &keys[0];
    assert_eq!(listed["id"], created["id"], "{list}");
    assert_eq!(listed["name"], "ci deploys", "{list}");
    assert_eq!(listed["prefix"], prefix, "{list}");
    assert!(listed["created_at"].is_string(), "{list}");
    assert!(listed["last_used_at"].is_null(), "{list}");
    assert!(listed["revoked_at"].is_null(), "{list}");
    assert!(listed.get("key").is_none(), "{list}");
    assert!(
        !list.to_string().contains(secret),
        "the list shows the secret: {list}"
    );

    // Shown once: the secret is kept nowhere, neither in the events nor in the read model.
    let stored: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE strpos(payload::text || metadata::text, $1) > 0)
              + (SELECT count(*) FROM api_keys WHERE strpos(row_to_json(api_keys)::text, $1) > 0)",
    )
    .bind(secret)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the key's secret is stored somewhere");
    app.cleanup().await;
}

#[tokio::test]
async fn a_key_acts_for_its_organization_as_itself_and_its_use_is_recorded() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;

    let itself = me(&app, &key.key).await;

    assert_eq!(itself["org_id"], owner.org_id.to_string(), "{itself}");
    assert_eq!(itself["api_key_id"], key.id.to_string(), "{itself}");
    assert_eq!(itself["role"], "member", "{itself}");
    assert!(itself.get("user_id").is_none(), "{itself}");
    let list = list_keys(&app, &owner.access_token).await;
    let used = entry(&list, &key)["last_used_at"].as_str();
    let used: chrono::DateTime<chrono::Utc> = used
        .and_then(|time| time.parse().ok())
        .unwrap_or_else(|| panic!("last_used_at is set after use: {list}"));
    let age = chrono::Utc::now() - used;
    assert!(age.num_seconds().abs() < 60, "last_used_at is recent: {used}");

    // A key acts as `member`: it cannot mint more keys.
    let before = app.event_count().await;
    let response = app
        .with_bearer(&key.key)
        .post_json("/v1/api-keys", &json!({ "name": "child" }))
        .await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn a_revoked_key_gets_401_at_once_on_every_node() {
    let app = TestApp::spawn().await;
    let node = app.spawn_node().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    me(&app, &key.key).await;
    me(&node, &key.key).await;

    let response = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for (which, server) in [("this node", &app), ("the other node", &node)] {
        let response = server.with_bearer(&key.key).get("/v1/me").await;
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("revoked"),
            "{which} says the key was revoked: {problem}"
        );
    }
    let list = list_keys(&app, &owner.access_token).await;
    assert!(entry(&list, &key)["revoked_at"].is_string(), "{list}");

    // Revoking it again is refused as a conflict with the key's state, and records nothing.
    let before = app.event_count().await;
    let again = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await;
    let problem = assert_problem(again, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "api_key_already_revoked", "{problem}");
    assert_eq!(app.event_count().await, before);
    node.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_or_tampered_key_gets_401_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    let mut tampered = key.key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });

    let before = app.event_count().await;
    for bearer in [
        tampered,
        format!("agk_{}_", key.prefix),
        "agk_000000000000_nothing-here".to_owned(),
        "agk_".to_owned(),
    ] {
        let response = app.with_bearer(&bearer).get("/v1/me").await;
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            !problem.to_string().contains(&owner.org_id.to_string()),
            "{bearer}: {problem}"
        );
    }
    assert_eq!(app.event_count().await, before);
    let list = list_keys(&app, &owner.access_token).await;
    assert!(entry(&list, &key)["last_used_at"].is_null(), "{list}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_key_creation_event_records_the_owner_and_the_request() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;

    let response = app
        .with_bearer(&owner.access_token)
        .request(Method::POST, "/v1/api-keys")
        .header("user-agent", "audit-check/1.0 (tests)")
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("an x-request-id header")
        .to_owned();
    expect_json(response, StatusCode::CREATED, "POST /v1/api-keys").await;

    let metadata = event_metadata(&app, "api_key.created").await;
    assert_eq!(metadata.len(), 1, "{metadata:?}");
    let metadata = &metadata[0];
    assert_eq!(metadata["actor"], format!("user:{}", owner.user_id), "{metadata}");
    assert_eq!(metadata["request_id"], request_id, "{metadata}");
    assert_eq!(metadata["org_id"], owner.org_id.to_string(), "{metadata}");
    assert_eq!(metadata["client_ip"], "127.0.0.1", "{metadata}");
    assert_eq!(metadata["user_agent"], "audit-check/1.0 (tests)", "{metadata}");
    assert!(metadata.get("impersonator_id").is_none(), "{metadata}");
    app.cleanup().await;
}

/// Behind a proxy, the address events record is the one the trusted header's last entry names
/// (what the proxy saw), never an earlier entry the client wrote itself.
#[tokio::test]
async fn behind_a_trusted_proxy_events_record_the_address_it_names() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_in_limits.trusted_proxy_header = Some("x-forwarded-for".to_owned());
    })
    .await;
    let owner = register(&app, "owner").await;

    let response = app
        .with_bearer(&owner.access_token)
        .request(Method::POST, "/v1/api-keys")
        .header("x-forwarded-for", "6.6.6.6, 2001:db8::7")
        .json(&json!({ "name": "proxied" }))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::CREATED, "POST /v1/api-keys").await;

    let metadata = event_metadata(&app, "api_key.created").await;
    assert_eq!(metadata[0]["client_ip"], "2001:db8::7", "{metadata:?}");
    assert!(metadata[0].get("user_agent").is_none(), "{metadata:?}");
    app.cleanup().await;
}
