//! The statements run under one generic plan per connection (`database::generic_plan_pool`):
//! that plan may be made on an empty log and is kept while the log grows, so it must read
//! `events` by index, never by a sequential scan or a hash of one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::database::generic_planned_statements;
use eventstore::plan_check::{generic_plan_reads, reads_a_table_whole};
use sqlx::{Connection, PgConnection, PgPool};

#[sqlx::test(migrations = "../migrations")]
async fn planned_on_an_empty_log_every_generic_planned_statement_reads_events_by_index(pool: PgPool) {
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

    for (name, statement) in generic_planned_statements() {
        let reads = generic_plan_reads(&mut connection, statement).await.unwrap();
        assert!(!reads_a_table_whole(&reads), "{name}: {reads:?}");
        let reads_events = statement.contains("FROM events");
        assert!(!reads_events || !reads.is_empty(), "{name}: {reads:?}");
    }
}
