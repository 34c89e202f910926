//! The age of the oldest writing transaction is visible, because it holds every follower back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eventstore::log::gate_age_seconds;
use eventstore::store::append_with;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, renamed_event};

#[sqlx::test(migrations = "../migrations")]
async fn an_open_writing_transaction_shows_as_the_gate_age(pool: PgPool) {
    let mut transaction = pool.begin().await.unwrap();
    let ctx = context(Uuid::now_v7());
    append_with(
        &mut *transaction,
        "organization",
        "held",
        0,
        &[renamed_event(0)],
        &ctx,
    )
    .await
    .unwrap();

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let age = gate_age_seconds(&pool).await.unwrap();
    transaction.rollback().await.unwrap();

    assert!(age >= 1.0, "gate age {age} s while a write was open for 1.2 s");
}
