//! The stall age: how long a follower has left a committed event undelivered. A follower that
//! is caught up is not stalled, however long ago its checkpoint last moved (an idle service
//! must stay ready).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::log::stall_seconds;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, renamed_event, store};

async fn set_checkpoint_to_the_end(pool: &PgPool, name: &str, moved_seconds_ago: i64) {
    sqlx::query(
        "INSERT INTO follower_checkpoints (name, transaction_id, position, updated_at)
         SELECT $1, transaction_id, position, now() - make_interval(secs => $2)
           FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1",
    )
    .bind(name)
    .bind(moved_seconds_ago as f64)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_caught_up_follower_is_not_stalled_however_old_its_checkpoint(pool: PgPool) {
    let store = store(&pool);
    let org_id = Uuid::now_v7();
    store
        .append(
            "organization",
            &org_id.to_string(),
            0,
            &[renamed_event(1)],
            &context(org_id),
        )
        .await
        .unwrap();
    set_checkpoint_to_the_end(&pool, "idle", 600).await;
    let behind = vec!["idle".to_owned(), "never_started".to_owned()];

    let stalls = stall_seconds(&pool, Some(&behind)).await.unwrap();

    let age = |name: &str| stalls.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(
        age("idle") < 1.0,
        "caught up, yet reported stalled for {} s",
        age("idle")
    );
    assert!(
        age("never_started") >= 0.0,
        "a follower with the event still to deliver is measured"
    );
}
