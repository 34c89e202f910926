//! The `users` table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use domain::user::UserCommand;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{catch_up, recorded_at, register_user, runner, store, user};

type UserRow = (String, String, bool, DateTime<Utc>);

async fn user_row(pool: &PgPool, user_id: Uuid) -> Option<UserRow> {
    sqlx::query_as(
        "SELECT email, password_hash, is_platform_admin, registered_at FROM users WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_registered_user_appears_with_its_email_hash_and_time_of_registration(pool: PgPool) {
    let store = store(&pool);
    let user_id = register_user(&store, " Ann@Example.com ", "hash-1").await;

    catch_up(&runner(&store), &pool).await;

    let registered_at = recorded_at(&pool, user_id, 1).await;
    assert_eq!(
        user_row(&pool, user_id).await,
        Some((
            "ann@example.com".to_owned(),
            "hash-1".to_owned(),
            false,
            registered_at
        ))
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_changed_password_and_a_completed_reset_each_replace_the_hash(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let user_id = register_user(&store, "ann@example.com", "hash-1").await;
    let change = UserCommand::ChangePassword {
        password_hash: "hash-2".into(),
    };
    user(&store, user_id, change).await;
    catch_up(&runner, &pool).await;
    assert_eq!(user_row(&pool, user_id).await.unwrap().1, "hash-2");

    let request = UserCommand::RequestPasswordReset {
        token_hash: "token".into(),
        expires_at: Utc::now() + Duration::hours(1),
        now: Utc::now(),
    };
    user(&store, user_id, request).await;
    catch_up(&runner, &pool).await;
    assert_eq!(
        user_row(&pool, user_id).await.unwrap().1,
        "hash-2",
        "a reset request changes nothing here"
    );

    let complete = UserCommand::CompletePasswordReset {
        token_hash: "token".into(),
        password_hash: "hash-3".into(),
        now: Utc::now(),
    };
    user(&store, user_id, complete).await;
    catch_up(&runner, &pool).await;
    assert_eq!(user_row(&pool, user_id).await.unwrap().1, "hash-3");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_promoted_user_is_a_platform_admin_and_others_are_not(pool: PgPool) {
    let store = store(&pool);
    let admin = register_user(&store, "admin@example.com", "hash-a").await;
    let other = register_user(&store, "other@example.com", "hash-o").await;
    user(&store, admin, UserCommand::PromoteToPlatformAdmin).await;

    catch_up(&runner(&store), &pool).await;

    assert!(user_row(&pool, admin).await.unwrap().2);
    assert!(!user_row(&pool, other).await.unwrap().2);
}
