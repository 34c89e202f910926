//! The credit ledger over HTTP: the signup grant, who reads credits, the balance at a past
//! moment, administrators' refunds, and reservations racing against Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use commands::billing::{BillingConfig, BillingService, ReserveOutcome};
use eventstore::{CommandContext, EventStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{
    Account, add_member, create_api_key, event_metadata, expect_json, platform_admin, register,
};
use crate::helpers::{TestApp, assert_problem};

pub async fn balance(app: &TestApp, token: &str) -> Value {
    let response = app.with_bearer(token).get("/v1/billing/balance").await;
    expect_json(response, StatusCode::OK, "balance").await
}

pub async fn ledger(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .with_bearer(token)
        .get(&format!("/v1/billing/ledger{query}"))
        .await;
    expect_json(response, StatusCode::OK, "ledger").await
}

/// Every entry of the ledger, newest first, following the cursor through pages of 7; checks
/// the pages neither skip nor repeat an entry.
pub async fn all_entries(app: &TestApp, token: &str) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut query = "?limit=7".to_owned();
    loop {
        let page = ledger(app, token, &query).await;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(cursor) => query = format!("?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let sequences: Vec<i64> = entries
        .iter()
        .map(|entry| entry["sequence"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=sequences.len() as i64).rev().collect();
    assert_eq!(sequences, expected, "newest first, every entry once");
    entries
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|entry| entry["kind"] == kind).collect()
}

async fn organization_created_event(app: &TestApp, org_id: Uuid) -> Uuid {
    sqlx::query_scalar("SELECT event_id FROM events WHERE aggregate_type = 'organization' AND aggregate_id = $1 AND sequence = 1")
        .bind(org_id.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_organization_starts_with_the_signup_grant_tied_to_its_creation() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;

    let held = balance(&app, &owner.access_token).await;
    assert_eq!(
        held,
        json!({ "credits": 1_000_000, "reserved": 0, "available": 1_000_000 })
    );

    let entries = all_entries(&app, &owner.access_token).await;
    let created = organization_created_event(&app, owner.org_id).await.to_string();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (grant, opened) = (&entries[0], &entries[1]);
    assert_eq!(opened["kind"], "opened");
    assert_eq!(opened["sequence"], 1);
    assert_eq!(grant["kind"], "granted");
    assert_eq!(grant["source"], "signup");
    assert_eq!(grant["credits"], 1_000_000);
    assert_eq!(grant["balance_change"], 1_000_000);
    assert_eq!(grant["organization_event_id"], created.as_str(), "{grant}");
    assert_eq!(grant["actor"], "system");
    assert!(grant["recorded_at"].is_string(), "{grant}");
    // The ledger's event is the log's: readable by its id.
    let event = app
        .with_bearer(&owner.access_token)
        .get(&format!("/v1/events/{}", grant["event_id"].as_str().unwrap()))
        .await;
    let event = expect_json(event, StatusCode::OK, "the grant's event").await;
    assert_eq!(event["type"], "credit_account.granted", "{event}");
    // Read again, nothing more is granted.
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_000_000);
    assert_eq!(all_entries(&app, &owner.access_token).await.len(), 2);
    app.cleanup().await;
}

#[tokio::test]
async fn the_signup_grant_is_configurable_and_zero_grants_nothing() {
    let app = TestApp::spawn_with(|settings| settings.billing.signup_credits = 250).await;
    let owner = register(&app, "owner").await;
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 250);
    app.cleanup().await;

    let app = TestApp::spawn_with(|settings| settings.billing.signup_credits = 0).await;
    let owner = register(&app, "owner").await;
    assert_eq!(balance(&app, &owner.access_token).await["available"], 0);
    let entries = all_entries(&app, &owner.access_token).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kind"], "opened");
    app.cleanup().await;
}

#[tokio::test]
async fn owners_admins_and_auditors_read_credits_and_members_and_keys_may_not() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let admin = add_member(&app, &owner, "admin", "admin").await;
    let auditor = add_member(&app, &owner, "auditor", "auditor").await;
    let member = add_member(&app, &owner, "member", "member").await;
    let key = create_api_key(&app, &owner.access_token, "ci").await;

    for allowed in [&owner, &admin, &auditor] {
        assert_eq!(balance(&app, &allowed.access_token).await["credits"], 1_000_000);
        assert_eq!(
            ledger(&app, &allowed.access_token, "").await["entries"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    for (query, code) in [
        ("?limit=0", "page_limit_out_of_range"),
        ("?cursor=0", "invalid_cursor"),
    ] {
        let response = app
            .with_bearer(&owner.access_token)
            .get(&format!("/v1/billing/ledger{query}"))
            .await;
        assert_eq!(
            assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
            code,
            "{query}"
        );
    }
    for (token, who) in [(&member.access_token, "member"), (&key.key, "api key")] {
        for path in ["/v1/billing/balance", "/v1/billing/ledger"] {
            let problem = assert_problem(app.with_bearer(token).get(path).await, StatusCode::FORBIDDEN).await;
            assert_eq!(problem["code"], "role_not_allowed", "{who} {path}: {problem}");
        }
        let checkout = app
            .with_bearer(token)
            .post_json("/v1/billing/checkout", &json!({ "credits": 1_000_000 }))
            .await;
        let problem = assert_problem(checkout, StatusCode::FORBIDDEN).await;
        assert_eq!(problem["code"], "role_not_allowed", "{who}: {problem}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_organization_reads_only_its_own_ledger() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let a = register(&app, "owner-a").await;
    let b = register(&app, "owner-b").await;
    refund(
        &app,
        &admin.access_token,
        a.org_id,
        json!({ "credits": 7, "reason": "a's secret reason" }),
    )
    .await;

    let b_entries = all_entries(&app, &b.access_token).await;
    let text = serde_json::to_string(&b_entries).unwrap();
    assert!(
        !text.contains("a's secret reason") && !text.contains(&a.org_id.to_string()),
        "{text}"
    );
    assert_eq!(balance(&app, &b.access_token).await["credits"], 1_000_000);
    assert_eq!(balance(&app, &a.access_token).await["credits"], 999_993);
    app.cleanup().await;
}

async fn refund(app: &TestApp, token: &str, org_id: Uuid, body: Value) -> Value {
    let response = app
        .with_bearer(token)
        .post_json(&format!("/v1/admin/orgs/{org_id}/refunds"), &body)
        .await;
    expect_json(response, StatusCode::CREATED, "refund").await
}

#[tokio::test]
async fn the_balance_as_of_a_past_moment_is_folded_from_the_entries_recorded_until_then() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    let before_account = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    balance(&app, &owner.access_token).await;
    let after_grant = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    refund(
        &app,
        &admin.access_token,
        owner.org_id,
        json!({ "credits": 400_000, "reason": "chargeback" }),
    )
    .await;

    let at = |time: chrono::DateTime<chrono::Utc>| {
        format!(
            "/v1/billing/balance?as_of={}",
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        )
    };
    let then = app.with_bearer(&owner.access_token).get(&at(after_grant)).await;
    assert_eq!(
        expect_json(then, StatusCode::OK, "as of").await["credits"],
        1_000_000
    );
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 600_000);

    let before = app
        .with_bearer(&owner.access_token)
        .get(&at(before_account))
        .await;
    assert_eq!(
        assert_problem(before, StatusCode::NOT_FOUND).await["code"],
        "no_credit_account"
    );
    let malformed = app
        .with_bearer(&owner.access_token)
        .get("/v1/billing/balance?as_of=yesterday")
        .await;
    assert_eq!(
        assert_problem(malformed, StatusCode::BAD_REQUEST).await["code"],
        "invalid_time"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_platform_administrator_takes_credits_back_with_a_reason_recorded_as_theirs() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    let path = format!("/v1/admin/orgs/{}/refunds", owner.org_id);

    // Only platform administrators, and never the organization's own owner.
    let by_owner = app
        .with_bearer(&owner.access_token)
        .post_json(&path, &json!({ "credits": 5, "reason": "mine" }))
        .await;
    assert_eq!(
        assert_problem(by_owner, StatusCode::FORBIDDEN).await["code"],
        "platform_admin_required"
    );

    let done = refund(
        &app,
        &admin.access_token,
        owner.org_id,
        json!({ "credits": 1_500_000, "reason": " fraud " }),
    )
    .await;
    assert_eq!(done["credits"], 1_500_000);
    assert_eq!(
        done["balance"], -500_000,
        "money refunded cannot be refused: {done}"
    );
    assert!(done.get("stripe_refund").is_none(), "{done}");

    let entries = all_entries(&app, &owner.access_token).await;
    let entry = &entries[0];
    assert_eq!(entry["kind"], "refunded");
    assert_eq!(entry["source"], "admin_refund");
    assert_eq!(entry["reason"], "fraud");
    assert_eq!(entry["refunded_by"], admin.user_id.to_string());
    assert_eq!(entry["actor"], format!("user:{}", admin.user_id));
    assert_eq!(entry["event_id"], done["event_id"]);
    let metadata = event_metadata(&app, "credit_account.refunded").await;
    assert_eq!(metadata[0]["org_id"], owner.org_id.to_string(), "{metadata:?}");
    assert!(metadata[0]["request_id"].is_string(), "{metadata:?}");
    assert_eq!(balance(&app, &owner.access_token).await["available"], -500_000);

    for (body, code) in [
        (json!({ "credits": 0, "reason": "r" }), "invalid_credit_amount"),
        (json!({ "credits": 1, "reason": "" }), "refund_reason_invalid"),
        (
            json!({ "credits": 1, "reason": "r", "checkout_session_id": "pi_123" }),
            "invalid_checkout_session_id",
        ),
    ] {
        let response = app.with_bearer(&admin.access_token).post_json(&path, &body).await;
        assert_eq!(
            assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
            code,
            "{body}"
        );
    }
    let unknown_purchase = app
        .with_bearer(&admin.access_token)
        .post_json(
            &path,
            &json!({ "credits": 1, "reason": "r", "checkout_session_id": "cs_nope" }),
        )
        .await;
    assert_eq!(
        assert_problem(unknown_purchase, StatusCode::NOT_FOUND).await["code"],
        "unknown_purchase"
    );
    let nowhere = app
        .with_bearer(&admin.access_token)
        .post_json(
            &format!("/v1/admin/orgs/{}/refunds", Uuid::new_v4()),
            &json!({ "credits": 1, "reason": "r" }),
        )
        .await;
    assert_eq!(
        assert_problem(nowhere, StatusCode::NOT_FOUND).await["code"],
        "organization_not_found"
    );
    assert_eq!(
        all_entries(&app, &owner.access_token).await.len(),
        3,
        "the refusals recorded nothing"
    );
    app.cleanup().await;
}

/// A billing service of its own on the application's database: another process's, as the
/// runtime will hold one (own cache, own locks), racing through the store.
pub(crate) fn billing_node(app: &TestApp, pool: &sqlx::PgPool, signup_credits: u64) -> Arc<BillingService> {
    let _ = app;
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    let config = BillingConfig {
        signup_credits,
        stripe: None,
    };
    Arc::new(BillingService::new(&store, config))
}

async fn node_pool(app: &TestApp) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&app.database_url)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_reservations_with_credits_for_n_calls_give_exactly_n_across_processes() {
    const N: usize = 10;
    const EXTRA: usize = 6;
    const WORST_CASE: u64 = 100;
    let app = TestApp::spawn_with(|settings| settings.billing.signup_credits = 0).await;
    let owner = register(&app, "owner").await;
    let org_id = owner.org_id;
    // Two "processes" with their own caches: their races meet in the store.
    let (first, second) = (node_pool(&app).await, node_pool(&app).await);
    let nodes = [
        billing_node(&app, &first, N as u64 * WORST_CASE),
        billing_node(&app, &second, N as u64 * WORST_CASE),
    ];
    assert_eq!(nodes[0].account(org_id).await.unwrap().available(), 1_000);
    nodes[1].account(org_id).await.unwrap();

    let run_id = Uuid::new_v4();
    let barrier = Arc::new(tokio::sync::Barrier::new(N + EXTRA));
    let mut tasks = Vec::new();
    for call in 0..N + EXTRA {
        let (node, barrier) = (Arc::clone(&nodes[call % 2]), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let context = CommandContext::system(Some(org_id));
            node.reserve(org_id, run_id, &format!("{run_id}/{call}"), WORST_CASE, &context)
                .await
        }));
    }
    let mut reserved = Vec::new();
    let mut refused = 0;
    for (call, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap().unwrap() {
            ReserveOutcome::Reserved(reservation) => reserved.push((call, reservation)),
            ReserveOutcome::Insufficient { available, requested } => {
                assert_eq!((available, requested), (0, WORST_CASE));
                refused += 1;
            }
        }
    }
    assert_eq!((reserved.len(), refused), (N, EXTRA));
    let held = balance(&app, &owner.access_token).await;
    assert_eq!(
        held,
        json!({ "credits": 1_000, "reserved": 1_000, "available": 0 })
    );

    // Settling charges the actual cost and releases the rest; a retried settlement (after a
    // crash, on the other node) records nothing and answers the first.
    for (call, reservation) in &reserved {
        let key = format!("{run_id}/{call}");
        let context = CommandContext::system(Some(org_id));
        let settled = nodes[call % 2]
            .settle(org_id, &key, 30, false, &context)
            .await
            .unwrap();
        assert_eq!(
            (settled.charged, settled.released, settled.replayed),
            (30, 70, false)
        );
        assert_eq!(settled.reservation_id, reservation.reservation_id);
        let again = nodes[(call + 1) % 2]
            .settle(org_id, &key, 99, false, &context)
            .await
            .unwrap();
        assert_eq!((again.charged, again.released, again.replayed), (30, 70, true));
        // A reservation asked again for a settled call holds nothing and says it was settled.
        let ReserveOutcome::Reserved(earlier) = nodes[call % 2]
            .reserve(org_id, run_id, &key, WORST_CASE, &context)
            .await
            .unwrap()
        else {
            panic!("a settled call's key answers its reservation");
        };
        assert_eq!(earlier.reservation_id, reservation.reservation_id);
        assert_eq!(earlier.settled.map(|settled| settled.charged), Some(30));
    }
    let after = balance(&app, &owner.access_token).await;
    assert_eq!(after, json!({ "credits": 700, "reserved": 0, "available": 700 }));
    let entries = all_entries(&app, &owner.access_token).await;
    assert_eq!(of_kind(&entries, "reserved").len(), N);
    assert_eq!(of_kind(&entries, "charged").len(), N);
    assert_eq!(of_kind(&entries, "released").len(), N);
    let charge = of_kind(&entries, "charged")[0];
    assert_eq!(charge["run_id"], run_id.to_string(), "{charge}");
    assert!(
        charge["llm_call"]
            .as_str()
            .unwrap()
            .starts_with(&run_id.to_string()),
        "{charge}"
    );
    assert_eq!(charge["balance_change"], -30);

    // An unknown call cannot be settled; a second reservation of an open key holds nothing more.
    let context = CommandContext::system(Some(org_id));
    let unknown = nodes[0]
        .settle(org_id, "never-reserved", 1, false, &context)
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    let open = nodes[0]
        .reserve(org_id, run_id, "open", 200, &context)
        .await
        .unwrap();
    let twice = nodes[1]
        .reserve(org_id, run_id, "open", 200, &context)
        .await
        .unwrap();
    assert_eq!(open, twice);
    assert_eq!(balance(&app, &owner.access_token).await["reserved"], 200);
    first.close().await;
    second.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn no_reservation_is_refused_while_the_balance_covers_it() {
    let app = TestApp::spawn_with(|settings| settings.billing.signup_credits = 0).await;
    let owner: Account = register(&app, "owner").await;
    let org_id = owner.org_id;
    let pool = node_pool(&app).await;
    let node = billing_node(&app, &pool, 64 * 10);
    node.account(org_id).await.unwrap();
    let mut tasks = Vec::new();
    for call in 0..64 {
        let node = Arc::clone(&node);
        tasks.push(tokio::spawn(async move {
            let context = CommandContext::system(Some(org_id));
            let key = format!("call-{call}");
            let reserved = node
                .reserve(org_id, Uuid::nil(), &key, 10, &context)
                .await
                .unwrap();
            assert!(matches!(reserved, ReserveOutcome::Reserved(_)), "{reserved:?}");
            node.settle(org_id, &key, 10, false, &context).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 0);
    pool.close().await;
    app.cleanup().await;
}
