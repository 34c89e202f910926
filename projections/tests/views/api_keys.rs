//! The `api_keys` table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use domain::Actor;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{catch_up, create_api_key, recorded_at, revoke_api_key, runner, store};

type KeyRow = (
    Uuid,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

async fn key_row(pool: &PgPool, key_id: Uuid) -> KeyRow {
    sqlx::query_as(
        "SELECT org_id, name, prefix, key_hash, created_by, created_at, revoked_at, last_used_at
           FROM api_keys WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_created_key_is_listed_and_a_revoked_key_carries_the_time_of_revocation(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let (org_id, creator) = (Uuid::now_v7(), Uuid::new_v4());
    let key_id = create_api_key(&store, org_id, "CI", "ak_live_1234", Actor::User { id: creator }).await;
    catch_up(&runner, &pool).await;

    let created_at = recorded_at(&pool, key_id, 1).await;
    let created = (
        org_id,
        "CI".to_owned(),
        "ak_live_1234".to_owned(),
        "hash-of-ak_live_1234".to_owned(),
        format!("user:{creator}"),
        created_at,
        None,
        None,
    );
    assert_eq!(key_row(&pool, key_id).await, created);

    revoke_api_key(&store, org_id, key_id).await;
    catch_up(&runner, &pool).await;

    let revoked_at = recorded_at(&pool, key_id, 2).await;
    assert_eq!(key_row(&pool, key_id).await.6, Some(revoked_at));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_projector_leaves_last_used_at_to_the_auth_guard(pool: PgPool) {
    let store = store(&pool);
    let runner = runner(&store);
    let org_id = Uuid::now_v7();
    let key_id = create_api_key(&store, org_id, "CI", "ak_live_5678", Actor::System).await;
    catch_up(&runner, &pool).await;
    let (used_at,): (DateTime<Utc>,) =
        sqlx::query_as("UPDATE api_keys SET last_used_at = now() WHERE key_id = $1 RETURNING last_used_at")
            .bind(key_id)
            .fetch_one(&pool)
            .await
            .unwrap();

    revoke_api_key(&store, org_id, key_id).await;
    catch_up(&runner, &pool).await;

    assert_eq!(key_row(&pool, key_id).await.7, Some(used_at));
}
