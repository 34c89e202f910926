//! `EventBus::subscribe`: the same live feed of committed events from the in-process bus and
//! from NATS, filtered to one organization, in log order, without credential digests, with
//! events too large for NATS flagged as cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eventstore::relay::{BusEvent, EventFilter, EventSubscription, LocalBus};
use eventstore::store::NewEvent;
use eventstore::{EventBus, EventStore};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, nats_bus, nats_url, renamed_event, spawn_relay, store};

/// Appends, alternating between organizations A and B: A gets five events on two aggregates
/// (one of them carrying a credential digest), B gets three. Returns A's ids in log order.
async fn write_two_organizations(store: &EventStore, a: Uuid, b: Uuid) -> Vec<Uuid> {
    let (ctx_a, ctx_b) = (context(a), context(b));
    let mut ids = Vec::new();
    let key = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "api_key.created".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({ "type": "api_key.created", "name": "ci", "key_hash": "d1g35t" }).to_string(),
    };
    let first = [renamed_event(0), key];
    store
        .append("organization", "a1", 0, &first, &ctx_a)
        .await
        .unwrap();
    ids.extend(first.iter().map(|e| e.event_id));
    for n in 0..3 {
        let theirs = renamed_event(100 + n);
        store
            .append("organization", &format!("b{n}"), 0, &[theirs], &ctx_b)
            .await
            .unwrap();
        let ours = renamed_event(n);
        store
            .append("organization", "a2", n, std::slice::from_ref(&ours), &ctx_a)
            .await
            .unwrap();
        ids.push(ours.event_id);
    }
    ids
}

/// What the subscription delivered until `expected` arrived and a quiet moment passed.
async fn receive(subscription: &mut EventSubscription, expected: usize) -> Vec<BusEvent> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let wait = if received.len() >= expected {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match tokio::time::timeout(wait, subscription.next()).await {
            Ok(Some(item)) => received.push(item.expect("a readable event")),
            Ok(None) | Err(_) => return received,
        }
    }
}

async fn assert_only_organization_a_in_order(store: &EventStore, bus: EventBus) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut subscription = bus.subscribe(EventFilter::Organization(a)).await.unwrap();
    let relay = spawn_relay(store, bus, "relay");

    let written = write_two_organizations(store, a, b).await;
    let received = receive(&mut subscription, written.len()).await;
    relay.cancel();

    let ids: Vec<Uuid> = received.iter().map(|e| e.event.id).collect();
    assert_eq!(ids, written, "A's events, each once, in log order; none of B's");
    assert!(received.iter().all(|e| e.event.org_id == Some(a)));
    assert!(
        received
            .iter()
            .all(|e| !e.truncated && e.truncated_fields.is_empty())
    );
    let key = &received[1].event;
    assert_eq!(key.event_type, "api_key.created");
    assert_eq!(
        key.data,
        json!({ "type": "api_key.created", "name": "ci" }),
        "no digest"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_in_process_subscriber_receives_its_organizations_events_in_log_order(pool: PgPool) {
    let store = store(&pool);
    let bus = EventBus::from(LocalBus::default());
    assert_only_organization_a_in_order(&store, bus).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_nats_subscriber_receives_its_organizations_events_in_log_order(pool: PgPool) {
    let store = store(&pool);
    let bus = EventBus::from(nats_bus(&nats_url()).await);
    assert_only_organization_a_in_order(&store, bus).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_nats_subscriber_sees_an_event_too_large_for_nats_flagged_as_cut(pool: PgPool) {
    let store = store(&pool);
    let bus = EventBus::from(nats_bus(&nats_url()).await);
    let org = Uuid::now_v7();
    let mut subscription = bus.subscribe(EventFilter::Organization(org)).await.unwrap();
    let relay = spawn_relay(&store, bus, "relay");
    let big = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "message.completed".to_owned(),
        event_version: "1".to_owned(),
        payload: json!({ "type": "message.completed", "content": "w ".repeat(1_000_000) }).to_string(),
    };
    let ctx = context(org);
    store
        .append("run", "r", 0, std::slice::from_ref(&big), &ctx)
        .await
        .unwrap();

    let received = receive(&mut subscription, 1).await;
    relay.cancel();

    assert_eq!(received.len(), 1);
    let cut = &received[0];
    assert_eq!(cut.event.id, big.event_id);
    assert!(cut.truncated);
    assert_eq!(cut.truncated_fields, ["content"]);
    assert_eq!(cut.event.data, json!({ "type": "message.completed" }));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_subscriber_of_everything_sees_every_organization(pool: PgPool) {
    let store = store(&pool);
    let bus = EventBus::from(LocalBus::default());
    let mut subscription = bus.subscribe(EventFilter::All).await.unwrap();
    let relay = spawn_relay(&store, bus, "relay");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());

    write_two_organizations(&store, a, b).await;
    let received = receive(&mut subscription, 8).await;
    relay.cancel();

    assert_eq!(received.len(), 8);
    let orgs: Vec<Uuid> = received.iter().filter_map(|e| e.event.org_id).collect();
    assert_eq!(orgs.iter().filter(|org| **org == a).count(), 5);
    assert_eq!(orgs.iter().filter(|org| **org == b).count(), 3);
}

#[tokio::test]
async fn subscribing_while_nats_is_down_fails_instead_of_waiting_for_it() {
    let mut nats = crate::helpers::PrivateNats::start();
    let bus = EventBus::from(nats_bus(&nats.url()).await);
    nats.kill();

    let outcome = tokio::time::timeout(Duration::from_secs(30), bus.subscribe(EventFilter::All)).await;

    assert!(
        matches!(outcome, Ok(Err(_))),
        "expected an error within 30 s, got {}",
        match outcome {
            Err(_) => "no answer at all".to_owned(),
            Ok(result) => format!("{result:?}"),
        }
    );
}
