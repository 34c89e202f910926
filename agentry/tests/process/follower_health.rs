//! Stalls and blocked projectors are visible: `/readyz` names them (with the event a projector
//! cannot apply), `/metrics` exports them, and the log names the event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::node::{Node, database_url, drop_database, install_crypto_provider};

async fn readyz(node: &Node) -> (u16, String) {
    let response = reqwest::get(node.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `/readyz` until `wanted` holds for its answer; panics with the last answer after `within`.
async fn readyz_until(node: &Node, within: Duration, wanted: impl Fn(u16, &str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(node).await;
        if wanted(status, &body) {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "/readyz still answers {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes one event row as is (no store, no domain), recorded now.
async fn insert_event(
    pool: &sqlx::PgPool,
    aggregate_type: &str,
    event_type: &str,
    payload: serde_json::Value,
) -> Uuid {
    let metadata = json!({
        "actor": "system",
        "correlation_id": Uuid::now_v7().to_string(),
        "recorded_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, 1, $3, '1', $4::json, $5::json) RETURNING event_id",
    )
    .bind(aggregate_type)
    .bind(Uuid::now_v7().to_string())
    .bind(event_type)
    .bind(payload.to_string())
    .bind(metadata.to_string())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `agentry_follower_stall_seconds{follower="relay"}` as `/metrics` shows it now (0 if absent).
async fn relay_stall_gauge(node: &Node) -> f64 {
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find(|line| line.starts_with("agentry_follower_stall_seconds{follower=\"relay\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_names_the_followers_stalled_behind_a_held_gate_and_recovers_after() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[
        ("DATABASE_URL", database_url(&name)),
        ("AGENTRY_FOLLOWER_STALL_SECONDS", "2".to_owned()),
    ]);
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();

    // A writing transaction left open: no follower may pass it, so what commits after it waits.
    let mut held = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *held)
        .await
        .unwrap();
    insert_event(
        &pool,
        "probe",
        "probe.happened",
        json!({ "type": "probe.happened" }),
    )
    .await;

    let body = readyz_until(&node, Duration::from_secs(20), |status, _| status == 503).await;
    assert!(
        body.contains("follower relay stalled") && body.contains("follower identity stalled"),
        "the answer names each stalled follower: {body}"
    );
    // The gauge is refreshed every 3 s.
    let started = Instant::now();
    loop {
        let seconds = relay_stall_gauge(&node).await;
        if seconds > 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the relay's stall gauge does not grow while the gate is held: {seconds}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    held.rollback().await.unwrap();
    readyz_until(&node, Duration::from_secs(20), |status, _| status == 200).await;
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_stopped_by_an_event_it_cannot_store_is_named_with_the_event() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[("DATABASE_URL", database_url(&name))]);
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();

    // Postgres `json` keeps \u0000; the `text` column of the users view refuses it.
    let poison = insert_event(
        &pool,
        "user",
        "user.registered",
        json!({ "type": "user.registered", "email": "nul\u{0}@example.com", "password_hash": "x" }),
    )
    .await;

    let body = readyz_until(&node, Duration::from_secs(30), |status, _| status == 503).await;
    assert!(
        body.contains("projector identity blocked at event") && body.contains(&poison.to_string()),
        "the answer names the projector and the event: {body}"
    );
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agentry_projector_blocked{projector=\"identity\"} 1"),
        "a metric shows the projector blocked:\n{metrics}"
    );
    assert!(node.log_contains(&poison.to_string()), "the log names the event");
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_that_cannot_save_its_checkpoint_is_counted_and_reported_stalled() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[
        ("DATABASE_URL", database_url(&name)),
        ("AGENTRY_FOLLOWER_STALL_SECONDS", "2".to_owned()),
    ]);
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();
    // From now on, every move of the relay's checkpoint fails (as on a full or broken disk).
    sqlx::query(
        "CREATE FUNCTION refuse_relay_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.name = 'relay' THEN RAISE EXCEPTION 'checkpoint storage refused by the test'; END IF;
             RETURN NEW;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_relay_checkpoint BEFORE INSERT OR UPDATE ON follower_checkpoints
         FOR EACH ROW EXECUTE FUNCTION refuse_relay_checkpoint()",
    )
    .execute(&pool)
    .await
    .unwrap();

    insert_event(
        &pool,
        "probe",
        "probe.happened",
        json!({ "type": "probe.happened" }),
    )
    .await;

    let body = readyz_until(&node, Duration::from_secs(20), |status, _| status == 503).await;
    assert!(
        body.contains("follower relay stalled"),
        "the relay is reported stalled: {body}"
    );
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agentry_checkpoint_save_failures_total{follower=\"relay\"}"),
        "failed saves are counted:\n{metrics}"
    );
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}

/// `{metric}{follower="{follower}"}` as `/metrics` shows it now, if it does.
async fn follower_gauge(node: &Node, metric: &str, follower: &str) -> Option<f64> {
    let metrics = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{metric}{{follower=\"{follower}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str())?.parse().ok())
}

/// `(events_behind, seconds_behind)` of `follower` in a `/readyz` answer.
fn readyz_lag(body: &str, follower: &str) -> Option<(i64, f64)> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let lag = &body["followers"][follower];
    Some((lag["events_behind"].as_i64()?, lag["seconds_behind"].as_f64()?))
}

/// Polls `/metrics` until `follower`'s gauges satisfy `wanted(events, seconds)`.
async fn metrics_until(node: &Node, follower: &str, wanted: impl Fn(f64, f64) -> bool) -> (f64, f64) {
    let started = Instant::now();
    loop {
        let events = follower_gauge(node, "agentry_follower_lag_events", follower).await;
        let seconds = follower_gauge(node, "agentry_follower_stall_seconds", follower).await;
        if let (Some(events), Some(seconds)) = (events, seconds)
            && wanted(events, seconds)
        {
            return (events, seconds);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{follower}'s lag gauges stay at {events:?} events, {seconds:?} s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A projector stuck on an event it cannot apply falls further behind with every event after it:
/// `/metrics` and `/readyz` show its lag growing (events and seconds behind), while the relay,
/// which got past the same events, shows none; and a follower no process runs is measured too.
#[tokio::test(flavor = "multi_thread")]
async fn a_projector_blocked_by_an_event_shows_its_lag_growing_in_metrics_and_readyz() {
    install_crypto_provider();
    let name = format!("agentry_proc_{}", Uuid::new_v4().simple());
    let node = Node::serve(&[("DATABASE_URL", database_url(&name))]);
    let pool = sqlx::PgPool::connect(&database_url(&name)).await.unwrap();

    // Postgres `json` keeps \u0000; the `text` column of the users view refuses it.
    insert_event(
        &pool,
        "user",
        "user.registered",
        json!({ "type": "user.registered", "email": "nul\u{0}@example.com", "password_hash": "x" }),
    )
    .await;
    let body = readyz_until(&node, Duration::from_secs(30), |status, body| {
        status == 503
            && body.contains("projector identity blocked")
            && readyz_lag(body, "relay").is_some_and(|(events, _)| events == 0)
    })
    .await;
    let (stuck_at, _) = readyz_lag(&body, "identity").expect("the identity projector's lag");
    assert!(stuck_at >= 1, "{body}");
    let (events, _) = metrics_until(&node, "identity", |events, _| events >= 1.0).await;
    let before = events;

    for _ in 0..2 {
        insert_event(
            &pool,
            "probe",
            "probe.happened",
            json!({ "type": "probe.happened" }),
        )
        .await;
    }
    // A follower with a checkpoint at the start of the log and no process running it.
    sqlx::query("INSERT INTO follower_checkpoints (name) VALUES ('unattended')")
        .execute(&pool)
        .await
        .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();

    // The relay publishes the two new events a moment after they land (lag is sampled every
    // few seconds): wait for both figures rather than read the relay's in the same instant.
    let body = readyz_until(&node, Duration::from_secs(20), |_, body| {
        readyz_lag(body, "identity").is_some_and(|(events, seconds)| events == stuck_at + 2 && seconds >= 1.0)
            && readyz_lag(body, "relay").is_some_and(|(events, _)| events == 0)
    })
    .await;
    assert_eq!(
        readyz_lag(&body, "unattended").map(|lag| lag.0),
        Some(total),
        "{body}"
    );
    let (events, seconds) = metrics_until(&node, "identity", |events, seconds| {
        events >= before + 2.0 && seconds >= 1.0
    })
    .await;
    assert_eq!(events, before + 2.0);
    assert!(seconds >= 1.0);
    assert_eq!(
        follower_gauge(&node, "agentry_follower_lag_events", "relay").await,
        Some(0.0)
    );
    pool.close().await;
    node.terminate();
    drop_database(&name).await;
}
