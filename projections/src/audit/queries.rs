//! Reading the audit log: a filtered page newest first (`GET /v1/audit`), pages in chain order
//! (the export), and walking a chain to verify it.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::chain::ChainCheck;
use super::entry::AuditEntry;

/// The columns an [`AuditEntry`] is read from.
const ENTRY_COLUMNS: &str = "org_id, seq, event_id, recorded_at, actor, impersonator_id, action, target_type, \
                             target_id, request_id, client_ip, user_agent, prev_hash, hash";

/// Entries a verification reads at a time.
const VERIFY_PAGE: i64 = 5_000;

/// Which entries a listing keeps; every field set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The actor exactly as entries write it (`user:<uuid>`, `api_key:<uuid>`, `system`).
    pub actor: Option<String>,
    /// The event type.
    pub action: Option<String>,
    /// The aggregate type.
    pub target_type: Option<String>,
    /// The aggregate id (with `target_type`).
    pub target_id: Option<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// At most `limit` entries of `org_id`'s log matching `filter`, newest (highest `seq`) first,
/// starting below `before_seq` when given.
pub async fn list<'e, E: PgExecutor<'e>>(
    executor: E,
    org_id: Uuid,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE org_id = "
    ));
    query.push_bind(org_id);
    let mut equal = |column: &str, value: &Option<String>| {
        if let Some(value) = value {
            query
                .push(format_args!(" AND {column} = "))
                .push_bind(value.clone());
        }
    };
    equal("actor", &filter.actor);
    equal("action", &filter.action);
    equal("target_type", &filter.target_type);
    equal("target_id", &filter.target_id);
    if let Some(from) = filter.from {
        query.push(" AND recorded_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND recorded_at < ").push_bind(to);
    }
    if let Some(before) = before_seq {
        query.push(" AND seq < ").push_bind(before);
    }
    query.push(" ORDER BY seq DESC LIMIT ").push_bind(limit);
    query.build_query_as().fetch_all(executor).await
}

/// At most `limit` entries of `org_id`'s log after `after_seq`, in chain order.
pub async fn entries_after<'e, E: PgExecutor<'e>>(
    executor: E,
    org_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(org_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Walks `org_id`'s chain from its first entry to its last (or its first break), a page at a
/// time, calling `progress` with the entries checked so far after each page.
pub async fn verify_chain(
    pool: &PgPool,
    org_id: Uuid,
    mut progress: impl FnMut(u64),
) -> Result<ChainCheck, sqlx::Error> {
    let mut check = ChainCheck::new();
    let mut after = 0;
    loop {
        let page = entries_after(pool, org_id, after, VERIFY_PAGE).await?;
        for entry in &page {
            if check.check(entry).is_some() {
                return Ok(check);
            }
        }
        progress(check.checked());
        match page.last() {
            Some(last) if page.len() as i64 == VERIFY_PAGE => after = last.seq,
            _ => return Ok(check),
        }
    }
}

/// Every organization with an audit log, in id order (a skip scan of the primary key: one
/// index probe per organization, however long their logs).
pub async fn organizations_with_entries<'e, E: PgExecutor<'e>>(
    executor: E,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE orgs (org_id) AS (
             (SELECT org_id FROM audit_entries ORDER BY org_id LIMIT 1)
             UNION ALL
             SELECT (SELECT e.org_id FROM audit_entries e WHERE e.org_id > orgs.org_id ORDER BY e.org_id LIMIT 1)
               FROM orgs WHERE orgs.org_id IS NOT NULL
         )
         SELECT org_id FROM orgs WHERE org_id IS NOT NULL",
    )
    .fetch_all(executor)
    .await
}

/// How many entries `org_id`'s log has (its head's `seq`).
pub async fn entry_count<'e, E: PgExecutor<'e>>(executor: E, org_id: Uuid) -> Result<i64, sqlx::Error> {
    let head: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM audit_entries WHERE org_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(org_id)
            .fetch_optional(executor)
            .await?;
    Ok(head.unwrap_or(0))
}
