//! The standing query's plan: `commands` runs it under one generic plan per connection, which
//! may be made while the identity tables are still empty and is kept while they grow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::plan_check::{generic_plan_reads, reads_a_table_whole};
use projections::identity::queries::STANDINGS;
use sqlx::{Connection, PgConnection, PgPool};

#[sqlx::test(migrations = "../migrations")]
async fn planned_on_empty_tables_the_standing_query_probes_each_table_by_its_key(pool: PgPool) {
    let options = (*pool.connect_options()).clone();
    let mut connection = PgConnection::connect_with(&options).await.unwrap();

    // The same lookups written as joins, on the same empty tables: the planner hashes a
    // sequential scan, which is what this test is able to catch.
    let joined = "SELECT q.n, u.is_platform_admin, o.suspended, m.role
                    FROM UNNEST($1::int4[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[])
                         AS q(n, user_id, org_id, session_id, impersonation_id)
                    JOIN users u ON u.user_id = q.user_id
                    LEFT JOIN organizations o ON o.org_id = q.org_id
                    LEFT JOIN memberships m ON m.org_id = q.org_id AND m.user_id = q.user_id";
    let reads = generic_plan_reads(&mut connection, joined).await.unwrap();
    assert!(reads_a_table_whole(&reads), "{reads:?}");

    let reads = generic_plan_reads(&mut connection, STANDINGS).await.unwrap();
    assert_eq!(reads.len(), 5, "one read per table: {reads:?}");
    assert!(!reads_a_table_whole(&reads), "{reads:?}");
}
