//! `/v1/audit`: the organization's audit log, its export and its verification.
//!
//! Owners, admins and auditors read it; members and API keys (which act as members) get 403.
//! The hash chain the entries carry is specified in `docs/audit-chain.md`.

mod body;
mod filter;

use chrono::{DateTime, Utc};
use commands::identity::Caller;
use domain::Role;
use futures::stream::{self, Stream};
use poem::Body;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use projections::audit::queries::{entries_after, list, verify_chain};
use sqlx::PgPool;
use uuid::Uuid;

use self::body::{AuditEntryBody, AuditPage, BrokenLink, ChainHead, VerifyReport};
use self::filter::{FilterParams, cursor_after, resume_before};
use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, Ndjson};

/// Entries in a page when the query names no `limit`.
const DEFAULT_PAGE: u32 = 50;
/// Entries the export reads from the database at a time.
const EXPORT_PAGE: i64 = 1_000;

/// The organization's audit log.
pub struct AuditApi;

#[derive(ApiResponse)]
enum ExportAnswer {
    /// Every entry from the requested one on, one canonical JSON object with `hash` per line,
    /// in `seq` order.
    #[oai(status = 200)]
    Entries(Ndjson),
}

/// The organization, once the caller is shown to be one who may read its audit log (and the
/// history of its aggregates).
pub(super) fn auditor_of(caller: &Caller) -> Result<Uuid, ApiError> {
    let org_id = caller.org()?;
    caller.require(Role::can_read_audit, "read the audit log")?;
    Ok(org_id)
}

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// List audit entries
    ///
    /// Who did what, to what, when and from where in the organization, newest first, a page at
    /// a time. Filters combine: `actor` (`user:<uuid>`, `api_key:<uuid>` or `system`), `action`
    /// (an event type), `target` (`<type>` or `<type>:<id>`), and the time range `from`
    /// (inclusive) to `to` (exclusive). A malformed filter is a 400 with its own code, never an
    /// empty page. Owners, admins and auditors.
    #[oai(path = "/audit", method = "get", operation_id = "listAuditEntries")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Only entries by this actor: `user:<uuid>`, `api_key:<uuid>` or `system`.
        actor: Query<Option<String>>,
        /// Only entries of this event type, e.g. `organization.member_added`.
        action: Query<Option<String>>,
        /// Only entries on this target: an aggregate type (`run`), or a type and id (`run:<uuid>`).
        target: Query<Option<String>>,
        /// Only entries recorded at or after this time (RFC 3339).
        from: Query<Option<DateTime<Utc>>>,
        /// Only entries recorded before this time (RFC 3339).
        to: Query<Option<DateTime<Utc>>>,
        /// Where to continue: the previous page's `next_cursor`, with the same filters.
        cursor: Query<Option<String>>,
        /// Most entries in the page (1–100); 50 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<AuditPage>, ApiError> {
        let org_id = auditor_of(&auth.0)?;
        let filter = filter::filter(FilterParams {
            actor: actor.0,
            action: action.0,
            target: target.0,
            from: from.0,
            to: to.0,
        })?;
        let before = cursor
            .0
            .map(|cursor| resume_before(org_id, &filter, &cursor))
            .transpose()?;
        let limit = i64::from(limit.0.unwrap_or(DEFAULT_PAGE));
        let entries = list(&state.pool, org_id, &filter, before, limit)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        let next_cursor = match entries.last() {
            Some(last) if entries.len() as i64 == limit && last.seq > 1 => {
                Some(cursor_after(org_id, &filter, last.seq))
            }
            _ => None,
        };
        Ok(Json(AuditPage {
            entries: entries.into_iter().map(AuditEntryBody::from).collect(),
            next_cursor,
        }))
    }

    /// Export the audit log
    ///
    /// Every entry of the organization's log as `application/x-ndjson`, oldest first: one line
    /// per entry, its canonical JSON (docs/audit-chain.md) with `hash` added, so an auditor can
    /// verify the chain with their own code (`scripts/verify-audit.py` is one). Streamed from
    /// the database a page at a time, in constant memory however long the log. `after_seq`
    /// resumes after that entry. Owners, admins and auditors.
    #[oai(path = "/audit/export", method = "get", operation_id = "exportAuditLog")]
    async fn export(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Start after this entry (its `seq`); from the first entry when absent.
        after_seq: Query<Option<u64>>,
    ) -> Result<ExportAnswer, ApiError> {
        let org_id = auditor_of(&auth.0)?;
        let after = i64::try_from(after_seq.0.unwrap_or(0)).unwrap_or(i64::MAX);
        let lines = export_lines(state.pool.clone(), org_id, after);
        Ok(ExportAnswer::Entries(Ndjson(Body::from_bytes_stream(lines))))
    }

    /// Verify the audit log
    ///
    /// Walks the organization's hash chain from its first entry and reports the first broken
    /// link: a missing, inserted, reordered or altered entry. An intact chain answers its head
    /// (last `seq` and `hash`), a checkpoint worth keeping outside the service: a later export
    /// must still contain it. Owners, admins and auditors.
    #[oai(path = "/audit/verify", method = "get", operation_id = "verifyAuditLog")]
    async fn verify(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<VerifyReport>, ApiError> {
        let org_id = auditor_of(&auth.0)?;
        let check = verify_chain(&state.pool, org_id, |_| {})
            .await
            .map_err(|error| ApiError::internal(&error))?;
        let broken = check.broken();
        Ok(Json(VerifyReport {
            ok: broken.is_none(),
            checked: check.checked(),
            head: broken
                .is_none()
                .then(|| check.head())
                .flatten()
                .map(|(seq, hash)| ChainHead { seq, hash }),
            first_broken: broken.map(|broken| BrokenLink {
                seq: broken.seq,
                reason: broken.kind.into(),
                detail: broken.to_string(),
            }),
        }))
    }
}

/// The export's body: pages of entries read by `seq` (each its own short query, so a slow
/// reader holds no connection and no transaction between pages), each page one chunk of lines.
fn export_lines(
    pool: PgPool,
    org_id: Uuid,
    after_seq: i64,
) -> impl Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    stream::try_unfold(Some(after_seq), move |after| {
        let pool = pool.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let page = entries_after(&pool, org_id, after, EXPORT_PAGE)
                .await
                .map_err(|error| {
                    tracing::error!(%error, %org_id, "audit export stopped: the database failed");
                    std::io::Error::other("audit export failed")
                })?;
            let Some(last) = page.last() else { return Ok(None) };
            let next = (page.len() as i64 == EXPORT_PAGE).then_some(last.seq);
            let mut chunk = String::with_capacity(page.len() * 640);
            for entry in &page {
                chunk.push_str(&entry.export_line());
                chunk.push('\n');
            }
            Ok(Some((chunk, next)))
        }
    })
}
