//! A caller's standing (membership, role, suspension, session, impersonation) as the identity
//! read model holds it: read by authentication, and read again by an append that a write route
//! decided with a standing remembered in memory ([`CallerStanding`]).
//!
//! The one read model the store's own statements read. A write decided without asking the
//! database whether its caller still stands must be refused in its own statement when the
//! caller no longer does: checked anywhere else, a removal could commit between the check and
//! the write. Both reads are made of the same text ([`standing_columns!`], [`standing_text!`]),
//! so what authentication decided with and what the append compares cannot drift apart.

use uuid::Uuid;

use super::DecidedWith;

/// The standing's five columns (`is_platform_admin`, `org_suspended`, `role`,
/// `session_revoked`, `impersonation_ended`) for the key whose columns are `$key` followed by
/// `user_id`, `org_id`, `session_id` and `impersonation_id`.
///
/// Every table is read by its key in a scalar subquery, never joined: the statements holding
/// it run under one generic plan, possibly made while the tables are still empty, where a join
/// would be planned as a hash over a sequential scan, and a key subquery stays an index probe
/// at any size.
#[macro_export]
macro_rules! standing_columns {
    ($key:literal) => {
        concat!(
            "(SELECT u.is_platform_admin FROM users u WHERE u.user_id = ",
            $key,
            "user_id) AS is_platform_admin,
            (SELECT o.suspended FROM organizations o WHERE o.org_id = ",
            $key,
            "org_id) AS org_suspended,
            (SELECT m.role FROM memberships m
              WHERE m.org_id = ",
            $key,
            "org_id AND m.user_id = ",
            $key,
            "user_id) AS role,
            COALESCE((SELECT s.revoked_at IS NOT NULL FROM sessions s
                       WHERE s.session_id = ",
            $key,
            "session_id AND s.user_id = ",
            $key,
            "user_id), false)
              AS session_revoked,
            COALESCE((SELECT i.ended_at IS NOT NULL FROM impersonations i
                       WHERE i.impersonation_id = ",
            $key,
            "impersonation_id AND i.user_id = ",
            $key,
            "user_id), false)
              AS impersonation_ended"
        )
    };
}

/// The standing's columns (named as [`standing_columns!`] names them, on the row `$row`) as
/// one text: what an append guarded by a [`CallerStanding`] compares with the text
/// authentication read. A row's text keeps every field's place, `NULL` included.
#[macro_export]
macro_rules! standing_text {
    ($row:literal) => {
        concat!(
            "ROW(",
            $row,
            "is_platform_admin, ",
            $row,
            "org_suspended, ",
            $row,
            "role, ",
            $row,
            "session_revoked, ",
            $row,
            "impersonation_ended)::text"
        )
    };
}

/// The condition an append's standing guard adds, for the key whose columns are `$key`
/// followed by `user_id`, … and `standing`: no guard (`NULL` user), or the standing as it
/// stands now is the one the decision was made with.
macro_rules! standing_unchanged {
    ($key:literal) => {
        concat!(
            "(",
            $key,
            "user_id IS NULL OR (SELECT ",
            $crate::standing_text!("c."),
            " FROM (SELECT ",
            $crate::standing_columns!($key),
            ") c) IS NOT DISTINCT FROM ",
            $key,
            "standing)"
        )
    };
}
pub(crate) use standing_unchanged;

/// The standing a caller was authorized with, to be confirmed by the append of what it
/// decided: the append writes nothing when the identity read model no longer shows exactly
/// this standing (a member removed or demoted, an organization suspended, a session or an
/// impersonation ended since).
///
/// What lets a write route decide with a standing this process remembers, without a query,
/// and still never write for a caller who no longer stands: a removal committed before the
/// append's statement began refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerStanding {
    /// The user.
    pub user_id: Uuid,
    /// The organization the caller acts in, if any.
    pub org_id: Option<Uuid>,
    /// The session of the caller's token, if any.
    pub session_id: Option<Uuid>,
    /// The impersonation of the caller's token, if any.
    pub impersonation_id: Option<Uuid>,
    /// The standing as [`standing_text!`] renders it, read when the caller was authorized.
    pub text: String,
}

/// A standing guard as the statements bind it: all `None` for an append without one.
#[derive(Clone, Copy, Default)]
pub(crate) struct StandingParts<'a> {
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub impersonation_id: Option<Uuid>,
    pub text: Option<&'a str>,
}

/// The standing guard `decided_with` carries, as bound.
pub(crate) fn standing_parts(decided_with: Option<&DecidedWith>) -> StandingParts<'_> {
    match decided_with.and_then(|d| d.standing.as_ref()) {
        Some(standing) => StandingParts {
            user_id: Some(standing.user_id),
            org_id: standing.org_id,
            session_id: standing.session_id,
            impersonation_id: standing.impersonation_id,
            text: Some(&standing.text),
        },
        None => StandingParts::default(),
    }
}
