//! Plan limits (quotas) over HTTP: a platform administrator sets them, members read them with
//! their use, and they refuse work: the month's tokens (402), concurrent runs (429, exact
//! under racing starts), requests per minute (429 with `Retry-After`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Datelike, Months, Utc};
use futures::future::join_all;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{
    PlatformAdmin, add_member, assert_code, create_api_key, event_metadata, expect_json, platform_admin,
    register,
};
use crate::audit::audit_caught_up;
use crate::helpers::TestApp;
use crate::runs::{conversation, echo_agent, run_reaching, start_run};

/// `PUT /v1/admin/orgs/{org_id}/quotas` with `token`.
async fn set_quotas(app: &TestApp, token: &str, org_id: Uuid, body: &Value) -> Response {
    app.with_bearer(token)
        .request(Method::PUT, &format!("/v1/admin/orgs/{org_id}/quotas"))
        .json(body)
        .send()
        .await
        .expect("PUT request")
}

/// Sets `body` as the organization's limits, which must answer 200 with them.
async fn limit(app: &TestApp, admin: &PlatformAdmin, org_id: Uuid, body: Value) -> Value {
    let response = set_quotas(app, &admin.access_token, org_id, &body).await;
    let set = expect_json(response, StatusCode::OK, "set quotas").await;
    assert_eq!(set, body, "the answer is the limits in force");
    set
}

/// `GET /v1/billing/quotas` with `token`, which must answer 200.
async fn quotas(app: &TestApp, token: &str) -> Value {
    let response = app.with_bearer(token).get("/v1/billing/quotas").await;
    expect_json(response, StatusCode::OK, "get quotas").await
}

/// The start of next month (UTC), as the API writes times.
fn next_month() -> DateTime<Utc> {
    let today = Utc::now().date_naive();
    let first = today.with_day(1).unwrap();
    (first + Months::new(1)).and_hms_opt(0, 0, 0).unwrap().and_utc()
}

fn time_at(body: &Value, field: &str) -> DateTime<Utc> {
    body[field]
        .as_str()
        .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
        .unwrap_or_else(|| panic!("`{field}` is not an RFC 3339 time: {body}"))
        .with_timezone(&Utc)
}

async fn quota_events(app: &TestApp) -> Vec<Value> {
    event_metadata(app, "organization.quotas_set").await
}

/// The `Retry-After` header, which must be a number of seconds.
fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After: {:?}", response.headers()))
}

#[tokio::test]
async fn an_organization_without_limits_is_unlimited_and_every_member_reads_its_use() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;

    for reader in [&owner, &auditor] {
        let read = quotas(&app, &reader.access_token).await;
        for name in ["tokens_per_month", "concurrent_runs", "requests_per_minute"] {
            assert!(read[name].get("limit").is_none(), "unlimited: {read}");
        }
        assert_eq!(read["tokens_per_month"]["used"], 0, "{read}");
        assert_eq!(time_at(&read["tokens_per_month"], "resets_at"), next_month());
        assert_eq!(read["concurrent_runs"]["used"], 0, "{read}");
        assert_eq!(read["requests_per_minute"]["window_seconds"], 60, "{read}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_platform_administrator_sets_limits_recorded_and_audited_and_nobody_else_may() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;

    let limits = json!({ "tokens_per_month": 50_000, "concurrent_runs": 2, "requests_per_minute": 600 });
    limit(&app, &admin, a.org_id, limits.clone()).await;

    let read = quotas(&app, &a.access_token).await;
    assert_eq!(read["tokens_per_month"]["limit"], 50_000, "{read}");
    assert_eq!(read["concurrent_runs"]["limit"], 2, "{read}");
    assert_eq!(read["requests_per_minute"]["limit"], 600, "{read}");
    let recorded = quota_events(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["actor"], format!("user:{}", admin.user_id));
    assert_eq!(recorded[0]["org_id"], a.org_id.to_string());
    audit_caught_up(&app).await;
    let audit = expect_json(
        app.with_bearer(&a.access_token)
            .get("/v1/audit?action=organization.quotas_set")
            .await,
        StatusCode::OK,
        "audit",
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], format!("user:{}", admin.user_id), "{audit}");

    // The same limits again record nothing; leaving a limit out makes it unlimited.
    limit(&app, &admin, a.org_id, limits).await;
    assert_eq!(quota_events(&app).await.len(), 1);
    limit(&app, &admin, a.org_id, json!({ "concurrent_runs": 2 })).await;
    let read = quotas(&app, &a.access_token).await;
    assert!(read["tokens_per_month"].get("limit").is_none(), "{read}");
    assert_eq!(read["concurrent_runs"]["limit"], 2, "{read}");

    // An organization's owner may not set limits, neither on their own organization nor on
    // another's: refused, and nothing written.
    let before = app.event_count().await;
    let own = set_quotas(
        &app,
        &a.access_token,
        a.org_id,
        &json!({ "concurrent_runs": 100 }),
    )
    .await;
    assert_code(own, StatusCode::FORBIDDEN, "platform_admin_required").await;
    let other = set_quotas(&app, &a.access_token, b.org_id, &json!({ "concurrent_runs": 1 })).await;
    assert_code(other, StatusCode::FORBIDDEN, "platform_admin_required").await;
    assert_eq!(app.event_count().await, before);
    let b_read = quotas(&app, &b.access_token).await;
    assert!(b_read["concurrent_runs"].get("limit").is_none(), "{b_read}");
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_organization_is_404_and_bad_limits_422_with_their_codes_writing_nothing() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    limit(&app, &admin, owner.org_id, json!({ "concurrent_runs": 5 })).await;
    let before = app.event_count().await;

    let unknown = set_quotas(
        &app,
        &admin.access_token,
        Uuid::now_v7(),
        &json!({ "concurrent_runs": 5 }),
    )
    .await;
    assert_code(unknown, StatusCode::NOT_FOUND, "organization_not_found").await;
    let refusals = [
        (json!({ "tokens_per_month": 0 }), "tokens_per_month_out_of_range"),
        (
            json!({ "tokens_per_month": 1_000_000_000_001_u64 }),
            "tokens_per_month_out_of_range",
        ),
        (json!({ "concurrent_runs": 0 }), "concurrent_runs_out_of_range"),
        (
            json!({ "concurrent_runs": 10_001 }),
            "concurrent_runs_out_of_range",
        ),
        (
            json!({ "requests_per_minute": 0 }),
            "requests_per_minute_out_of_range",
        ),
        (
            json!({ "requests_per_minute": 1_000_001 }),
            "requests_per_minute_out_of_range",
        ),
    ];
    for (body, code) in refusals {
        let response = set_quotas(&app, &admin.access_token, owner.org_id, &body).await;
        assert_code(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let null = set_quotas(
        &app,
        &admin.access_token,
        owner.org_id,
        &json!({ "concurrent_runs": null }),
    )
    .await;
    assert_code(null, StatusCode::BAD_REQUEST, "null_value").await;

    assert_eq!(app.event_count().await, before);
    let read = quotas(&app, &owner.access_token).await;
    assert_eq!(read["concurrent_runs"]["limit"], 5, "{read}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_run_started_once_the_months_tokens_are_used_gets_402_naming_the_limit_and_its_reset() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 5).await;
    let conversation_id = conversation(&app, token, &agent).await;
    limit(&app, &admin, owner.org_id, json!({ "tokens_per_month": 5 })).await;

    // Under the limit a run starts (and, as the limit stops new runs only, finishes past it:
    // three words in, three out).
    let run_id = start_run(&app, token, &conversation_id, "one two three").await;
    run_reaching(&app, token, &run_id, "completed").await;
    let read = quotas(&app, token).await;
    assert_eq!(read["tokens_per_month"]["used"], 6, "{read}");
    assert_eq!(read["tokens_per_month"]["limit"], 5, "{read}");

    let before = app.event_count().await;
    let refused = app
        .with_bearer(token)
        .post_json(
            &format!("/v1/conversations/{conversation_id}/runs"),
            &json!({ "input": "again" }),
        )
        .await;
    let problem = assert_code(refused, StatusCode::PAYMENT_REQUIRED, "token_quota_exceeded").await;
    assert_eq!(problem["quota"]["name"], "tokens_per_month", "{problem}");
    assert_eq!(problem["quota"]["limit"], 5, "{problem}");
    assert_eq!(problem["quota"]["used"], 6, "{problem}");
    assert_eq!(time_at(&problem["quota"], "resets_at"), next_month(), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("5 tokens per month"), "{detail}");
    assert_eq!(app.event_count().await, before, "nothing recorded");

    // A larger plan lets runs start again.
    limit(&app, &admin, owner.org_id, json!({ "tokens_per_month": 1_000 })).await;
    start_run(&app, token, &conversation_id, "again").await;
    app.cleanup().await;
}

/// Starts a run awaiting approval (it never ends by itself) on each conversation at once.
async fn start_all(app: &TestApp, token: &str, conversations: &[String]) -> Vec<(StatusCode, u64, Value)> {
    start_on_nodes(&[app], token, conversations).await
}

/// [`start_all`], the starts spread over `nodes` in turn.
async fn start_on_nodes(
    nodes: &[&TestApp],
    token: &str,
    conversations: &[String],
) -> Vec<(StatusCode, u64, Value)> {
    let input = r#"/tool send_mail {"to": "ops@example.com"}"#;
    let starts = conversations.iter().enumerate().map(|(index, id)| async move {
        let response = nodes[index % nodes.len()]
            .with_bearer(token)
            .post_json(
                &format!("/v1/conversations/{id}/runs"),
                &json!({ "input": input }),
            )
            .await;
        let status = response.status();
        let wait = if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after(&response)
        } else {
            0
        };
        (status, wait, response.json::<Value>().await.unwrap())
    });
    join_all(starts).await
}

#[tokio::test]
async fn racing_starts_over_a_concurrent_run_limit_give_exactly_the_limit() {
    const LIMIT: usize = 3;
    const EXTRA: usize = 5;
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 5).await;
    let mut conversations = Vec::new();
    for _ in 0..LIMIT + EXTRA {
        conversations.push(conversation(&app, token, &agent).await);
    }
    limit(&app, &admin, owner.org_id, json!({ "concurrent_runs": LIMIT })).await;

    let answers = start_all(&app, token, &conversations).await;

    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::ACCEPTED)
        .map(|(_, _, body)| body)
        .collect();
    let refused: Vec<&(StatusCode, u64, Value)> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        (accepted.len(), refused.len()),
        (LIMIT, EXTRA),
        "exactly the limit accepted: {answers:?}"
    );
    for (_, wait, problem) in refused {
        assert_eq!(problem["code"], "concurrent_run_limit", "{problem}");
        assert_eq!(problem["quota"]["name"], "concurrent_runs", "{problem}");
        assert_eq!(problem["quota"]["limit"], LIMIT, "{problem}");
        assert_eq!(problem["quota"]["used"], LIMIT, "{problem}");
        assert!((1..=10).contains(wait), "Retry-After {wait}");
    }
    let run_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'run.queued'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(run_rows, LIMIT as i64, "only the accepted runs were recorded");
    assert_eq!(quotas(&app, token).await["concurrent_runs"]["used"], LIMIT);

    // A run ending frees its place at once: the next start counts it as ended.
    let first = accepted[0]["run_id"].as_str().unwrap();
    let cancelled = app
        .with_bearer(token)
        .post_json(&format!("/v1/runs/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    run_reaching(&app, token, first, "cancelled").await;
    let free: Vec<String> = conversations
        .iter()
        .zip(&answers)
        .filter(|(_, (status, _, _))| *status != StatusCode::ACCEPTED)
        .map(|(id, _)| id.clone())
        .collect();
    let again = start_all(&app, token, &free[..2]).await;
    let statuses: Vec<StatusCode> = again.iter().map(|(status, _, _)| *status).collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS],
        "one place freed, one run in: {again:?}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn racing_starts_on_two_nodes_give_exactly_the_limit() {
    // Odd, so that two nodes counting at once meet with one place left.
    const LIMIT: usize = 3;
    const EXTRA: usize = 5;
    let app = TestApp::spawn().await;
    let node = app.spawn_node().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    let token = owner.access_token.as_str();
    let agent = echo_agent(&app, token, 5).await;
    let mut conversations = Vec::new();
    for _ in 0..LIMIT + EXTRA {
        conversations.push(conversation(&app, token, &agent).await);
    }
    limit(&app, &admin, owner.org_id, json!({ "concurrent_runs": LIMIT })).await;

    let answers = start_on_nodes(&[&app, &node], token, &conversations).await;

    let count = |wanted: StatusCode| answers.iter().filter(|(status, _, _)| *status == wanted).count();
    assert_eq!(
        (count(StatusCode::ACCEPTED), count(StatusCode::TOO_MANY_REQUESTS)),
        (LIMIT, EXTRA),
        "exactly the limit accepted across both nodes: {answers:?}"
    );
    node.cleanup().await;
    app.cleanup().await;
}

/// `/v1/me` with `token`.
async fn me_answers(app: &TestApp, token: &str) -> Response {
    app.with_bearer(token).get("/v1/me").await
}

#[tokio::test]
async fn an_organizations_requests_per_minute_are_shared_by_its_credentials_and_429_past_them() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;
    // Set before A's first authenticated request, so no node has read A's plan yet.
    limit(&app, &admin, a.org_id, json!({ "requests_per_minute": 4 })).await;

    let key = create_api_key(&app, &a.access_token, "ci").await;
    for (token, who) in [(&a.access_token, "owner"), (&key.key, "key"), (&key.key, "key")] {
        let response = me_answers(&app, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{who} within the limit");
    }
    for token in [&a.access_token, &key.key] {
        let response = me_answers(&app, token).await;
        let wait = retry_after(&response);
        let problem = assert_code(
            response,
            StatusCode::TOO_MANY_REQUESTS,
            "organization_rate_limited",
        )
        .await;
        assert!((1..=15).contains(&wait), "a request back every 15 s: {wait}");
        assert_eq!(problem["quota"]["name"], "requests_per_minute", "{problem}");
        assert_eq!(problem["quota"]["limit"], 4, "{problem}");
        let resets_at = time_at(&problem["quota"], "resets_at");
        assert!(resets_at > Utc::now(), "{problem}");
    }
    let other = me_answers(&app, &b.access_token).await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another organization has its own bucket"
    );
    app.cleanup().await;
}
