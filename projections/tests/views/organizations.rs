//! The `organizations` and `memberships` tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use domain::Role;
use domain::organization::OrganizationCommand;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    RawEvent, catch_up, create_organization, metadata, organization, recorded_at, runner, store,
};

async fn organization_row(pool: &PgPool, org_id: Uuid) -> Option<(String, bool, DateTime<Utc>)> {
    sqlx::query_as("SELECT name, suspended, created_at FROM organizations WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn members(pool: &PgPool, org_id: Uuid) -> Vec<(Uuid, String, DateTime<Utc>)> {
    sqlx::query_as("SELECT user_id, role, added_at FROM memberships WHERE org_id = $1 ORDER BY role, user_id")
        .bind(org_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_created_organization_appears_with_its_owner_as_a_member(pool: PgPool) {
    let store = store(&pool);
    let owner = Uuid::new_v4();
    let org_id = create_organization(&store, "Acme", owner).await;

    catch_up(&runner(&store), &pool).await;

    let created_at = recorded_at(&pool, org_id, 1).await;
    assert_eq!(
        organization_row(&pool, org_id).await,
        Some(("Acme".to_owned(), false, created_at))
    );
    let added_at = recorded_at(&pool, org_id, 2).await;
    assert_eq!(
        members(&pool, org_id).await,
        vec![(owner, "owner".to_owned(), added_at)]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn members_added_re_roled_and_removed_are_reflected_row_by_row(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let (owner, ann, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let org_id = create_organization(&store, "Acme", owner).await;
    for (user_id, role) in [(ann, Role::Member), (bob, Role::Auditor)] {
        let add = OrganizationCommand::JoinByInvitation {
            user_id,
            role,
            invited_by: owner,
            invitation_id: Uuid::new_v4(),
        };
        organization(&store, org_id, add).await;
    }
    catch_up(&runner, &pool).await;
    let roles = |rows: Vec<(Uuid, String, DateTime<Utc>)>| {
        rows.into_iter()
            .map(|(user_id, role, _)| (user_id, role))
            .collect::<Vec<_>>()
    };
    let mut expected = vec![
        (bob, "auditor".to_owned()),
        (ann, "member".to_owned()),
        (owner, "owner".to_owned()),
    ];
    assert_eq!(roles(members(&pool, org_id).await), expected);
    assert_eq!(
        members(&pool, org_id).await[1].2,
        recorded_at(&pool, org_id, 3).await
    );

    let promote = OrganizationCommand::ChangeMemberRole {
        user_id: ann,
        role: Role::Admin,
        by: owner,
    };
    organization(&store, org_id, promote).await;
    let remove = OrganizationCommand::RemoveMember {
        user_id: bob,
        by: owner,
    };
    organization(&store, org_id, remove).await;
    catch_up(&runner, &pool).await;

    expected = vec![(ann, "admin".to_owned()), (owner, "owner".to_owned())];
    assert_eq!(roles(members(&pool, org_id).await), expected);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_renamed_organization_shows_its_new_name(pool: PgPool) {
    let store = store(&pool);
    let org_id = create_organization(&store, "Acme", Uuid::new_v4()).await;
    let rename = OrganizationCommand::RenameOrganization {
        name: "Acme Corp".into(),
    };
    organization(&store, org_id, rename).await;

    catch_up(&runner(&store), &pool).await;

    assert_eq!(organization_row(&pool, org_id).await.unwrap().0, "Acme Corp");
}

#[sqlx::test(migrations = "../migrations")]
async fn suspension_and_reactivation_toggle_the_suspended_flag(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let org_id = create_organization(&store, "Acme", Uuid::new_v4()).await;
    let bystander = create_organization(&store, "Other", Uuid::new_v4()).await;

    let suspend = OrganizationCommand::SuspendOrganization {
        reason: "unpaid".into(),
    };
    organization(&store, org_id, suspend).await;
    catch_up(&runner, &pool).await;
    assert!(organization_row(&pool, org_id).await.unwrap().1);
    assert!(!organization_row(&pool, bystander).await.unwrap().1);

    organization(&store, org_id, OrganizationCommand::ReactivateOrganization).await;
    catch_up(&runner, &pool).await;
    assert!(!organization_row(&pool, org_id).await.unwrap().1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_version_1_organization_created_event_is_upcast_and_projected(pool: PgPool) {
    let store = store(&pool);
    let org_id = Uuid::now_v7();
    RawEvent {
        aggregate_type: "organization",
        aggregate_id: org_id.to_string(),
        sequence: 1,
        event_type: "organization.created",
        version: "1",
        payload: json!({"type": "organization.created", "name": "Legacy", "owner": Uuid::new_v4()}),
        metadata: metadata(Some(org_id)),
    }
    .insert(&pool)
    .await;

    catch_up(&runner(&store), &pool).await;

    let created_at = recorded_at(&pool, org_id, 1).await;
    assert_eq!(
        organization_row(&pool, org_id).await,
        Some(("Legacy".to_owned(), false, created_at))
    );
}
