//! The table stays readable and writable by cqrs-es's own Postgres repository (postgres-es):
//! the layout is a superset, so tools and tests built on it keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use cqrs_es::EventStore as _;
use cqrs_es::persist::PersistedEventStore;
use domain::Role;
use domain::organization::{Organization, OrganizationCommand};
use eventstore::CommandBus;
use postgres_es::{PostgresEventRepository, postgres_cqrs};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, store};

#[sqlx::test(migrations = "../migrations")]
async fn postgres_es_reads_what_the_command_bus_wrote(pool: PgPool) {
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    let bus = CommandBus::<Organization>::new(store(&pool), ());
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };
    bus.create(&org_id.to_string(), create, &context(org_id))
        .await
        .unwrap();

    let theirs =
        PersistedEventStore::<_, Organization>::new_event_store(PostgresEventRepository::new(pool.clone()));
    let events = theirs.load_events(&org_id.to_string()).await.unwrap();

    assert_eq!(events.len(), 2);
    assert_eq!(events[0].sequence, 1);
    assert_eq!(events[1].metadata["org_id"], org_id.to_string());
}

#[sqlx::test(migrations = "../migrations")]
async fn the_command_bus_continues_what_postgres_es_wrote(pool: PgPool) {
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    let cqrs = postgres_cqrs::<Organization>(pool.clone(), Vec::new(), ());
    let metadata = HashMap::from([("org_id".to_owned(), org_id.to_string())]);
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };
    cqrs.execute_with_metadata(&org_id.to_string(), create, metadata)
        .await
        .unwrap();

    let bus = CommandBus::<Organization>::new(store(&pool), ());
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

    assert_eq!(committed.appended[0].sequence, 3);
    assert_eq!(committed.state.role_of(owner), Some(Role::Owner));
    let stored_org: Vec<Option<Uuid>> = sqlx::query_scalar("SELECT org_id FROM events ORDER BY sequence")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored_org,
        vec![Some(org_id); 3],
        "the org column is derived from any writer's metadata"
    );
}
