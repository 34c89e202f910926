//! `/v1/audit`: listing with filters and cursors, the NDJSON export, verification, and who may
//! read them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, add_member, assert_code, create_api_key, expect_json, register};
use crate::helpers::{TestApp, media_type};

/// Waits until the audit sealer has sealed every event in the log.
pub async fn audit_caught_up(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let behind: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM events e
                  WHERE (e.transaction_id, e.position) > coalesce(
                        (SELECT (c.transaction_id, c.position) FROM follower_checkpoints c WHERE c.name = 'audit'),
                        ('0'::xid8, 0)))",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if !behind {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit sealer did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET path` with `token`, expecting `status`; the JSON body.
async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    expect_json(app.with_bearer(token).get(path).await, StatusCode::OK, path).await
}

/// The export's lines, parsed.
pub async fn export(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let response = app
        .with_bearer(token)
        .get(&format!("/v1/audit/export{query}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(media_type(&response).as_deref(), Some("application/x-ndjson"));
    let text = response.text().await.unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "every line ends with a newline"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_owner_reads_who_did_what_from_where_newest_first() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let response = app
        .with_bearer(&owner.access_token)
        .request(Method::POST, "/v1/api-keys")
        .header("user-agent", "audit-check/2")
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let key = expect_json(response, StatusCode::CREATED, "creating a key").await;
    audit_caught_up(&app).await;

    let page = get_json(&app, &owner.access_token, "/v1/audit").await;

    let entries = page["entries"].as_array().unwrap();
    let seqs: Vec<i64> = entries
        .iter()
        .map(|entry| entry["seq"].as_i64().unwrap())
        .collect();
    let mut descending = seqs.clone();
    descending.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seqs, descending, "newest first");
    assert_eq!(*seqs.last().unwrap(), 1);
    let created = entries
        .iter()
        .find(|entry| entry["action"] == "api_key.created")
        .unwrap();
    assert_eq!(created["actor"], format!("user:{}", owner.user_id));
    assert_eq!(created["org_id"], owner.org_id.to_string());
    assert_eq!(created["target_type"], "api_key");
    assert_eq!(created["target_id"], key["id"]);
    assert_eq!(created["request_id"], request_id.as_str());
    assert_eq!(created["client_ip"], "127.0.0.1");
    assert_eq!(created["user_agent"], "audit-check/2");
    assert_eq!(created["hash"].as_str().unwrap().len(), 64);
    assert!(
        created.get("impersonator_id").is_none(),
        "absent, not null: {created}"
    );
    // The registration opens the log of the organization created with it.
    let oldest = actions(entries).into_iter().rev().take(2).collect::<Vec<_>>();
    assert_eq!(oldest, ["email_claim.claimed", "user.registered"]);
    assert!(page.get("next_cursor").is_none(), "{page}");
    app.cleanup().await;
}

#[tokio::test]
async fn filters_combine_and_a_cursor_pages_through_the_same_query() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    for name in ["a", "b", "c"] {
        create_api_key(&app, &owner.access_token, name).await;
    }
    audit_caught_up(&app).await;
    let token = &owner.access_token;

    let by_action = get_json(&app, token, "/v1/audit?action=api_key.created&limit=2").await;
    assert_eq!(
        actions(by_action["entries"].as_array().unwrap()),
        ["api_key.created"; 2]
    );
    let cursor = by_action["next_cursor"].as_str().unwrap();
    let rest = get_json(
        &app,
        token,
        &format!("/v1/audit?action=api_key.created&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(actions(rest["entries"].as_array().unwrap()), ["api_key.created"]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    let actor = format!("user:{}", owner.user_id);
    let by_actor_and_target = get_json(
        &app,
        token,
        &format!("/v1/audit?actor={actor}&target=organization"),
    )
    .await;
    let entries = by_actor_and_target["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|entry| entry["actor"] == actor.as_str() && entry["target_type"] == "organization")
    );
    let one = format!("/v1/audit?target=organization:{}", owner.org_id);
    assert!(
        !get_json(&app, token, &one).await["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let newest = &get_json(&app, token, "/v1/audit?limit=1").await["entries"][0];
    let at = newest["recorded_at"].as_str().unwrap();
    let since = get_json(&app, token, &format!("/v1/audit?from={at}")).await;
    assert_eq!(since["entries"].as_array().unwrap().len(), 1);
    let before = get_json(&app, token, &format!("/v1/audit?to={at}&action=api_key.created")).await;
    assert_eq!(before["entries"].as_array().unwrap().len(), 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_malformed_filter_is_a_400_with_its_own_code_never_an_empty_page() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let other = register(&app, "other").await;
    for name in ["a", "b"] {
        create_api_key(&app, &owner.access_token, name).await;
    }
    audit_caught_up(&app).await;
    let page = get_json(
        &app,
        &owner.access_token,
        "/v1/audit?action=api_key.created&limit=1",
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    let refused = [
        ("/v1/audit?from=yesterday".to_owned(), "invalid_time"),
        ("/v1/audit?to=2026-13-01T00:00:00Z".to_owned(), "invalid_time"),
        (
            "/v1/audit?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z".to_owned(),
            "invalid_time",
        ),
        ("/v1/audit?action=api_key.exploded".to_owned(), "unknown_action"),
        ("/v1/audit?actor=robot:7".to_owned(), "invalid_actor"),
        ("/v1/audit?target=spaceship".to_owned(), "invalid_target"),
        ("/v1/audit?target=run:".to_owned(), "invalid_target"),
        (format!("/v1/audit?cursor={cursor}"), "cursor_mismatch"),
        (
            format!("/v1/audit?action=run.queued&cursor={cursor}"),
            "cursor_mismatch",
        ),
        ("/v1/audit?cursor=garbage".to_owned(), "cursor_mismatch"),
    ];
    for (path, code) in &refused {
        let response = app.with_bearer(&owner.access_token).get(path).await;
        assert_code(response, StatusCode::BAD_REQUEST, code).await;
    }
    // The very cursor, in another organization's hands: refused, not a page of theirs.
    let elsewhere = format!("/v1/audit?action=api_key.created&cursor={cursor}");
    let response = app.with_bearer(&other.access_token).get(&elsewhere).await;
    assert_code(response, StatusCode::BAD_REQUEST, "cursor_mismatch").await;
    app.cleanup().await;
}

#[tokio::test]
async fn only_owners_admins_and_auditors_read_the_audit_log() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "admin", "admin").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;
    let member = add_member(&app, &owner, "member", "member").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    audit_caught_up(&app).await;

    for path in ["/v1/audit", "/v1/audit/export", "/v1/audit/verify"] {
        for allowed in [&owner, &admin, &auditor] {
            let response = app.with_bearer(&allowed.access_token).get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path} as {}", allowed.email);
        }
        for refused in [member.access_token.as_str(), key.key.as_str()] {
            let response = app.with_bearer(refused).get(path).await;
            assert_code(response, StatusCode::FORBIDDEN, "role_not_allowed").await;
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_export_streams_every_entry_with_its_chain_and_resumes_after_an_entry() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    for name in ["a", "b"] {
        create_api_key(&app, &owner.access_token, name).await;
    }
    audit_caught_up(&app).await;

    let lines = export(&app, &owner.access_token, "").await;

    assert!(lines.len() >= 5, "{lines:?}");
    let mut previous = "0".repeat(64);
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], index as i64 + 1);
        assert_eq!(line["org_id"], owner.org_id.to_string());
        assert_eq!(line["prev_hash"], previous.as_str());
        previous = line["hash"].as_str().unwrap().to_owned();
    }
    let resumed = export(&app, &owner.access_token, "?after_seq=3").await;
    assert_eq!(resumed[..], lines[3..]);
    assert!(
        export(&app, &owner.access_token, &format!("?after_seq={}", lines.len()))
            .await
            .is_empty()
    );

    let report = get_json(&app, &owner.access_token, "/v1/audit/verify").await;
    assert_eq!(
        report,
        json!({ "ok": true, "checked": lines.len(), "head": { "seq": lines.len(), "hash": previous } })
    );
    app.cleanup().await;
}

/// Where `reader`'s audit routes show anything of `other`'s organization (its id, its owner's
/// id or email), one line each; and the control, that `other` does see them in its own.
pub async fn audit_shows_nothing_of(app: &TestApp, reader: &Account, other: &Account) -> Vec<String> {
    audit_caught_up(app).await;
    let mut leaks = Vec::new();
    let own = app
        .with_bearer(&other.access_token)
        .get("/v1/audit/export")
        .await
        .text()
        .await
        .unwrap();
    if !own.contains(&other.org_id.to_string()) {
        leaks.push("control: A's own export does not show A's organization".to_owned());
    }
    let secrets = [
        other.org_id.to_string(),
        other.user_id.to_string(),
        other.email.clone(),
    ];
    for path in ["/v1/audit", "/v1/audit/export", "/v1/audit/verify"] {
        let text = app
            .with_bearer(&reader.access_token)
            .get(path)
            .await
            .text()
            .await
            .unwrap();
        for secret in &secrets {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{path} as B shows A's `{secret}`"));
            }
        }
    }
    leaks
}
