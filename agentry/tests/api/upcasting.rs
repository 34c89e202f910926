//! Old event shapes stay readable: a version-1 `organization.created` (`owner`, before it was
//! called `owner_user_id`) written by SQL, as an old release stored it, reads through current
//! code everywhere: the identity views (sign-in, `/v1/me`, members), the write side (a command
//! on the organization), the audit log and its export, and the history route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Account, PASSWORD, ensure_verified, expect_json, invite, me, register};
use crate::audit::{audit_caught_up, export};
use crate::helpers::TestApp;
use crate::history::history;

/// Writes, in one statement (as one command's append), a new organization founded by `founder`
/// as an old release recorded it: `organization.created` version 1, then the founder's
/// `organization.member_added` (a shape that never changed).
async fn insert_version_1_organization(app: &TestApp, founder: &Account) -> Uuid {
    let org_id = Uuid::now_v7();
    let metadata = json!({
        "actor": format!("user:{}", founder.user_id),
        "org_id": org_id,
        "correlation_id": Uuid::now_v7(),
        "request_id": "req-from-an-old-release",
        "recorded_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    let created = json!({ "type": "organization.created", "name": "Old Shape", "owner": founder.user_id });
    let added = json!({ "type": "organization.member_added", "user_id": founder.user_id, "role": "owner" });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('organization', $1, 1, 'organization.created', '1', $2::json, $4::json),
                ('organization', $1, 2, 'organization.member_added', '1', $3::json, $4::json)",
    )
    .bind(org_id.to_string())
    .bind(created.to_string())
    .bind(added.to_string())
    .bind(metadata.to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    org_id
}

/// Signs `account` in to `org_id` once the identity views know the membership.
async fn login_when_projected(app: &TestApp, account: &Account, org_id: Uuid) -> String {
    let started = Instant::now();
    loop {
        let body = json!({ "email": account.email, "password": PASSWORD, "org_id": org_id });
        let response = app.post_json("/v1/auth/login", &body).await;
        if response.status() == StatusCode::OK {
            let body: Value = response.json().await.unwrap();
            return body["access_token"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the founder of a version-1 organization cannot sign in to it: {}",
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_version_1_event_written_by_sql_reads_through_current_code_everywhere() {
    let app = TestApp::spawn().await;
    let founder = register(&app, "founder").await;
    let org_id = insert_version_1_organization(&app, &founder).await;

    // The identity views: the founder owns it.
    let token = login_when_projected(&app, &founder, org_id).await;
    let caller = me(&app, &token).await;
    assert_eq!(caller["org_id"], org_id.to_string(), "{caller}");
    assert_eq!(caller["role"], "owner", "{caller}");
    let members = expect_json(
        app.with_bearer(&token).get("/v1/members").await,
        StatusCode::OK,
        "members",
    )
    .await;
    assert_eq!(
        members["members"][0]["user_id"],
        founder.user_id.to_string(),
        "{members}"
    );
    assert_eq!(members["members"][0]["role"], "owner", "{members}");

    // The write side folds it too: the owner may invite.
    let in_org = Account {
        access_token: token.clone(),
        org_id,
        ..founder.clone()
    };
    ensure_verified(&app, &in_org).await;
    let invited = invite(&app, &token, "newcomer@example.com", "member").await;
    assert_eq!(invited.status(), StatusCode::ACCEPTED);

    // The audit log: the event opens the organization's chain, which verifies.
    audit_caught_up(&app).await;
    let lines = export(&app, &token, "").await;
    let created = lines
        .iter()
        .find(|line| line["action"] == "organization.created")
        .unwrap_or_else(|| panic!("the export has the version-1 event: {lines:?}"));
    assert_eq!(created["actor"], format!("user:{}", founder.user_id));
    assert_eq!(created["target_id"], org_id.to_string());
    assert_eq!(created["request_id"], "req-from-an-old-release");
    let verified = expect_json(
        app.with_bearer(&token).get("/v1/audit/verify").await,
        StatusCode::OK,
        "verify",
    )
    .await;
    assert_eq!(verified["ok"], true, "{verified}");

    // The history: in the current shape, at the current version.
    let response = history(&app, &token, "organization", &org_id.to_string(), "").await;
    let page = expect_json(response, StatusCode::OK, "history").await;
    let first = &page["events"][0];
    assert_eq!(first["type"], "organization.created", "{page}");
    assert_eq!(first["version"], "2", "{first}");
    assert_eq!(
        first["data"]["owner_user_id"],
        founder.user_id.to_string(),
        "{first}"
    );
    assert_eq!(first["data"]["name"], "Old Shape", "{first}");
    assert!(first["data"].get("owner").is_none(), "{first}");
    app.cleanup().await;
}
