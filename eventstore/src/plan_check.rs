//! How Postgres's generic plan of a statement reads its tables: what the tests of the statements
//! run on a [`generic_plan_pool`](crate::database::generic_plan_pool) check on empty tables (a
//! generic plan made there is kept while the tables grow, so no table may be read whole).

use serde_json::Value;
use sqlx::PgConnection;

/// One table read in a plan: the scan's node type, and whether an index condition bounds it (a
/// probe or a range, not a whole table or index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRead {
    /// `Index Scan`, `Index Only Scan`, `Seq Scan`, …
    pub node: String,
    /// Whether it has an `Index Cond`.
    pub bounded: bool,
    /// The `Index Cond`, as Postgres prints it.
    pub condition: Option<String>,
}

/// How the generic plan of `statement` reads each table on `connection`'s database as it is
/// now, subplans included. The parameters' types are inferred, as sqlx prepares statements; the
/// values (all `NULL`) do not matter to a generic plan. Leaves the session in
/// `plan_cache_mode = force_generic_plan`.
pub async fn generic_plan_reads(
    connection: &mut PgConnection,
    statement: &str,
) -> Result<Vec<TableRead>, sqlx::Error> {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *connection)
        .await?;
    sqlx::raw_sql(&format!("PREPARE plan_checked AS {statement}"))
        .execute(&mut *connection)
        .await?;
    let nulls = vec!["NULL"; parameters(statement)].join(", ");
    let explained =
        sqlx::query_as::<_, (Value,)>(&format!("EXPLAIN (FORMAT JSON) EXECUTE plan_checked({nulls})"))
            .fetch_one(&mut *connection)
            .await;
    sqlx::raw_sql("DEALLOCATE plan_checked")
        .execute(&mut *connection)
        .await?;
    let (plan,) = explained?;
    let mut reads = Vec::new();
    table_reads(&plan[0]["Plan"], &mut reads);
    Ok(reads)
}

/// Whether some table is read whole (a sequential scan, or an index without a condition).
pub fn reads_a_table_whole(reads: &[TableRead]) -> bool {
    reads.iter().any(|read| !read.bounded)
}

fn table_reads(plan: &Value, into: &mut Vec<TableRead>) {
    let node = plan["Node Type"].as_str().unwrap_or_default();
    // An insert's target (`ModifyTable`) names a relation too, but reads nothing.
    if plan.get("Relation Name").is_some() && node.ends_with("Scan") {
        let condition = plan.get("Index Cond").and_then(Value::as_str).map(str::to_owned);
        into.push(TableRead {
            node: node.to_owned(),
            bounded: condition.is_some(),
            condition,
        });
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

#[cfg(test)]
mod tests {
    use super::parameters;

    #[test]
    fn the_parameter_count_is_the_highest_placeholder() {
        assert_eq!(parameters("SELECT $1, $12::int, $3"), 12);
        assert_eq!(parameters("SELECT 1"), 0);
    }
}
