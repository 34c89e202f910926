//! What the audit routes answer.

use poem_openapi::{Enum, Object};
use projections::audit::entry::{timestamp, to_hex};
use projections::audit::{AuditEntry, BreakKind};
use uuid::Uuid;

/// One entry of the organization's audit log, with its hash-chain fields (specified in
/// `docs/audit-chain.md`). Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct AuditEntryBody {
    /// 1, 2, 3, … in the organization's log, without gaps.
    seq: i64,
    /// The organization whose log it is in.
    org_id: Uuid,
    /// The event (`GET /v1/events/{id}`).
    event_id: Uuid,
    /// When the event was recorded: UTC with six fractional digits, as the chain hashes it.
    recorded_at: String,
    /// Who did it: `user:<uuid>`, `api_key:<uuid>` or `system`.
    actor: String,
    /// The platform administrator acting as `actor` through an impersonation.
    impersonator_id: Option<String>,
    /// What happened: the event type, e.g. `organization.member_added`.
    action: String,
    /// The kind of thing acted on, e.g. `organization`, `api_key`, `run`.
    target_type: String,
    /// Its id.
    target_id: String,
    /// The HTTP request that caused it.
    request_id: Option<String>,
    /// The address that request came from (the peer, or what the trusted proxy named).
    client_ip: Option<String>,
    /// The request's `User-Agent` (at most 256 bytes).
    user_agent: Option<String>,
    /// The previous entry's `hash` (64 zeros for the first), lowercase hex.
    prev_hash: String,
    /// SHA-256 of a zero byte and this entry's canonical JSON (every field but `hash`), lowercase hex.
    hash: String,
}

impl From<AuditEntry> for AuditEntryBody {
    fn from(entry: AuditEntry) -> Self {
        let content = entry.content;
        Self {
            seq: entry.seq,
            org_id: entry.org_id,
            event_id: content.event_id,
            recorded_at: timestamp(content.recorded_at),
            actor: content.actor,
            impersonator_id: content.impersonator_id,
            action: content.action,
            target_type: content.target_type,
            target_id: content.target_id,
            request_id: content.request_id,
            client_ip: content.client_ip,
            user_agent: content.user_agent,
            prev_hash: to_hex(&entry.prev_hash),
            hash: to_hex(&entry.hash),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct AuditPage {
    /// This page.
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `cursor`, with the same filters, for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// How the chain breaks.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub(super) enum BreakReason {
    /// No entry has this `seq` (deleted).
    Missing,
    /// Entries out of order or repeated.
    OutOfOrder,
    /// This entry was inserted after the fact: the next entry links to the one before it.
    Inserted,
    /// The entry's `prev_hash` is not the previous entry's hash.
    PrevHashMismatch,
    /// The entry's content does not hash to its `hash` (altered).
    HashMismatch,
}

impl From<BreakKind> for BreakReason {
    fn from(kind: BreakKind) -> Self {
        match kind {
            BreakKind::Missing => Self::Missing,
            BreakKind::OutOfOrder => Self::OutOfOrder,
            BreakKind::Inserted => Self::Inserted,
            BreakKind::PrevHashMismatch => Self::PrevHashMismatch,
            BreakKind::HashMismatch => Self::HashMismatch,
        }
    }
}

/// The chain's first broken link.
#[derive(Object)]
pub(super) struct BrokenLink {
    /// The entry named: the missing one, the inserted one, or the first that fails its check.
    pub seq: i64,
    /// How the chain breaks there.
    pub reason: BreakReason,
    /// The same, in words.
    pub detail: String,
}

/// The chain's last entry: a checkpoint to keep outside the service (see `docs/audit-chain.md`).
#[derive(Object)]
pub(super) struct ChainHead {
    /// Its `seq` (the number of entries).
    pub seq: i64,
    /// Its `hash`, lowercase hex.
    pub hash: String,
}

/// What walking the chain found. Fields without a value are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct VerifyReport {
    /// Whether every entry verified.
    pub ok: bool,
    /// Entries that verified (before the first broken link, if any).
    pub checked: u64,
    /// The last entry, when the chain is intact and not empty.
    pub head: Option<ChainHead>,
    /// The first broken link, when there is one.
    pub first_broken: Option<BrokenLink>,
}
