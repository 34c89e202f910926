//! Roles: `member`s use the product but manage neither members nor API keys; `auditor`s read
//! but never write; `admin`s manage members except owners; an organization always keeps an
//! owner; and a change of role or membership applies to the very next request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{Account, add_member, create_api_key, expect_json, join_org, me, register};
use crate::helpers::{TestApp, assert_problem, check_problem};

/// One request a role must be refused.
struct Refused {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Refused {
    fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            path: path.into(),
            body,
        }
    }
}

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<&Value>) -> Response {
    let mut request = app.with_bearer(token).request(method, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// Sends every case with `token`; each must answer a 403 problem and leave the event store as
/// it was. Reports every mismatch at once.
async fn assert_all_forbidden(app: &TestApp, token: &str, cases: Vec<Refused>) {
    let mut mismatches = Vec::new();
    for case in cases {
        let label = format!("{} {}", case.method, case.path);
        let before = app.event_count().await;
        let response = send(app, token, case.method, &case.path, case.body.as_ref()).await;
        if let Err(mismatch) = check_problem(response, StatusCode::FORBIDDEN).await {
            mismatches.push(format!("{label}: {mismatch}"));
        }
        let after = app.event_count().await;
        if after != before {
            mismatches.push(format!("{label}: events went from {before} to {after}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} case(s) failed:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// Every write on members and keys, aimed at real targets so that only the role refuses it:
/// `newcomer` is registered but not yet a member, `colleague` is a member, `key` is a live key.
fn member_and_key_writes(newcomer: &Account, colleague: Uuid, key: Uuid) -> Vec<Refused> {
    vec![
        Refused::new(
            Method::POST,
            "/v1/members",
            Some(json!({ "email": newcomer.email, "role": "member" })),
        ),
        Refused::new(
            Method::PATCH,
            format!("/v1/members/{colleague}"),
            Some(json!({ "role": "auditor" })),
        ),
        Refused::new(Method::DELETE, format!("/v1/members/{colleague}"), None),
        Refused::new(Method::POST, "/v1/api-keys", Some(json!({ "name": "mine" }))),
        Refused::new(Method::DELETE, format!("/v1/api-keys/{key}"), None),
    ]
}

fn member_ids(list: &Value) -> Vec<Uuid> {
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_member_can_neither_manage_members_nor_api_keys() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let member = add_member(&app, &owner, "mia", "member").await;
    let colleague = add_member(&app, &owner, "tom", "member").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    let newcomer = register(&app, "nia").await;

    let mut cases = member_and_key_writes(&newcomer, colleague.user_id, key.id);
    cases.push(Refused::new(Method::GET, "/v1/api-keys", None));
    assert_all_forbidden(&app, &member.access_token, cases).await;

    // Nothing happened: the colleague is still a member, the key still works.
    let members = app.with_bearer(&member.access_token).get("/v1/members").await;
    let members = expect_json(members, StatusCode::OK, "GET /v1/members").await;
    assert!(member_ids(&members).contains(&colleague.user_id), "{members}");
    assert!(!member_ids(&members).contains(&newcomer.user_id), "{members}");
    me(&app, &key.key).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_auditor_cannot_write_but_reads_members_and_itself() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let auditor = add_member(&app, &owner, "audrey", "auditor").await;
    let colleague = add_member(&app, &owner, "tom", "member").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;
    let newcomer = register(&app, "nia").await;

    let cases = member_and_key_writes(&newcomer, colleague.user_id, key.id);
    assert_all_forbidden(&app, &auditor.access_token, cases).await;

    let members = app.with_bearer(&auditor.access_token).get("/v1/members").await;
    let members = expect_json(members, StatusCode::OK, "GET /v1/members").await;
    let mut listed = member_ids(&members);
    listed.sort();
    let mut expected = vec![owner.user_id, auditor.user_id, colleague.user_id];
    expected.sort();
    assert_eq!(listed, expected, "{members}");
    let itself = me(&app, &auditor.access_token).await;
    assert_eq!(itself["role"], "auditor", "{itself}");
    assert_eq!(itself["user_id"], auditor.user_id.to_string(), "{itself}");
    assert_eq!(itself["org_id"], owner.org_id.to_string(), "{itself}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_admin_adds_members_but_cannot_grant_owner_or_touch_the_owner() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "adam", "admin").await;
    let newcomer = register(&app, "nia").await;
    let other = register(&app, "oscar").await;

    let newcomer = join_org(&app, &admin, &newcomer, "member").await;
    assert_eq!(me(&app, &newcomer.access_token).await["role"], "member");

    let newcomer_id = newcomer.user_id;
    let owner_id = owner.user_id;
    assert_all_forbidden(
        &app,
        &admin.access_token,
        vec![
            Refused::new(
                Method::POST,
                "/v1/members",
                Some(json!({ "email": other.email, "role": "owner" })),
            ),
            Refused::new(
                Method::PATCH,
                format!("/v1/members/{newcomer_id}"),
                Some(json!({ "role": "owner" })),
            ),
            Refused::new(
                Method::PATCH,
                format!("/v1/members/{}", admin.user_id),
                Some(json!({ "role": "owner" })),
            ),
            Refused::new(
                Method::PATCH,
                format!("/v1/members/{owner_id}"),
                Some(json!({ "role": "member" })),
            ),
            Refused::new(Method::DELETE, format!("/v1/members/{owner_id}"), None),
        ],
    )
    .await;

    assert_eq!(me(&app, &owner.access_token).await["role"], "owner");
    assert_eq!(me(&app, &admin.access_token).await["role"], "admin");
    app.cleanup().await;
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted_until_there_is_another() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let second = add_member(&app, &owner, "sam", "admin").await;
    let owner_client = app.with_bearer(&owner.access_token);
    let own_path = format!("/v1/members/{}", owner.user_id);

    for (method, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({ "role": "admin" }))),
    ] {
        let before = app.event_count().await;
        let response = send(
            &app,
            &owner.access_token,
            method.clone(),
            &own_path,
            body.as_ref(),
        )
        .await;
        let problem = assert_problem(response, StatusCode::CONFLICT).await;
        assert_eq!(problem["code"], "last_owner", "{method}: {problem}");
        assert_eq!(app.event_count().await, before, "{method} changed nothing");
    }
    assert_eq!(me(&app, &owner.access_token).await["role"], "owner");

    let promote = owner_client
        .request(Method::PATCH, &format!("/v1/members/{}", second.user_id))
        .json(&json!({ "role": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(promote.status(), StatusCode::NO_CONTENT);
    let demote = owner_client
        .request(Method::PATCH, &own_path)
        .json(&json!({ "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), StatusCode::NO_CONTENT);

    assert_eq!(me(&app, &owner.access_token).await["role"], "admin");
    assert_eq!(me(&app, &second.access_token).await["role"], "owner");
    app.cleanup().await;
}

#[tokio::test]
async fn a_role_change_applies_to_the_members_next_request_with_the_same_token() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "adam", "admin").await;
    create_api_key(&app, &admin.access_token, "while admin").await;

    let demote = app
        .with_bearer(&owner.access_token)
        .request(Method::PATCH, &format!("/v1/members/{}", admin.user_id))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), StatusCode::NO_CONTENT);

    let before = app.event_count().await;
    let response = app
        .with_bearer(&admin.access_token)
        .post_json("/v1/api-keys", &json!({ "name": "after demotion" }))
        .await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.event_count().await, before);
    assert_eq!(me(&app, &admin.access_token).await["role"], "member");
    app.cleanup().await;
}

#[tokio::test]
async fn a_removed_members_token_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let member = add_member(&app, &owner, "mia", "member").await;
    me(&app, &member.access_token).await;

    let removed = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/members/{}", member.user_id))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);

    for path in ["/v1/me", "/v1/members"] {
        let response = app.with_bearer(&member.access_token).get(path).await;
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            !problem.to_string().contains(&owner.email),
            "{path} shows nothing of the organization: {problem}"
        );
    }
    let members = expect_json(
        app.with_bearer(&owner.access_token).get("/v1/members").await,
        StatusCode::OK,
        "GET /v1/members",
    )
    .await;
    assert_eq!(member_ids(&members), [owner.user_id], "{members}");
    app.cleanup().await;
}

/// Concurrent requests share their standing reads (one query for every caller waiting at that
/// moment): each must still get its own caller's standing, never a neighbour's, and a removed
/// member among them is refused every time.
#[tokio::test]
async fn concurrent_callers_each_get_their_own_standing() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "ada", "admin").await;
    let member = add_member(&app, &owner, "mia", "member").await;
    let auditor = add_member(&app, &owner, "aud", "auditor").await;
    let removed = add_member(&app, &owner, "rem", "member").await;
    let other_org = register(&app, "other").await;
    let response = app
        .with_bearer(&owner.access_token)
        .delete(&format!("/v1/members/{}", removed.user_id))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let callers = [
        (&owner, Some("owner")),
        (&admin, Some("admin")),
        (&member, Some("member")),
        (&auditor, Some("auditor")),
        (&other_org, Some("owner")),
        (&removed, None),
    ];

    let requests = (0..20).flat_map(|_| callers.iter()).map(|(account, role)| {
        let app = &app;
        async move {
            let response = app.with_bearer(&account.access_token).get("/v1/me").await;
            (account, *role, response)
        }
    });
    let answers = futures::future::join_all(requests).await;

    let mut mismatches = Vec::new();
    for (account, role, response) in answers {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let expected_status = if role.is_some() {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        let own = role.is_none()
            || (body["user_id"] == account.user_id.to_string()
                && body["org_id"] == account.org_id.to_string()
                && body["role"] == role.unwrap_or_default());
        if status != expected_status || !own {
            mismatches.push(format!("{} ({role:?}): {status} {body}", account.email));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    app.cleanup().await;
}
