//! An older event delivered again after newer ones never moves a row backwards.
//!
//! Old events come back whenever a follower's cursor is reset or moved (a restore from a
//! logical dump, a hand-edited checkpoint, a re-delivery after a failover). Each test folds a
//! history, then hands the projector one of its *older* events again, as such a replay does,
//! and checks that the newer state holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeDelta, Utc};
use domain::organization::OrganizationCommand;
use domain::session::{RevocationReason, Session, SessionCommand};
use domain::user::UserCommand;
use domain::{Actor, Role};
use eventstore::log::read_after_with;
use eventstore::{CommandBus, CommandContext, Cursor, RecordedEvent};
use projections::{IdentityProjector, Projector};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{
    catch_up, create_api_key, create_organization, organization, register_user, revoke_api_key, runner,
    snapshot, store, user,
};

/// Event `sequence` of aggregate `aggregate_id`, as the follower delivers it.
async fn logged_event(pool: &PgPool, aggregate_id: Uuid, sequence: i64) -> RecordedEvent {
    read_after_with(pool, store(pool).upcasters(), Cursor::START, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|event| event.aggregate_id == aggregate_id.to_string() && event.sequence == sequence)
        .expect("the event is in the log")
}

/// Applies `event` once more, committed, as a runner would after its cursor moved back.
async fn replay(pool: &PgPool, event: &RecordedEvent) {
    let mut transaction = pool.begin().await.unwrap();
    IdentityProjector.apply(&mut transaction, event).await.unwrap();
    transaction.commit().await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_registration_does_not_bring_back_the_old_password_digest(pool: PgPool) {
    let store = store(&pool);
    let user_id = register_user(&store, "ann@example.com", "digest-of-old-password").await;
    let change = UserCommand::ChangePassword {
        password_hash: "digest-of-new-password".into(),
    };
    user(&store, user_id, change).await;
    user(&store, user_id, UserCommand::PromoteToPlatformAdmin).await;
    catch_up(&runner(&store), &pool).await;

    replay(&pool, &logged_event(&pool, user_id, 1).await).await;

    let (digest, admin): (String, bool) =
        sqlx::query_as("SELECT password_hash, is_platform_admin FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((digest.as_str(), admin), ("digest-of-new-password", true));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_key_creation_does_not_unrevoke_the_key(pool: PgPool) {
    let store = store(&pool);
    let org_id = Uuid::now_v7();
    let key_id = create_api_key(&store, org_id, "CI", "ak_replayed", Actor::System).await;
    revoke_api_key(&store, org_id, key_id).await;
    catch_up(&runner(&store), &pool).await;

    replay(&pool, &logged_event(&pool, key_id, 1).await).await;

    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_id = $1")
        .bind(key_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(revoked, "a revoked key stays revoked");
}

#[sqlx::test(migrations = "../migrations")]
async fn replayed_organization_events_do_not_bring_back_a_removed_member_or_an_old_state(pool: PgPool) {
    let store = store(&pool);
    let (owner, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let org_id = create_organization(&store, "Acme", owner).await;
    let add = OrganizationCommand::JoinByInvitation {
        user_id: bob,
        role: Role::Member,
        invited_by: owner,
        invitation_id: Uuid::new_v4(),
    };
    organization(&store, org_id, add).await;
    let re_role = OrganizationCommand::ChangeMemberRole {
        user_id: bob,
        role: Role::Admin,
        by: owner,
    };
    organization(&store, org_id, re_role).await;
    let remove = OrganizationCommand::RemoveMember {
        user_id: bob,
        by: owner,
    };
    organization(&store, org_id, remove).await;
    let suspend = OrganizationCommand::SuspendOrganization {
        reason: String::new(),
    };
    organization(&store, org_id, suspend).await;
    catch_up(&runner(&store), &pool).await;
    let before = snapshot(&pool).await;

    // 1 created, 2 founder added, 3 bob added, 4 bob's role changed, 5 bob removed, 6 suspended.
    for sequence in [1, 3, 4] {
        replay(&pool, &logged_event(&pool, org_id, sequence).await).await;
    }

    assert_eq!(
        snapshot(&pool).await,
        before,
        "bob stays removed, the organization suspended"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_session_start_does_not_revive_a_revoked_session(pool: PgPool) {
    let store = store(&pool);
    let sessions = CommandBus::<Session>::new(store.clone(), ());
    let session_id = Uuid::now_v7();
    let context = CommandContext::system(None);
    let start = SessionCommand::StartSession {
        user_id: Uuid::new_v4(),
        org_id: None,
        token_hash: "h1".into(),
        expires_at: Utc::now() + TimeDelta::days(30),
        credential_version: 0,
    };
    sessions
        .create(&session_id.to_string(), start, &context)
        .await
        .unwrap();
    let end = SessionCommand::EndSession {
        reason: RevocationReason::PasswordChanged,
    };
    sessions
        .execute(&session_id.to_string(), end, &context)
        .await
        .unwrap();
    catch_up(&runner(&store), &pool).await;

    replay(&pool, &logged_event(&pool, session_id, 1).await).await;

    let revoked: bool =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM sessions WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(revoked, "a revoked session stays revoked");
}

#[sqlx::test(migrations = "../migrations")]
async fn clearing_the_views_and_replaying_the_log_rebuilds_identical_rows(pool: PgPool) {
    let store = store(&pool);
    let user_id = register_user(&store, "ann@example.com", "digest-1").await;
    let change = UserCommand::ChangePassword {
        password_hash: "digest-2".into(),
    };
    user(&store, user_id, change).await;
    let org_id = create_organization(&store, "Acme", user_id).await;
    let key_id = create_api_key(&store, org_id, "CI", "ak_rebuilt", Actor::System).await;
    revoke_api_key(&store, org_id, key_id).await;
    let session_id = Uuid::now_v7();
    let start = SessionCommand::StartSession {
        user_id,
        org_id: Some(org_id),
        token_hash: "h1".into(),
        expires_at: Utc::now() + TimeDelta::days(30),
        credential_version: 0,
    };
    CommandBus::<Session>::new(store.clone(), ())
        .create(
            &session_id.to_string(),
            start,
            &CommandContext::system(Some(org_id)),
        )
        .await
        .unwrap();
    catch_up(&runner(&store), &pool).await;
    let sessions = "SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY session_id), '[]') FROM sessions s";
    let before: (serde_json::Value, serde_json::Value) = (
        snapshot(&pool).await,
        sqlx::query_scalar(sessions).fetch_one(&pool).await.unwrap(),
    );

    let mut transaction = pool.begin().await.unwrap();
    IdentityProjector.clear(&mut transaction).await.unwrap();
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = $1")
        .bind(projections::IDENTITY)
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "clear empties the views");
    catch_up(&runner(&store), &pool).await;

    let after: (serde_json::Value, serde_json::Value) = (
        snapshot(&pool).await,
        sqlx::query_scalar(sessions).fetch_one(&pool).await.unwrap(),
    );
    assert_eq!(after, before);
}

#[sqlx::test(migrations = "../migrations")]
async fn replayed_quotas_do_not_bring_back_older_limits(pool: PgPool) {
    use domain::organization::Quotas;

    let store = store(&pool);
    let org_id = create_organization(&store, "Acme", Uuid::new_v4()).await;
    for concurrent_runs in [Some(2), Some(7)] {
        let quotas = Quotas {
            tokens_per_month: Some(1_000),
            concurrent_runs,
            requests_per_minute: None,
        };
        organization(&store, org_id, OrganizationCommand::SetQuotas { quotas }).await;
    }
    catch_up(&runner(&store), &pool).await;
    let limits = || async {
        sqlx::query_as::<_, (Option<i64>, Option<i32>, Option<i32>)>(
            "SELECT tokens_per_month, concurrent_runs, requests_per_minute FROM organizations WHERE org_id = $1",
        )
        .bind(org_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(
        limits().await,
        (Some(1_000), Some(7), None),
        "the latest limits are folded"
    );

    replay(&pool, &logged_event(&pool, org_id, 3).await).await;

    assert_eq!(limits().await, (Some(1_000), Some(7), None));
}
