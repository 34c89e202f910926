//! Events stored in an old shape still load, and every reader of the log sees them current.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use domain::Role;
use domain::organization::{CREATED_EVENT_VERSION, Organization, OrganizationCommand};
use eventstore::log::read_event;
use eventstore::relay::{EventFilter, LocalBus};
use eventstore::{CommandBus, EventBus};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, spawn_relay, store};

/// Writes `organization.created` as version 1 stored it (`owner`, not `owner_user_id`), by SQL:
/// the domain no longer writes that shape.
async fn insert_version_1_created(pool: &PgPool, org_id: Uuid, owner: Uuid) {
    let version_1 = json!({ "type": "organization.created", "name": "Legacy Co", "owner": owner });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('organization', $1, 1, 'organization.created', '1', $2::text::json, $3::text::json)",
    )
    .bind(org_id.to_string())
    .bind(version_1.to_string())
    .bind(json!({ "org_id": org_id, "actor": "system" }).to_string())
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn an_organization_created_at_version_1_still_loads_and_takes_commands(pool: PgPool) {
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    insert_version_1_created(&pool, org_id, owner).await;
    let bus = CommandBus::<Organization>::new(store(&pool), ());

    let organization = bus.load(&org_id.to_string()).await.unwrap();

    assert_eq!(organization.name(), "Legacy Co");
    assert_eq!(organization.role_of(owner), Some(Role::Owner));
    let member = Uuid::new_v4();
    let add = OrganizationCommand::JoinByInvitation {
        user_id: member,
        role: Role::Member,
        invited_by: owner,
        invitation_id: Uuid::new_v4(),
    };
    let committed = bus
        .execute(&org_id.to_string(), add, &context(org_id))
        .await
        .unwrap();
    assert_eq!(committed.appended[0].sequence, 2);
}

/// The relay publishes what the log follower reads: a version 1 `organization.created` reaches
/// bus subscribers in the current shape (`owner_user_id`, version 2), as the event route gives it.
#[sqlx::test(migrations = "../migrations")]
async fn a_version_1_organization_created_arrives_upcast_on_the_bus(pool: PgPool) {
    let store = store(&pool);
    let bus = EventBus::from(LocalBus::default());
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    let mut subscription = bus.subscribe(EventFilter::Organization(org_id)).await.unwrap();
    let relay = spawn_relay(&store, bus, "relay");
    insert_version_1_created(&pool, org_id, owner).await;

    let received = tokio::time::timeout(Duration::from_secs(20), subscription.next())
        .await
        .expect("the relay publishes within 20 s")
        .expect("the subscription is open")
        .expect("a readable event");
    relay.cancel();

    let current = json!({ "type": "organization.created", "name": "Legacy Co", "owner_user_id": owner });
    assert_eq!(received.event.version, CREATED_EVENT_VERSION);
    assert_eq!(received.event.data, current);
    let fetched = read_event(&pool, store.upcasters(), org_id, received.event.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (fetched.version.as_str(), fetched.data),
        (CREATED_EVENT_VERSION, current)
    );
}
