//! Stripe over HTTP: Checkout against a local server speaking Stripe's form API, and the webhook
//! with signatures made by Stripe's own Python library as well as ours, delivered many times at
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::Arc;

use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::accounts::{expect_json, platform_admin, register};
use crate::billing::{all_entries, balance};
use crate::helpers::{TestApp, assert_problem};
use crate::stripe_server::{SECRET_KEY, StripeServer, WEBHOOK_SECRET, refund_event, session_event};

const WEBHOOK: &str = "/v1/billing/stripe/webhook";

async fn stripe_app(stripe: &StripeServer) -> TestApp {
    let base = stripe.base.clone();
    TestApp::spawn_with(move |settings| {
        settings.billing.stripe_api_base = base;
        settings.billing.stripe_secret_key = Some(SecretString::from(SECRET_KEY));
        settings.billing.stripe_webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
    })
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs `scripts/stripe-signature` with Stripe's Python library (a cached virtualenv made from
/// `scripts/requirements-stripe.txt`).
async fn stripe_python(args: &[&str], payload: &[u8]) -> (bool, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let venv = tokio::process::Command::new("bash")
        .args(["-c", "source scripts/lib/tools.sh && stripe_python"])
        .current_dir(root)
        .output()
        .await
        .unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let python = format!("{}/bin/python", String::from_utf8(venv.stdout).unwrap().trim());
    let mut child = tokio::process::Command::new(python)
        .arg(format!("{root}/scripts/stripe-signature"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(payload).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).trim().to_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

async fn deliver(app: &TestApp, body: &[u8], signature: Option<&str>) -> Response {
    let mut request = app
        .request(reqwest::Method::POST, WEBHOOK)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.unwrap()
}

/// `event` as Stripe would deliver it, signed by our own implementation of Stripe's scheme.
async fn deliver_signed(app: &TestApp, event: &Value) -> Value {
    let body = serde_json::to_vec(event).unwrap();
    let signature = commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), now(), &body);
    expect_json(
        deliver(app, &body, Some(&signature)).await,
        StatusCode::OK,
        "delivery",
    )
    .await
}

#[tokio::test]
async fn checkout_creates_a_stripe_session_naming_the_organization_and_the_credits() {
    let stripe = StripeServer::start().await;
    let app = stripe_app(&stripe).await;
    let owner = register(&app, "owner").await;

    let response = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/billing/checkout", &json!({ "credits": 2_500_000 }))
        .await;
    let session = expect_json(response, StatusCode::CREATED, "checkout").await;
    assert_eq!(session["session_id"], "cs_test_1");
    assert_eq!(
        session["checkout_url"],
        "https://checkout.stripe.test/c/pay/cs_test_1"
    );

    let sent = stripe.requests("/v1/checkout/sessions");
    assert_eq!(sent.len(), 1);
    let form = &sent[0].form;
    let org = owner.org_id.to_string();
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["client_reference_id"], org);
    assert_eq!(form["metadata[org_id]"], org);
    assert_eq!(form["metadata[credits]"], "2500000");
    assert_eq!(form["payment_intent_data[metadata][org_id]"], org);
    // USD 1.00 a million credits by default: 2.5 million cost 250 cents.
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "250");
    assert_eq!(form["line_items[0][price_data][currency]"], "usd");
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert!(form["success_url"].contains("{CHECKOUT_SESSION_ID}"), "{form:?}");
    assert!(sent[0].idempotency_key.is_some());

    let too_small = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/billing/checkout", &json!({ "credits": 100 }))
        .await;
    let problem = assert_problem(too_small, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "purchase_too_small");
    assert!(
        problem["detail"].as_str().unwrap().contains("500000"),
        "{problem}"
    );
    let zero = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/billing/checkout", &json!({ "credits": 0 }))
        .await;
    assert_eq!(
        assert_problem(zero, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_credit_amount"
    );
    assert_eq!(stripe.requests("/v1/checkout/sessions").len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn without_stripe_configured_checkout_and_the_webhook_say_so() {
    let app = TestApp::spawn().await;
    let owner = register(&app, "owner").await;
    let response = app
        .with_bearer(&owner.access_token)
        .post_json("/v1/billing/checkout", &json!({ "credits": 1_000_000 }))
        .await;
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "stripe_not_configured", "{problem}");
    let event = session_event("evt_1", "checkout.session.completed", "cs_1", owner.org_id, 5, 50);
    let body = serde_json::to_vec(&event).unwrap();
    let signature = commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), now(), &body);
    let delivered = deliver(&app, &body, Some(&signature)).await;
    let problem = assert_problem(delivered, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "stripe_not_configured");

    // Stripe down or refusing the key: a clear 503 of its own.
    let app_with_dead_stripe = TestApp::spawn_with(|settings| {
        settings.billing.stripe_secret_key = Some(SecretString::from("sk_test_wrong"));
    })
    .await;
    let owner = register(&app_with_dead_stripe, "owner").await;
    let response = app_with_dead_stripe
        .with_bearer(&owner.access_token)
        .post_json("/v1/billing/checkout", &json!({ "credits": 1_000_000 }))
        .await;
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "stripe_unavailable", "{problem}");
    app_with_dead_stripe.cleanup().await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_webhook_accepts_signatures_made_by_stripes_python_library_and_stripe_accepts_ours() {
    let stripe = StripeServer::start().await;
    let app = stripe_app(&stripe).await;
    let owner = register(&app, "owner").await;
    let event = session_event(
        "evt_py",
        "checkout.session.completed",
        "cs_py",
        owner.org_id,
        600_000,
        60,
    );
    let body = serde_json::to_vec_pretty(&event).unwrap();

    let (signed, header) = stripe_python(&["sign", WEBHOOK_SECRET], &body).await;
    assert!(signed, "{header}");
    let answer = expect_json(
        deliver(&app, &body, Some(&header)).await,
        StatusCode::OK,
        "delivery",
    )
    .await;
    assert_eq!(answer["result"], "granted", "{answer}");
    assert_eq!(answer["credits"], 600_000);
    assert_eq!(answer["replayed"], false);
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_600_000);

    // Our header, checked by Stripe's library; and a header signed by another secret, refused
    // by both.
    let ours = commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), now(), &body);
    let (accepted, why) = stripe_python(&["verify", WEBHOOK_SECRET, &ours], &body).await;
    assert!(accepted, "{why}");
    let (_, foreign) = stripe_python(&["sign", "whsec_someone_else"], &body).await;
    let (accepted, _) = stripe_python(&["verify", WEBHOOK_SECRET, &foreign], &body).await;
    assert!(!accepted);
    let refused = deliver(&app, &body, Some(&foreign)).await;
    assert_eq!(
        assert_problem(refused, StatusCode::BAD_REQUEST).await["code"],
        "stripe_signature_invalid"
    );

    // A stale signature from Stripe's library (ten minutes old).
    let old = (now() - 600).to_string();
    let (_, stale) = stripe_python(&["sign", WEBHOOK_SECRET, &old], &body).await;
    let refused = deliver(&app, &body, Some(&stale)).await;
    assert_eq!(
        assert_problem(refused, StatusCode::BAD_REQUEST).await["code"],
        "stripe_signature_stale"
    );
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_600_000);
    app.cleanup().await;
}

#[tokio::test]
async fn refused_deliveries_and_unknown_types_change_nothing() {
    let stripe = StripeServer::start().await;
    let app = stripe_app(&stripe).await;
    let owner = register(&app, "owner").await;
    let before = all_entries(&app, &owner.access_token).await.len();
    let event = session_event(
        "evt_bad",
        "checkout.session.completed",
        "cs_bad",
        owner.org_id,
        600_000,
        60,
    );
    let body = serde_json::to_vec(&event).unwrap();
    let good = commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), now(), &body);

    let cases: Vec<(Vec<u8>, Option<String>, &str)> = vec![
        (body.clone(), None, "stripe_signature_missing"),
        (
            body.clone(),
            Some("v1=abc".to_owned()),
            "stripe_signature_malformed",
        ),
        (
            body.clone(),
            Some(good.replace("v1=", "v1=0")),
            "stripe_signature_invalid",
        ),
        (
            br#"{"id":"evt_other"}"#.to_vec(),
            Some(good.clone()),
            "stripe_signature_invalid",
        ),
        (
            b"not json".to_vec(),
            Some(commands::billing::stripe::sign(
                WEBHOOK_SECRET.as_bytes(),
                now(),
                b"not json",
            )),
            "stripe_event_invalid",
        ),
    ];
    for (body, signature, code) in cases {
        let response = deliver(&app, &body, signature.as_deref()).await;
        assert_eq!(
            assert_problem(response, StatusCode::BAD_REQUEST).await["code"],
            code
        );
    }
    let unknown = json!({ "id": "evt_unknown", "object": "event", "type": "customer.created", "data": { "object": { "id": "cus_1", "email": null } } });
    let answer = deliver_signed(&app, &unknown).await;
    assert_eq!(answer["result"], "ignored", "{answer}");
    assert_eq!(answer["reason"], "unhandled_event_type");
    let foreign = json!({ "id": "evt_f", "type": "checkout.session.completed", "data": { "object": { "id": "cs_f", "metadata": {}, "payment_status": "paid" } } });
    assert_eq!(
        deliver_signed(&app, &foreign).await["reason"],
        "not_an_agentry_purchase"
    );
    let unpaid = {
        let mut event = session_event(
            "evt_unpaid",
            "checkout.session.completed",
            "cs_u",
            owner.org_id,
            600_000,
            60,
        );
        event["data"]["object"]["payment_status"] = json!("unpaid");
        event
    };
    assert_eq!(deliver_signed(&app, &unpaid).await["result"], "awaiting_payment");
    let nobody = session_event(
        "evt_nobody",
        "checkout.session.completed",
        "cs_n",
        uuid::Uuid::new_v4(),
        600_000,
        60,
    );
    assert_eq!(
        deliver_signed(&app, &nobody).await["reason"],
        "unknown_organization"
    );
    assert_eq!(all_entries(&app, &owner.access_token).await.len(), before);
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_000_000);
    app.cleanup().await;
}

/// Sends `count` copies of each event at once; answers every response body.
async fn deliver_at_once(app: &Arc<TestApp>, events: &[Value], count: usize) -> Vec<Value> {
    let barrier = Arc::new(tokio::sync::Barrier::new(events.len() * count));
    let mut tasks = Vec::new();
    for event in events {
        let body = serde_json::to_vec(event).unwrap();
        let signature = commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), now(), &body);
        for _ in 0..count {
            let (app, body, signature, barrier) = (
                Arc::clone(app),
                body.clone(),
                signature.clone(),
                Arc::clone(&barrier),
            );
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let response = deliver(&app, &body, Some(&signature)).await;
                expect_json(response, StatusCode::OK, "a copy").await
            }));
        }
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn concurrent_copies_of_a_purchase_and_two_events_for_one_session_grant_once() {
    let stripe = StripeServer::start().await;
    let app = Arc::new(stripe_app(&stripe).await);
    let owner = register(&app, "owner").await;

    let event = session_event(
        "evt_many",
        "checkout.session.completed",
        "cs_many",
        owner.org_id,
        700_000,
        70,
    );
    let answers = deliver_at_once(&app, std::slice::from_ref(&event), 20).await;
    let fresh: Vec<&Value> = answers
        .iter()
        .filter(|answer| answer["replayed"] == false)
        .collect();
    assert_eq!(fresh.len(), 1, "{answers:?}");
    for answer in &answers {
        assert_eq!(answer["result"], "granted", "{answer}");
        assert_eq!(
            answer["credits"], 700_000,
            "every copy answers the original outcome"
        );
        assert_eq!(answer["org_id"], owner.org_id.to_string());
    }
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_700_000);

    // One session reported by two different events, each delivered several times, at once.
    let completed = session_event(
        "evt_done",
        "checkout.session.completed",
        "cs_two",
        owner.org_id,
        900_000,
        90,
    );
    let succeeded = session_event(
        "evt_async",
        "checkout.session.async_payment_succeeded",
        "cs_two",
        owner.org_id,
        900_000,
        90,
    );
    let answers = deliver_at_once(&app, &[completed, succeeded], 5).await;
    let granted: Vec<&Value> = answers
        .iter()
        .filter(|answer| answer["result"] == "granted" && answer["replayed"] == false)
        .collect();
    assert_eq!(granted.len(), 1, "{answers:?}");
    let winner = granted[0]["event_id"].clone();
    for answer in &answers {
        let expected = if answer["event_id"] == winner {
            "granted"
        } else {
            "already_granted"
        };
        assert_eq!(answer["result"], expected, "{answer}");
    }
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 2_600_000);
    let entries = all_entries(&app, &owner.access_token).await;
    let purchases: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["source"] == "purchase")
        .collect();
    assert_eq!(purchases.len(), 2, "{purchases:?}");
    assert_eq!(purchases[0]["checkout_session_id"], "cs_two");
    assert_eq!(purchases[0]["stripe_event_id"], winner);
    assert_eq!(purchases[0]["payment_intent"], "pi_cs_two");
    assert_eq!(purchases[0]["amount_paid"], 90);
    Arc::try_unwrap(app).ok().unwrap().cleanup().await;
}

#[tokio::test]
async fn refunds_take_back_what_was_refunded_once_whatever_the_order_and_copies() {
    let stripe = StripeServer::start().await;
    let app = Arc::new(stripe_app(&stripe).await);
    let owner = register(&app, "owner").await;
    deliver_signed(
        &app,
        &session_event(
            "evt_buy",
            "checkout.session.completed",
            "cs_r",
            owner.org_id,
            1_000_000,
            100,
        ),
    )
    .await;
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 2_000_000);

    // A quarter refunded, reported ten times at once.
    let quarter = refund_event("evt_quarter", "cs_r", 100, 25);
    let answers = deliver_at_once(&app, std::slice::from_ref(&quarter), 10).await;
    assert_eq!(
        answers
            .iter()
            .filter(|answer| answer["replayed"] == false)
            .count(),
        1,
        "{answers:?}"
    );
    for answer in &answers {
        assert_eq!(
            (answer["result"].as_str(), answer["credits"].as_u64()),
            (Some("taken_back"), Some(250_000))
        );
    }
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_750_000);

    // Then the whole charge refunded; its report arrives before the one of the half in between.
    let full = deliver_signed(&app, &refund_event("evt_full", "cs_r", 100, 100)).await;
    assert_eq!(
        (full["result"].as_str(), full["credits"].as_u64()),
        (Some("taken_back"), Some(750_000))
    );
    let half = deliver_signed(&app, &refund_event("evt_half", "cs_r", 100, 50)).await;
    assert_eq!(half["result"], "nothing_to_take_back", "{half}");
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_000_000);
    let refunds: Vec<Value> = all_entries(&app, &owner.access_token)
        .await
        .into_iter()
        .filter(|entry| entry["source"] == "stripe_refund")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["charge_id"], "ch_cs_r");
    assert_eq!(refunds[0]["amount_refunded"], 100);
    let stranger = deliver_signed(&app, &refund_event("evt_stranger", "cs_not_ours", 100, 100)).await;
    assert_eq!(stranger["reason"], "unknown_purchase", "{stranger}");
    Arc::try_unwrap(app).ok().unwrap().cleanup().await;
}

#[tokio::test]
async fn an_administrators_refund_of_a_purchase_refunds_its_money_through_stripe_once() {
    let stripe = StripeServer::start().await;
    let app = stripe_app(&stripe).await;
    let admin = platform_admin(&app, "root").await;
    let owner = register(&app, "owner").await;
    deliver_signed(
        &app,
        &session_event(
            "evt_buy",
            "checkout.session.completed",
            "cs_a",
            owner.org_id,
            1_000_000,
            100,
        ),
    )
    .await;

    let path = format!("/v1/admin/orgs/{}/refunds", owner.org_id);
    let body = json!({ "credits": 400_000, "reason": "unhappy customer", "checkout_session_id": "cs_a" });
    let response = app.with_bearer(&admin.access_token).post_json(&path, &body).await;
    let done = expect_json(response, StatusCode::CREATED, "refund").await;
    assert_eq!(done["credits"], 400_000);
    assert_eq!(done["stripe_refund"]["amount"], 40, "{done}");
    assert_eq!(done["stripe_refund"]["refund_id"], "re_test_1", "{done}");
    let sent = stripe.requests("/v1/refunds");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].form["payment_intent"], "pi_cs_a");
    assert_eq!(sent[0].form["amount"], "40");
    assert_eq!(
        sent[0].idempotency_key,
        Some(format!("agentry-refund-{}", done["event_id"].as_str().unwrap()))
    );

    // Stripe then reports the charge refunded: those credits are gone already.
    let reported = deliver_signed(&app, &refund_event("evt_admin_refund", "cs_a", 100, 40)).await;
    assert_eq!(reported["result"], "nothing_to_take_back", "{reported}");
    assert_eq!(balance(&app, &owner.access_token).await["credits"], 1_600_000);
    let over = json!({ "credits": 600_001, "reason": "too much", "checkout_session_id": "cs_a" });
    let response = app.with_bearer(&admin.access_token).post_json(&path, &over).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "refund_exceeds_purchase", "{problem}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_checkout_repeated_with_its_key_answers_the_same_session() {
    let stripe = StripeServer::start().await;
    let app = stripe_app(&stripe).await;
    let owner = register(&app, "owner").await;
    let checkout = |token: String, key: Option<&'static str>, credits: u64| {
        let app = &app;
        async move {
            let mut request = app
                .with_bearer(token)
                .request(reqwest::Method::POST, "/v1/billing/checkout")
                .json(&json!({ "credits": credits }));
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            request.send().await.unwrap()
        }
    };
    let token = || owner.access_token.clone();

    // Without a key, two requests are two sessions (the path a key changes).
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let created = expect_json(
            checkout(token(), None, 2_500_000).await,
            StatusCode::CREATED,
            "checkout",
        )
        .await;
        sessions.push(created["session_id"].clone());
    }
    assert_ne!(sessions[0], sessions[1]);

    let first = expect_json(
        checkout(token(), Some("buy-1"), 2_500_000).await,
        StatusCode::CREATED,
        "checkout with a key",
    )
    .await;
    let again = expect_json(
        checkout(token(), Some("buy-1"), 2_500_000).await,
        StatusCode::CREATED,
        "the same key again",
    )
    .await;
    assert_eq!(again, first, "the repeat answers the first session");

    let refused = assert_problem(
        checkout(token(), Some("buy-1"), 5_000_000).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["code"], "idempotency_key_reused", "{refused}");

    // Another organization's key of the same text is its own, at Stripe too.
    let stranger = register(&app, "stranger").await;
    let theirs = expect_json(
        checkout(stranger.access_token.clone(), Some("buy-1"), 2_500_000).await,
        StatusCode::CREATED,
        "another organization's key",
    )
    .await;
    assert_ne!(theirs["session_id"], first["session_id"]);
    let keys: Vec<Option<String>> = stripe
        .requests("/v1/checkout/sessions")
        .into_iter()
        .map(|request| request.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert_ne!(keys[0], keys[1], "without a key, each request its own: {keys:?}");
    assert_eq!(keys[2], keys[3], "{keys:?}");
    assert_ne!(keys[5], keys[2], "{keys:?}");
    assert!(
        !keys[2].as_deref().unwrap().contains("buy-1"),
        "the client's key is not sent as it is"
    );
    app.cleanup().await;
}
