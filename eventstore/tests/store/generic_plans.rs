//! The statements run under one generic plan per connection (`database::generic_plan_pool`):
//! that plan may be made on an empty log and is kept while the log grows, so it must read
//! `events` by index, never by a sequential scan or a hash of one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::database::generic_planned_statements;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

/// How each table in an `EXPLAIN (FORMAT JSON)` plan is read, subplans included: the node type,
/// and whether it is bounded by an index condition (a probe or a range, not a whole index).
fn table_reads(plan: &Value, into: &mut Vec<(String, bool)>) {
    let node = plan["Node Type"].as_str().unwrap_or_default();
    // The insert's target (`ModifyTable`) names a relation too, but reads nothing.
    if plan.get("Relation Name").is_some() && node.ends_with("Scan") {
        into.push((node.to_owned(), plan.get("Index Cond").is_some()));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        table_reads(child, into);
    }
}

/// The highest `$n` in `statement`: how many parameters it takes.
fn parameters(statement: &str) -> usize {
    statement
        .split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The generic plan of `statement` on `connection`'s database as it is now (its parameters'
/// types inferred, as sqlx prepares it; the values do not matter to a generic plan).
async fn generic_plan_reads(connection: &mut PgConnection, statement: &str) -> Vec<(String, bool)> {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("PREPARE checked AS {statement}"))
        .execute(&mut *connection)
        .await
        .unwrap();
    let nulls = vec!["NULL"; parameters(statement)].join(", ");
    let (plan,): (Value,) = sqlx::query_as(&format!("EXPLAIN (FORMAT JSON) EXECUTE checked({nulls})"))
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    sqlx::raw_sql("DEALLOCATE checked")
        .execute(&mut *connection)
        .await
        .unwrap();
    let mut reads = Vec::new();
    table_reads(&plan[0]["Plan"], &mut reads);
    reads
}

/// Whether some table is read whole (a sequential scan, or an index without a condition).
fn reads_a_table_whole(reads: &[(String, bool)]) -> bool {
    reads.iter().any(|(_, bounded)| !bounded)
}

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
    let reads = generic_plan_reads(&mut connection, not_exists).await;
    assert!(reads_a_table_whole(&reads), "{reads:?}");

    for (name, statement) in generic_planned_statements() {
        let reads = generic_plan_reads(&mut connection, statement).await;
        assert!(!reads_a_table_whole(&reads), "{name}: {reads:?}");
        let reads_events = statement.contains("FROM events");
        assert!(!reads_events || !reads.is_empty(), "{name}: {reads:?}");
    }
}
