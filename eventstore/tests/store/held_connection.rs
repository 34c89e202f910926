//! A connection held between reads (`HeldConnection`): kept while it works, also across an
//! SQL error, and replaced without the caller seeing an error when the server ended it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eventstore::held_connection::HeldConnection;
use sqlx::{PgConnection, PgPool};

/// The backend serving `held`'s reads.
async fn backend_of(held: &HeldConnection) -> i32 {
    held.read(&(), |connection: &mut PgConnection, ()| {
        Box::pin(async move {
            sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(connection)
                .await
        })
    })
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_held_connection_survives_sql_errors_and_is_replaced_when_the_server_ends_it(pool: PgPool) {
    let held = HeldConnection::generic_plan(&pool, "agentry-test-held", Duration::from_secs(2));
    let first = backend_of(&held).await;
    assert_eq!(
        backend_of(&held).await,
        first,
        "the connection is held between reads"
    );

    // An error of the statement is the caller's answer, and the connection stays.
    let failed = held
        .read(&(), |connection: &mut PgConnection, ()| {
            Box::pin(async move {
                sqlx::query_scalar::<_, i32>("SELECT 1 / 0")
                    .fetch_one(connection)
                    .await
            })
        })
        .await;
    let error = failed.expect_err("division by zero");
    assert_eq!(
        error
            .as_database_error()
            .and_then(|error| error.code())
            .as_deref(),
        Some("22012")
    );
    assert_eq!(
        backend_of(&held).await,
        first,
        "an SQL error keeps the connection"
    );

    // Ended by the server while idle: the next read is answered, on a new connection.
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended);
    let replaced = backend_of(&held).await;
    assert_ne!(
        replaced, first,
        "a new connection after the server ended the held one"
    );
    assert_eq!(backend_of(&held).await, replaced);
}
