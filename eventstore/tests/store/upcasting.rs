//! Events stored in an old shape still load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::Role;
use domain::organization::{Organization, OrganizationCommand};
use eventstore::CommandBus;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, store};

#[sqlx::test(migrations = "../migrations")]
async fn an_organization_created_at_version_1_still_loads_and_takes_commands(pool: PgPool) {
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    let version_1 = json!({ "type": "organization.created", "name": "Legacy Co", "owner": owner });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('organization', $1, 1, 'organization.created', '1', $2::text::json, $3::text::json)",
    )
    .bind(org_id.to_string())
    .bind(version_1.to_string())
    .bind(json!({ "org_id": org_id, "actor": "system" }).to_string())
    .execute(&pool)
    .await
    .unwrap();
    let bus = CommandBus::<Organization>::new(store(&pool), ());

    let organization = bus.load(&org_id.to_string()).await.unwrap();

    assert_eq!(organization.name(), "Legacy Co");
    assert_eq!(organization.role_of(owner), Some(Role::Owner));
    let member = Uuid::new_v4();
    let add = OrganizationCommand::AddMember {
        user_id: member,
        role: Role::Member,
        by: owner,
    };
    let committed = bus
        .execute(&org_id.to_string(), add, &context(org_id))
        .await
        .unwrap();
    assert_eq!(committed.appended[0].sequence, 2);
}
