//! What one command writes, and what it carries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use domain::organization::{Organization, OrganizationCommand, OrganizationError};
use domain::{Actor, Role};
use eventstore::{CommandBus, CommandError, DecidedWith};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, store};

#[sqlx::test(migrations = "../migrations")]
async fn a_command_writes_all_its_events_in_one_transaction_with_its_metadata(pool: PgPool) {
    let bus = CommandBus::<Organization>::new(store(&pool), ());
    let org_id = Uuid::now_v7();
    let owner = Uuid::new_v4();
    let admin = Uuid::new_v4();
    let mut context = context(org_id);
    context.actor = Actor::User { id: owner };
    context.impersonator_id = Some(admin);
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };

    let committed = bus.create(&org_id.to_string(), create, &context).await.unwrap();

    assert_eq!(committed.version, 2, "created + owner added");
    let sequences: Vec<i64> = committed.appended.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![1, 2]);
    assert_eq!(
        committed.appended[0].transaction_id,
        committed.appended[1].transaction_id
    );
    assert!(committed.appended[0].position < committed.appended[1].position);
    let rows: Vec<(Uuid, Option<Uuid>, Value)> =
        sqlx::query_as("SELECT event_id, org_id, metadata::jsonb FROM events ORDER BY sequence")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for ((event_id, stored_org, metadata), appended) in rows.iter().zip(&committed.appended) {
        assert_eq!(*event_id, appended.event_id);
        assert_eq!(*stored_org, Some(org_id));
        assert_eq!(metadata["actor"], format!("user:{owner}"));
        assert_eq!(metadata["org_id"], org_id.to_string());
        assert_eq!(metadata["impersonator_id"], admin.to_string());
        assert_eq!(metadata["request_id"], context.request_id().unwrap());
        assert_eq!(metadata["client_ip"], "203.0.113.7");
        assert_eq!(metadata["user_agent"], "agentry-tests/1");
        assert_eq!(metadata["correlation_id"], context.correlation_id.to_string());
        assert_eq!(
            metadata["causation_id"],
            context.causation_id.unwrap().to_string()
        );
        let recorded: DateTime<Utc> = metadata["recorded_at"].as_str().unwrap().parse().unwrap();
        assert!(
            (Utc::now() - recorded).num_seconds().abs() < 60,
            "recorded_at is now, in UTC"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rejected_command_writes_nothing(pool: PgPool) {
    let bus = CommandBus::<Organization>::new(store(&pool), ());
    let org_id = Uuid::now_v7();

    let outcome = bus
        .execute(
            &org_id.to_string(),
            OrganizationCommand::RenameOrganization { name: "x".into() },
            &context(org_id),
        )
        .await;

    assert!(matches!(
        outcome,
        Err(CommandError::Rejected(OrganizationError::NotFound))
    ));
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn another_node_loads_what_one_node_wrote(pool: PgPool) {
    let writer = CommandBus::<Organization>::new(store(&pool), ());
    let reader = CommandBus::<Organization>::new(store(&pool), ());
    let org_id = Uuid::now_v7();
    let (owner, member) = (Uuid::new_v4(), Uuid::new_v4());
    let id = org_id.to_string();
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: owner,
    };
    writer.create(&id, create, &context(org_id)).await.unwrap();
    let add = OrganizationCommand::JoinByInvitation {
        user_id: member,
        role: Role::Auditor,
        invited_by: owner,
        invitation_id: Uuid::new_v4(),
    };
    writer.execute(&id, add, &context(org_id)).await.unwrap();

    let organization = reader.load(&id).await.unwrap();

    assert_eq!(organization.name(), "Acme");
    assert_eq!(organization.role_of(owner), Some(Role::Owner));
    assert_eq!(organization.role_of(member), Some(Role::Auditor));
}

/// Creates an organization through `bus`; answers its id and the version it is at (2).
async fn organization(bus: &CommandBus<Organization>) -> String {
    let org_id = Uuid::now_v7();
    let create = OrganizationCommand::CreateOrganization {
        name: "Acme".into(),
        owner_user_id: Uuid::new_v4(),
    };
    bus.create(&org_id.to_string(), create, &context(org_id))
        .await
        .unwrap();
    org_id.to_string()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_command_decided_with_another_aggregate_commits_only_while_that_one_has_not_moved(pool: PgPool) {
    let bus = CommandBus::<Organization>::new(store(&pool), ());
    let other = organization(&bus).await;
    let decided_with = DecidedWith::new("organization", &other, 2);
    let create = || OrganizationCommand::CreateOrganization {
        name: "Beta".into(),
        owner_user_id: Uuid::new_v4(),
    };

    let first = Uuid::now_v7();
    let written = bus
        .create_if_unmoved(&first.to_string(), create(), &context(first), &decided_with)
        .await
        .unwrap();
    assert_eq!(written.map(|committed| committed.version), Some(2), "written");

    let rename = OrganizationCommand::RenameOrganization {
        name: "Acme 2".into(),
    };
    let org_id = Uuid::parse_str(&other).unwrap();
    bus.execute(&other, rename, &context(org_id)).await.unwrap();
    let second = Uuid::now_v7();
    let refused = bus
        .create_if_unmoved(&second.to_string(), create(), &context(second), &decided_with)
        .await
        .unwrap();
    assert!(refused.is_none(), "the other aggregate moved to version 3");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(second.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing of the second command was written");

    let again = DecidedWith::new("organization", &other, 3);
    let written = bus
        .create_if_unmoved(&second.to_string(), create(), &context(second), &again)
        .await
        .unwrap();
    assert!(
        written.is_some(),
        "decided again with the version now current, it commits"
    );
}
