use sqlx::PgExecutor;

use super::Cursor;

/// Where the follower named `name` has got to; the start of the log for a new follower.
pub async fn load_checkpoint<'e, E: PgExecutor<'e>>(executor: E, name: &str) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT transaction_id::text, position FROM follower_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(executor)
            .await?;
    Ok(row.map_or(Cursor::START, |(transaction_id, position)| Cursor {
        transaction_id: transaction_id.parse().unwrap_or_default(),
        position,
    }))
}

/// Moves the checkpoint from `from` to `to`, only if it still stands at `from`.
///
/// Returns `false` when another instance moved it first: the caller must roll back whatever it
/// did in the same transaction and reload. This compare-and-set is what lets a projector's rows
/// and its checkpoint commit together without double-applying, even with two runners.
pub async fn save_checkpoint<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    from: Cursor,
    to: Cursor,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO follower_checkpoints AS c (name, transaction_id, position, updated_at)
         VALUES ($1, $4::text::xid8, $5, now())
         ON CONFLICT (name) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, updated_at = now()
          WHERE c.transaction_id = $2::text::xid8 AND c.position = $3",
    )
    .bind(name)
    .bind(from.transaction_id.to_string())
    .bind(from.position)
    .bind(to.transaction_id.to_string())
    .bind(to.position)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}
