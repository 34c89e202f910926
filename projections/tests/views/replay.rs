//! Rebuilds, replays, racing runners and events the projector cannot or need not read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::organization::OrganizationCommand;
use domain::user::UserCommand;
use domain::{Actor, Role};
use eventstore::{Cursor, EventStore, RecordedEvent};
use projections::{IDENTITY, IdentityProjector, ProjectionRunner, Projector};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::helpers::{
    RawEvent, catch_up, checkpoint, create_api_key, create_organization, last_cursor, metadata, organization,
    register_user, revoke_api_key, runner, runner_of, snapshot, store, user,
};

/// A history touching every folded event type.
async fn history(store: &EventStore) {
    let ann = register_user(store, "ann@example.com", "hash-1").await;
    let bob = register_user(store, "bob@example.com", "hash-b").await;
    user(store, ann, UserCommand::PromoteToPlatformAdmin).await;
    let change = UserCommand::ChangePassword {
        password_hash: "hash-2".into(),
    };
    user(store, ann, change).await;
    let org_id = create_organization(store, "Acme", ann).await;
    let add = OrganizationCommand::JoinByInvitation {
        user_id: bob,
        role: Role::Member,
        invited_by: ann,
        invitation_id: Uuid::new_v4(),
    };
    organization(store, org_id, add).await;
    let re_role = OrganizationCommand::ChangeMemberRole {
        user_id: bob,
        role: Role::Admin,
        by: ann,
    };
    organization(store, org_id, re_role).await;
    let suspend = OrganizationCommand::SuspendOrganization {
        reason: String::new(),
    };
    organization(store, org_id, suspend).await;
    let other = create_organization(store, "Other", bob).await;
    let add = OrganizationCommand::JoinByInvitation {
        user_id: ann,
        role: Role::Auditor,
        invited_by: bob,
        invitation_id: Uuid::new_v4(),
    };
    organization(store, other, add).await;
    let remove = OrganizationCommand::RemoveMember {
        user_id: ann,
        by: bob,
    };
    organization(store, other, remove).await;
    let kept = create_api_key(store, org_id, "kept", "ak_kept", Actor::User { id: ann }).await;
    let revoked = create_api_key(store, org_id, "revoked", "ak_revoked", Actor::System).await;
    revoke_api_key(store, org_id, revoked).await;
    assert_ne!(kept, revoked);
}

#[sqlx::test(migrations = "../migrations")]
async fn rebuilding_from_empty_tables_gives_identical_rows(pool: PgPool) {
    let store = store(&pool);
    history(&store).await;
    catch_up(&runner(&store), &pool).await;
    let before = snapshot(&pool).await;
    assert_eq!(before["memberships"].as_array().unwrap().len(), 3, "{before:#}");

    for table in ["users", "organizations", "memberships", "api_keys"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = $1")
        .bind(IDENTITY)
        .execute(&pool)
        .await
        .unwrap();
    catch_up(&runner(&store), &pool).await;

    assert_eq!(snapshot(&pool).await, before);
}

#[sqlx::test(migrations = "../migrations")]
async fn replaying_over_the_existing_rows_gives_identical_rows(pool: PgPool) {
    let store = store(&pool);
    history(&store).await;
    catch_up(&runner(&store), &pool).await;
    let before = snapshot(&pool).await;

    sqlx::query("DELETE FROM follower_checkpoints WHERE name = $1")
        .bind(IDENTITY)
        .execute(&pool)
        .await
        .unwrap();
    catch_up(&runner(&store), &pool).await;

    assert_eq!(snapshot(&pool).await, before);
}

/// The identity projector that also notes every event it applies, in the same transaction, in a
/// table without constraints: a double application would show as a duplicate there.
struct Noting;

#[async_trait]
impl Projector for Noting {
    fn name(&self) -> &'static str {
        IDENTITY
    }

    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        IdentityProjector.clear(connection).await
    }

    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        IdentityProjector.apply(connection, event).await?;
        sqlx::query("INSERT INTO applied_events (event_id) VALUES ($1)")
            .bind(event.id)
            .execute(connection)
            .await?;
        Ok(())
    }
}

/// Steps until the checkpoint reaches `target`; returns how many steps failed.
async fn step_until(runner: &ProjectionRunner, pool: &PgPool, target: Cursor) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut failures = 0;
    while checkpoint(pool).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runners did not catch up"
        );
        match runner.step().await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(_) => failures += 1,
        }
    }
    failures
}

#[sqlx::test(migrations = "../migrations")]
async fn two_runners_stepping_concurrently_apply_every_event_exactly_once(pool: PgPool) {
    let store = store(&pool);
    sqlx::query("CREATE TABLE applied_events (event_id uuid NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    // 600 events: many runner batches (50 events at most each), so the runners race on each.
    for index in 0..300 {
        create_organization(&store, &format!("Org {index}"), Uuid::new_v4()).await;
    }
    let target = last_cursor(&pool).await;
    let (first, second) = (
        runner_of(&store, Arc::new(Noting)),
        runner_of(&store, Arc::new(Noting)),
    );

    let (failures_1, failures_2) = tokio::join!(
        step_until(&first, &pool, target),
        step_until(&second, &pool, target)
    );

    assert_eq!(
        (failures_1, failures_2),
        (0, 0),
        "a lost race rolls back, it does not fail"
    );
    assert_eq!(checkpoint(&pool).await, target);
    let (noted, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM applied_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((noted, distinct), (600, 600));
    let (organizations, owners): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM memberships WHERE role = 'owner')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((organizations, owners), (300, 300));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_malformed_folded_event_fails_the_batch_and_holds_the_checkpoint(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    RawEvent {
        aggregate_type: "user",
        aggregate_id: Uuid::now_v7().to_string(),
        sequence: 1,
        event_type: "user.registered",
        version: "1",
        payload: json!({"type": "user.registered", "email": "ann@example.com"}),
        metadata: metadata(None),
    }
    .insert(&pool)
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        assert!(tokio::time::Instant::now() < deadline, "the event never failed");
        match runner.step().await {
            Err(error) => break error,
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };

    assert!(matches!(error, sqlx::Error::Decode(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("user.registered") && message.contains("password_hash"),
        "{message}"
    );
    assert_eq!(checkpoint(&pool).await, Cursor::START);
    assert!(
        runner.step().await.is_err(),
        "it fails again rather than skipping"
    );
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn events_it_does_not_fold_are_passed_over_unread(pool: PgPool) {
    let store = store(&pool);
    let user_id = Uuid::now_v7();
    for (sequence, event_type) in [(1, "user.something_new"), (2, "user.password_reset_requested")] {
        RawEvent {
            aggregate_type: "user",
            aggregate_id: user_id.to_string(),
            sequence,
            event_type,
            version: "1",
            payload: json!("not even an object"),
            metadata: json!({"recorded_at": Utc::now().to_rfc3339()}),
        }
        .insert(&pool)
        .await;
    }
    RawEvent {
        aggregate_type: "session",
        aggregate_id: "family-1".into(),
        sequence: 1,
        event_type: "session.refreshed",
        version: "1",
        payload: json!({}),
        metadata: json!({}),
    }
    .insert(&pool)
    .await;

    catch_up(&runner(&store), &pool).await;

    assert_eq!(checkpoint(&pool).await, last_cursor(&pool).await);
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}
