//! An append guarded by its caller's standing (`CallerStanding`) writes nothing once the
//! identity read model shows another standing, alone or in a group; the rest of its group
//! commits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::store::{AppendedEvent, DecidedWith};
use eventstore::{CallerStanding, EventStore, StoreError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::group_commit::{append_new, busy_store, event_count, settle, spawn};
use crate::helpers::{context, renamed_event, store};

/// The standing text of `user_id` in `org_id` (no session, no impersonation), as the
/// identity read model shows it now.
const STANDING_NOW: &str = concat!(
    "SELECT ",
    eventstore::standing_text!("c."),
    " FROM (SELECT ",
    eventstore::standing_columns!("k."),
    " FROM (SELECT $1::uuid AS user_id, $2::uuid AS org_id, NULL::uuid AS session_id,
                   NULL::uuid AS impersonation_id) k) c"
);

/// A user who is a `role` of a new organization: their standing and its text now.
async fn member(pool: &PgPool, role: &str) -> CallerStanding {
    let (user_id, org_id) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "WITH u AS (INSERT INTO users (user_id, email, password_hash, registered_at)
                    VALUES ($1, $1::text || '@example.com', 'x', now())),
              o AS (INSERT INTO organizations (org_id, name, created_at) VALUES ($2, 'Org', now()))
         INSERT INTO memberships (org_id, user_id, role, added_at) VALUES ($2, $1, $3, now())",
    )
    .bind(user_id)
    .bind(org_id)
    .bind(role)
    .execute(pool)
    .await
    .unwrap();
    standing_now(pool, user_id, org_id).await
}

async fn standing_now(pool: &PgPool, user_id: Uuid, org_id: Uuid) -> CallerStanding {
    let text: String = sqlx::query_scalar(STANDING_NOW)
        .bind(user_id)
        .bind(org_id)
        .fetch_one(pool)
        .await
        .unwrap();
    CallerStanding {
        user_id,
        org_id: Some(org_id),
        session_id: None,
        impersonation_id: None,
        text,
    }
}

async fn set_role(pool: &PgPool, standing: &CallerStanding, role: &str) {
    sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
        .bind(standing.org_id)
        .bind(standing.user_id)
        .bind(role)
        .execute(pool)
        .await
        .unwrap();
}

/// Appends a first event to `aggregate_id`, decided with `standing`.
async fn append_as(
    store: &EventStore,
    aggregate_id: &str,
    standing: &CallerStanding,
) -> Result<Option<Vec<AppendedEvent>>, StoreError> {
    let decided_with = DecidedWith::new("organization", "unrelated", 0).with_standing(Some(standing.clone()));
    let ctx = context(standing.org_id.unwrap());
    store
        .append_if_unmoved(
            "organization",
            aggregate_id,
            0,
            &[renamed_event(0)],
            &ctx,
            &decided_with,
        )
        .await
}

#[sqlx::test(migrations = "../migrations")]
async fn alone_an_append_whose_callers_standing_changed_writes_nothing(pool: PgPool) {
    let store = store(&pool);
    let standing = member(&pool, "member").await;
    assert!(
        append_as(&store, "before", &standing).await.unwrap().is_some(),
        "unchanged: written"
    );

    set_role(&pool, &standing, "auditor").await;
    assert!(
        append_as(&store, "stale", &standing).await.unwrap().is_none(),
        "changed: nothing written"
    );
    assert_eq!(event_count(&pool, "stale").await, 0);

    let now = standing_now(&pool, standing.user_id, standing.org_id.unwrap()).await;
    assert_ne!(now.text, standing.text);
    assert!(
        append_as(&store, "now", &now).await.unwrap().is_some(),
        "decided again: written"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn in_a_group_an_append_whose_callers_standing_changed_writes_nothing_and_the_rest_commit(
    pool: PgPool,
) {
    let staying = member(&pool, "member").await;
    let leaving = member(&pool, "member").await;
    sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(leaving.user_id)
        .execute(&pool)
        .await
        .unwrap();

    let (store, held, blocked) = busy_store(&pool).await;
    let guarded = |aggregate_id: &'static str, standing: &CallerStanding| {
        let standing = standing.clone();
        spawn(&store, move |store| async move {
            append_as(&store, aggregate_id, &standing).await
        })
    };
    let by_staying = guarded("by-staying", &staying);
    let by_leaving = guarded("by-leaving", &leaving);
    let free = append_new(&store, "free", context(Uuid::now_v7()));
    settle().await;
    held.commit().await.unwrap();

    assert!(matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })));
    assert!(
        by_leaving.await.unwrap().unwrap().is_none(),
        "removed: nothing written"
    );
    let written = by_staying.await.unwrap().unwrap().expect("unchanged: written");
    let free = free.await.unwrap().unwrap();
    assert_eq!(
        written[0].transaction_id, free[0].transaction_id,
        "written as one group"
    );
    assert_eq!(event_count(&pool, "by-leaving").await, 0);
    assert_eq!(event_count(&pool, "by-staying").await, 1);
}
