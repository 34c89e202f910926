//! The standing query's plan: `commands` runs it under one generic plan per connection, which
//! may be made while the identity tables are still empty and is kept while they grow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use projections::identity::queries::STANDINGS;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

/// Every plan node type in an `EXPLAIN (FORMAT JSON)` answer.
fn node_types(plan: &Value, into: &mut Vec<String>) {
    if let Some(node) = plan.get("Node Type").and_then(Value::as_str) {
        into.push(node.to_owned());
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        node_types(child, into);
    }
}

/// The generic plan of `statement` (five array parameters, as the standing query's) on
/// `connection`'s database as it is now.
async fn generic_plan_nodes(connection: &mut PgConnection, statement: &str) -> Vec<String> {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE standing(int4[], uuid[], uuid[], uuid[], uuid[]) AS {statement}"
    ))
    .execute(&mut *connection)
    .await
    .unwrap();
    let (plan,): (Value,) = sqlx::query_as(
        "EXPLAIN (FORMAT JSON) EXECUTE standing(ARRAY[0], ARRAY[gen_random_uuid()], ARRAY[NULL]::uuid[], \
         ARRAY[NULL]::uuid[], ARRAY[NULL]::uuid[])",
    )
    .fetch_one(&mut *connection)
    .await
    .unwrap();
    sqlx::raw_sql("DEALLOCATE standing")
        .execute(&mut *connection)
        .await
        .unwrap();
    let mut nodes = Vec::new();
    node_types(&plan[0]["Plan"], &mut nodes);
    nodes
}

#[sqlx::test(migrations = "../migrations")]
async fn planned_on_empty_tables_the_standing_query_probes_each_table_by_its_key(pool: PgPool) {
    let options = (*pool.connect_options()).clone();
    let mut connection = PgConnection::connect_with(&options).await.unwrap();

    // The same lookups written as joins, on the same empty tables: the planner hashes a
    // sequential scan, which is what this test is able to catch.
    let joined = "SELECT q.n, u.is_platform_admin, o.suspended, m.role
                    FROM UNNEST($1, $2, $3, $4, $5) AS q(n, user_id, org_id, session_id, impersonation_id)
                    JOIN users u ON u.user_id = q.user_id
                    LEFT JOIN organizations o ON o.org_id = q.org_id
                    LEFT JOIN memberships m ON m.org_id = q.org_id AND m.user_id = q.user_id";
    let nodes = generic_plan_nodes(&mut connection, joined).await;
    assert!(nodes.iter().any(|node| node == "Seq Scan"), "{nodes:?}");

    let nodes = generic_plan_nodes(&mut connection, STANDINGS).await;
    let probes = nodes.iter().filter(|node| *node == "Index Scan").count();
    assert_eq!(probes, 5, "one key probe per table: {nodes:?}");
    assert!(
        !nodes
            .iter()
            .any(|node| node.contains("Seq Scan") || node.contains("Hash")),
        "{nodes:?}"
    );
}
