//! NATS going away does not stop writes, and the relay catches up when it returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eventstore::EventBus;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    PrivateNats, context, id_counts, nats_bus, renamed_event as event, spawn_relay, store, stream_events,
};

#[sqlx::test(migrations = "../migrations")]
async fn writes_go_on_while_nats_is_down_and_every_event_arrives_once_after(pool: PgPool) {
    let mut nats = PrivateNats::start();
    let store = store(&pool);
    let relay_bus = nats_bus(&nats.url()).await;
    let relay = spawn_relay(&store, EventBus::from(relay_bus), "relay");
    let org_id = Uuid::now_v7();
    let ctx = context(org_id);
    for n in 0..50 {
        store
            .append("organization", &format!("before-{n}"), 0, &[event(n)], &ctx)
            .await
            .unwrap();
    }
    let reader = nats_bus(&nats.url()).await;
    assert_eq!(
        stream_events(reader.jetstream(), org_id, 50, Duration::from_secs(15))
            .await
            .len(),
        50
    );

    nats.kill();
    for n in 50..100 {
        let (id, events) = (format!("during-{n}"), [event(n)]);
        let append = store.append("organization", &id, 0, &events, &ctx);
        tokio::time::timeout(Duration::from_secs(2), append)
            .await
            .expect("appends do not wait for NATS")
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.restart();

    let reader = nats_bus(&nats.url()).await;
    let published = stream_events(reader.jetstream(), org_id, 100, Duration::from_secs(60)).await;
    relay.cancel();
    let counts = id_counts(&published);
    assert_eq!(counts.len(), 100, "every event published");
    assert!(counts.values().all(|n| *n == 1), "none twice");
}
