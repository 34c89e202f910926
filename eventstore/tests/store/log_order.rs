//! The log is read, and its head found, in the numeric order of transaction ids, also where
//! their decimal text sorts the other way (`10` before `9`), as it does each time the cluster's
//! counter passes a power of ten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::log::log_head;
use eventstore::{Cursor, LogFollower};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::store;

/// An event written by transaction `transaction_id` (long finished: below every running one).
async fn insert_with_transaction_id(pool: &PgPool, transaction_id: &str, aggregate_id: &str) {
    sqlx::query(
        "INSERT INTO events (transaction_id, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1::text::xid8, 'organization', $2, 1, 'organization.renamed', '1', $3::text::json, '{}')",
    )
    .bind(transaction_id)
    .bind(aggregate_id)
    .bind(json!({ "type": "organization.renamed", "name": aggregate_id }).to_string())
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn transaction_9_is_delivered_before_transaction_10(pool: PgPool) {
    insert_with_transaction_id(&pool, "10", "written-second").await;
    insert_with_transaction_id(&pool, "9", "written-first").await;

    let events = LogFollower::new(&store(&pool))
        .read_after(Cursor::START)
        .await
        .unwrap();

    let order: Vec<(u64, &str)> = events
        .iter()
        .map(|event| (event.transaction_id, event.aggregate_id.as_str()))
        .collect();
    assert_eq!(order, vec![(9, "written-first"), (10, "written-second")]);
    let after_first = LogFollower::new(&store(&pool))
        .read_after(events[0].cursor())
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1, "only transaction 10 is after transaction 9");
    assert_eq!(after_first[0].transaction_id, 10);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_head_of_the_log_is_the_event_of_transaction_10_not_9(pool: PgPool) {
    insert_with_transaction_id(&pool, "9", "written-first").await;
    insert_with_transaction_id(&pool, "10", "written-second").await;

    let head = log_head(&pool).await.unwrap().unwrap();

    assert_eq!(head.transaction_id, 10);
}
