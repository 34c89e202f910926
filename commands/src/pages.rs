//! Lists read from the event log: one page of aggregate ids, newest first, with a cursor.
//!
//! The agents, conversations and tools lists find their aggregates through the log's creation
//! events (indexed by organization), so a list never lags behind a creation; each caller
//! writes the query, this runs it the same way for all.

use sqlx::PgPool;
use uuid::Uuid;

use crate::identity::IdentityError;

/// Most items one page holds.
pub const MAX_PAGE: u32 = 100;

/// One page of aggregate ids, newest first.
pub(crate) struct IdPage {
    /// The ids of this page, newest first.
    pub ids: Vec<Uuid>,
    /// Where the next page starts (a log position); `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Runs `query`, which takes `$1` the organization, `$2` the cursor (a position, or `NULL`)
/// and `$3` a row limit, and returns `(aggregate_id, position)` rows newest first; answers the
/// page of `limit` (1 to [`MAX_PAGE`]) ids and the next page's cursor.
pub(crate) async fn newest_first(
    pool: &PgPool,
    query: &str,
    org_id: Uuid,
    limit: u32,
    cursor: Option<i64>,
) -> Result<IdPage, IdentityError> {
    let limit = usize::try_from(limit.clamp(1, MAX_PAGE)).unwrap_or(1);
    let rows: Vec<(String, i64)> = sqlx::query_as(query)
        .bind(org_id)
        .bind(cursor)
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let more = rows.len() > limit;
    let mut ids = Vec::with_capacity(limit.min(rows.len()));
    let mut last_position = None;
    for (aggregate_id, position) in rows.into_iter().take(limit) {
        ids.push(Uuid::parse_str(&aggregate_id).map_err(|error| IdentityError::Internal(error.to_string()))?);
        last_position = Some(position);
    }
    Ok(IdPage {
        ids,
        next_cursor: last_position.filter(|_| more),
    })
}
