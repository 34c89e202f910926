//! A follower's lag, read from the store: events behind its checkpoint and the age of the
//! oldest, whether or not anything runs the follower.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::log::{COUNT_EXACTLY_UP_TO, FollowerLag, follower_lags};
use sqlx::PgPool;

/// Appends `count` events of one aggregate in one statement (one transaction): the first
/// recorded `oldest_seconds_ago` seconds ago, each next one `step_seconds` later.
async fn insert_events(pool: &PgPool, count: i64, oldest_seconds_ago: i64, step_seconds: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'probe', 'p', n, 'probe.happened', '1', '{\"type\":\"probe.happened\"}'::json,
                json_build_object(
                    'actor', 'system',
                    'recorded_at', to_char((now() - make_interval(secs => $2 - (n - 1) * $3)) AT TIME ZONE 'UTC',
                                           'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
           FROM generate_series(1, $1) AS n",
    )
    .bind(count)
    .bind(oldest_seconds_ago as f64)
    .bind(step_seconds as f64)
    .execute(pool)
    .await
    .unwrap();
}

/// Puts `name`'s checkpoint on the `sequence`-th probe event.
async fn checkpoint_at(pool: &PgPool, name: &str, sequence: i64) {
    sqlx::query(
        "INSERT INTO follower_checkpoints (name, transaction_id, position)
         SELECT $1, transaction_id, position FROM events WHERE aggregate_id = 'p' AND sequence = $2",
    )
    .bind(name)
    .bind(sequence)
    .execute(pool)
    .await
    .unwrap();
}

fn lag_of<'a>(lags: &'a [FollowerLag], name: &str) -> &'a FollowerLag {
    lags.iter().find(|lag| lag.name == name).unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn lag_is_the_events_after_the_checkpoint_and_the_age_of_the_oldest(pool: PgPool) {
    // Recorded 40, 30, 20, 10 and 0 seconds ago.
    insert_events(&pool, 5, 40, 10).await;
    checkpoint_at(&pool, "half", 2).await;
    checkpoint_at(&pool, "caught_up", 5).await;
    let names = ["caught_up", "half", "never_ran"].map(str::to_owned);

    let lags = follower_lags(&pool, Some(&names)).await.unwrap();

    let caught_up = lag_of(&lags, "caught_up");
    assert_eq!((caught_up.events_behind, caught_up.seconds_behind), (0, 0.0));
    let half = lag_of(&lags, "half");
    assert_eq!(half.events_behind, 3);
    assert!((19.0..25.0).contains(&half.seconds_behind), "{half:?}");
    let never = lag_of(&lags, "never_ran");
    assert_eq!(never.events_behind, 5);
    assert!((39.0..45.0).contains(&never.seconds_behind), "{never:?}");
    // Every follower the database knows, when none is named.
    let known = follower_lags(&pool, None).await.unwrap();
    let known: Vec<&str> = known.iter().map(|lag| lag.name.as_str()).collect();
    assert_eq!(known, ["caught_up", "half"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn past_the_exact_count_lag_is_estimated_from_positions(pool: PgPool) {
    let count = COUNT_EXACTLY_UP_TO + 500;
    insert_events(&pool, count, 0, 0).await;
    checkpoint_at(&pool, "behind", 100).await;
    let names = ["behind", "never_ran"].map(str::to_owned);

    let lags = follower_lags(&pool, Some(&names)).await.unwrap();

    // A fresh database's positions have no gaps, so the estimate is exact here.
    assert_eq!(lag_of(&lags, "behind").events_behind, count - 100);
    assert_eq!(lag_of(&lags, "never_ran").events_behind, count);
}
