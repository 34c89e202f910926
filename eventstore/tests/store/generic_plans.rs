//! The statements run under one generic plan per connection (`database::generic_plan_pool`):
//! that plan may be made on an empty log and is kept while the log grows, so it must read
//! `events` by index, never by a sequential scan or a hash of one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::database::generic_planned_statements;
use eventstore::plan_check::{generic_plan_reads, reads_a_table_whole};
use sqlx::{Connection, PgConnection, PgPool};

#[sqlx::test(migrations = "../migrations")]
async fn planned_on_an_empty_log_or_a_full_one_every_generic_planned_statement_reads_events_by_index(
    pool: PgPool,
) {
    let options = (*pool.connect_options()).clone();
    let mut connection = PgConnection::connect_with(&options).await.unwrap();

    // The group append's first condition as it was written before, `NOT EXISTS`: on the same
    // empty log its generic plan hashes a sequential scan, which this test is able to catch.
    let not_exists = "SELECT a.n FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::bigint[])
                        AS a(n, aggregate_type, aggregate_id, first_sequence)
                       WHERE NOT EXISTS (SELECT 1 FROM events e
                                          WHERE e.aggregate_type = a.aggregate_type
                                            AND e.aggregate_id = a.aggregate_id
                                            AND e.sequence = a.first_sequence)";
    let reads = generic_plan_reads(&mut connection, not_exists).await.unwrap();
    assert!(reads_a_table_whole(&reads), "{reads:?}");

    check_every_statement(&mut connection).await;

    // And planned again once the log holds rows and statistics (what ANALYZE brings later).
    sqlx::raw_sql(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'user', 'u' || (g % 500), g / 500 + 1, 'user.registered', '1', '{}'::json, '{}'::json
           FROM generate_series(0, 49999) AS g;
         ANALYZE events",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    check_every_statement(&mut connection).await;
}

/// Every statement run on a generic-plan pool reads `events`, if at all, by bounded index scans.
async fn check_every_statement(connection: &mut PgConnection) {
    for (name, statement) in generic_planned_statements() {
        let reads = generic_plan_reads(connection, statement).await.unwrap();
        assert!(!reads_a_table_whole(&reads), "{name}: {reads:?}");
        if name == "read_after" {
            // Bounded by the cursor, not only by the gate (which would read from the start).
            let from_cursor = reads
                .iter()
                .any(|read| read.condition.as_deref().is_some_and(|c| c.contains("ROW(")));
            assert!(from_cursor, "{name}: {reads:?}");
        }
        let reads_events = statement.contains("FROM events");
        assert!(!reads_events || !reads.is_empty(), "{name}: {reads:?}");
    }
}
