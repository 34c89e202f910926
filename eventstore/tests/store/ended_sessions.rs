//! The appends' pool (`generic_plan_pool`) hands out a connection idle for under a second
//! untested. What that relies on: a session the server ended answers the next statement with
//! its `FATAL` notice, which tells that the statement did not run (so the group commit may send
//! it again elsewhere), and a connection idle longer is tested and replaced before use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventstore::database::{
    GENERIC_POOL_TEST_AFTER_IDLE, ended_before_the_statement, generic_plan_pool, outcome_unknown,
};
use sqlx::PgPool;

async fn backend_of(pool: &PgPool) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn terminate(pool: &PgPool, backend: i32) {
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(backend)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(ended, "the server ended the session");
    // The backend's notice reaches the socket a moment later.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_session_ended_while_idle_answers_that_the_statement_did_not_run(pool: PgPool) {
    let appends = generic_plan_pool(&pool, 1, "agentry-test-appends", Duration::from_secs(4));
    // The pool hands the connection out untested only if it sat idle for under the limit: on
    // a loaded machine the termination may take longer, and the scenario is tried again.
    for _ in 0..5 {
        let first = backend_of(&appends).await;
        assert_eq!(backend_of(&appends).await, first, "one connection, reused");
        let used = Instant::now();

        terminate(&pool, first).await;
        let outcome = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&appends).await;
        if outcome.is_ok() && used.elapsed() >= GENERIC_POOL_TEST_AFTER_IDLE {
            continue;
        }
        let error = outcome.expect_err("handed out untested, the ended session fails the statement");
        assert!(
            ended_before_the_statement(&error),
            "the server's notice says the statement did not run: {error:?}"
        );
        assert!(!outcome_unknown(&error), "so its outcome is known: {error:?}");

        let next = backend_of(&appends).await;
        assert_ne!(next, first, "the ended connection was dropped, a new one serves");
        return;
    }
    panic!("the connection was never handed out within the idle limit");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_connection_idle_past_the_limit_is_tested_before_it_is_handed_out(pool: PgPool) {
    let appends = generic_plan_pool(&pool, 1, "agentry-test-appends", Duration::from_secs(4));
    let first = backend_of(&appends).await;

    terminate(&pool, first).await;
    tokio::time::sleep(GENERIC_POOL_TEST_AFTER_IDLE).await;
    let next = backend_of(&appends).await;
    assert_ne!(
        next, first,
        "the test found the session ended and connected again"
    );
}

#[test]
fn a_lost_connection_without_the_servers_notice_leaves_the_outcome_open() {
    let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(outcome_unknown(&lost));
    assert!(!ended_before_the_statement(&lost));
    assert!(outcome_unknown(&sqlx::Error::Protocol(
        "unexpected message".to_owned()
    )));
    // Never sent: no connection was to be had.
    assert!(!outcome_unknown(&sqlx::Error::PoolTimedOut));
    assert!(!ended_before_the_statement(&sqlx::Error::PoolTimedOut));
}
