//! The `sessions` table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use domain::session::{RevocationReason, Session, SessionCommand};
use eventstore::{CommandBus, CommandContext};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{catch_up, runner, store};

#[sqlx::test(migrations = "../migrations")]
async fn a_session_is_listed_until_it_is_revoked_and_rotations_change_nothing(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let sessions = CommandBus::<Session>::new(store.clone(), ());
    let (session_id, user_id, org_id) = (Uuid::now_v7(), Uuid::new_v4(), Uuid::now_v7());
    let context = CommandContext::system(Some(org_id));
    let now = Utc::now();
    let start = SessionCommand::StartSession {
        user_id,
        org_id: Some(org_id),
        token_hash: "h1".into(),
        expires_at: now + TimeDelta::days(30),
        credential_version: 0,
    };
    sessions
        .create(&session_id.to_string(), start, &context)
        .await
        .unwrap();
    let rotate = SessionCommand::RefreshSession {
        presented_hash: "h1".into(),
        new_hash: "h2".into(),
        new_expires_at: now + TimeDelta::days(30),
        now,
        repeat_grace: TimeDelta::zero(),
    };
    sessions
        .execute(&session_id.to_string(), rotate, &context)
        .await
        .unwrap();
    catch_up(&runner, &pool).await;

    let row: (Uuid, Option<Uuid>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT user_id, org_id, revoked_at FROM sessions WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row, (user_id, Some(org_id), None));

    let end = SessionCommand::EndSession {
        reason: RevocationReason::PasswordChanged,
    };
    sessions
        .execute(&session_id.to_string(), end, &context)
        .await
        .unwrap();
    catch_up(&runner, &pool).await;

    let revoked: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(revoked.is_some(), "the revocation is recorded with its time");
}
