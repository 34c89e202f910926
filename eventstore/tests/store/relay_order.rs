//! The relay publishes every committed event once, in log order, even when transactions commit
//! out of order, and resumes from its checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use eventstore::store::{NewEvent, append_with};
use eventstore::{EventBus, EventStore};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    context, id_counts, nats_bus, nats_url, renamed_event as event, spawn_relay, store, stream_events,
};
use crate::raw_publishes::RawPublishes;

#[sqlx::test(migrations = "../migrations")]
async fn an_event_whose_transaction_commits_late_is_published_not_skipped(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let relay = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let org_id = Uuid::now_v7();
    let ctx = context(org_id);

    // A takes the lower position and stays uncommitted while B and C commit after it.
    let late = event(0);
    let mut transaction = pool.begin().await.unwrap();
    append_with(
        &mut *transaction,
        "organization",
        "late",
        0,
        std::slice::from_ref(&late),
        &ctx,
    )
    .await
    .unwrap();
    let b = event(1);
    let c = event(2);
    store
        .append("organization", "b", 0, std::slice::from_ref(&b), &ctx)
        .await
        .unwrap();
    store
        .append("organization", "c", 0, std::slice::from_ref(&c), &ctx)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    transaction.commit().await.unwrap();
    store.signal().notify();

    let published = stream_events(bus.jetstream(), org_id, 3, Duration::from_secs(15)).await;
    relay.cancel();

    let ids: Vec<String> = published
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![
            late.event_id.to_string(),
            b.event_id.to_string(),
            c.event_id.to_string()
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn every_event_of_many_concurrent_appenders_is_published_exactly_once(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let relay = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let org_id = Uuid::now_v7();

    let mut writers = Vec::new();
    for writer in 0..16 {
        let (store, pool) = (store.clone(), pool.clone());
        writers.push(tokio::spawn(async move {
            write_with_random_commit_delays(store, pool, org_id, writer).await
        }));
    }
    let mut appended = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }

    let published = stream_events(bus.jetstream(), org_id, appended.len(), Duration::from_secs(60)).await;
    relay.cancel();

    let counts = id_counts(&published);
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "published twice: {duplicated:?}");
    let published: HashSet<Uuid> = counts.keys().map(|id| id.parse().unwrap()).collect();
    let missing: Vec<_> = appended.difference(&published).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never published",
        missing.len(),
        appended.len()
    );
    assert_eq!(published.len(), appended.len());
}

/// One writer: 30 commands on its own aggregate, of one to three events each; every third is
/// written in a transaction held open for a few milliseconds, so commits finish out of the
/// order in which positions were taken.
async fn write_with_random_commit_delays(
    store: EventStore,
    pool: PgPool,
    org_id: Uuid,
    writer: usize,
) -> Vec<Uuid> {
    let aggregate_id = format!("writer-{writer}");
    let ctx = context(org_id);
    let mut version = 0;
    let mut ids = Vec::new();
    for command in 0..30 {
        let events: Vec<NewEvent> = (0..1 + (writer + command) % 3).map(event).collect();
        if command % 3 == 0 {
            let mut transaction = pool.begin().await.unwrap();
            append_with(
                &mut *transaction,
                "organization",
                &aggregate_id,
                version,
                &events,
                &ctx,
            )
            .await
            .unwrap();
            let hold = (writer * 7 + command * 13) % 20;
            tokio::time::sleep(Duration::from_millis(hold as u64)).await;
            transaction.commit().await.unwrap();
        } else {
            store
                .append("organization", &aggregate_id, version, &events, &ctx)
                .await
                .unwrap();
        }
        version += events.len();
        ids.extend(events.iter().map(|e| e.event_id));
    }
    ids
}

#[sqlx::test(migrations = "../migrations")]
async fn a_restarted_relay_resumes_from_its_checkpoint_without_repeating(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let org_id = Uuid::now_v7();
    let raw = RawPublishes::subscribe(&nats_url(), org_id).await;
    let ctx = context(org_id);
    let first = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    for n in 0..20 {
        store
            .append("organization", &format!("a{n}"), 0, &[event(n)], &ctx)
            .await
            .unwrap();
    }
    assert_eq!(raw.settle(20, Duration::from_secs(15)).await.len(), 20);
    first.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;

    for n in 20..40 {
        store
            .append("organization", &format!("a{n}"), 0, &[event(n)], &ctx)
            .await
            .unwrap();
    }
    let second = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let counts = raw.settle(40, Duration::from_secs(15)).await;
    second.cancel();

    assert_eq!(counts.len(), 40, "every event published");
    let repeated = RawPublishes::repeated(&counts);
    assert!(
        repeated.is_empty(),
        "the restarted relay published again what its checkpoint covered: {repeated:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn events_republished_after_a_lost_checkpoint_are_stored_once(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let org_id = Uuid::now_v7();
    let ctx = context(org_id);
    for n in 0..25 {
        store
            .append("organization", &format!("r{n}"), 0, &[event(n)], &ctx)
            .await
            .unwrap();
    }
    let first = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    assert_eq!(
        stream_events(bus.jetstream(), org_id, 25, Duration::from_secs(15))
            .await
            .len(),
        25
    );
    first.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // As if the relay had crashed after publishing but before saving its checkpoint.
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = 'relay'")
        .execute(&pool)
        .await
        .unwrap();
    let second = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let published = stream_events(bus.jetstream(), org_id, 25, Duration::from_secs(15)).await;
    second.cancel();

    let counts = id_counts(&published);
    assert_eq!(counts.len(), 25);
    assert!(
        counts.values().all(|n| *n == 1),
        "the re-publish was deduplicated by message id"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn two_nodes_relaying_one_database_publish_each_event_once(pool: PgPool) {
    let store = store(&pool);
    let bus = nats_bus(&nats_url()).await;
    let org_id = Uuid::now_v7();
    let raw = RawPublishes::subscribe(&nats_url(), org_id).await;
    let ctx = context(org_id);
    let first = spawn_relay(&store, EventBus::from(bus.clone()), "relay");
    let second = spawn_relay(&store, EventBus::from(nats_bus(&nats_url()).await), "relay");
    for n in 0..60 {
        store
            .append("organization", &format!("n{n}"), 0, &[event(n)], &ctx)
            .await
            .unwrap();
        if n == 30 {
            // The leader goes away mid-stream; the other node takes over from the checkpoint.
            first.cancel();
        }
    }

    let counts = raw.settle(60, Duration::from_secs(30)).await;
    second.cancel();

    assert_eq!(counts.len(), 60, "every event published");
    let repeated = RawPublishes::repeated(&counts);
    assert!(repeated.is_empty(), "published by both nodes: {repeated:?}");
    let published = stream_events(bus.jetstream(), org_id, 60, Duration::from_secs(5)).await;
    assert_eq!(id_counts(&published).len(), 60, "and stored in the stream");
}
