//! Commands of the session aggregate.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::RevocationReason;
use crate::secret::TokenDigest;

/// What a caller asks of a refresh-token family.
///
/// Tokens are generated and hashed by the application; the domain sees only digests.
/// `Debug` is written by hand so that digests never reach logs.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionCommand {
    /// Begin a family at login.
    StartSession {
        /// Who signed in.
        user_id: Uuid,
        /// The organization the session's access tokens are for.
        org_id: Option<Uuid>,
        /// Digest of the first refresh token.
        token_hash: TokenDigest,
        /// When that token stops working.
        expires_at: DateTime<Utc>,
        /// The user's credential version now; a later password change ends this session.
        credential_version: u64,
    },
    /// Trade the presented refresh token for a new one.
    RefreshSession {
        /// Digest of the token the client presented.
        presented_hash: TokenDigest,
        /// Digest of the replacement token.
        new_hash: TokenDigest,
        /// When the replacement stops working.
        new_expires_at: DateTime<Utc>,
        /// The current time, read by the application.
        now: DateTime<Utc>,
        /// How long after a rotation the token it spent may be presented again and get the
        /// same successor (`new_hash` equal to the current digest) instead of revoking the
        /// family: two concurrent refreshes by one client are not a theft.
        repeat_grace: TimeDelta,
    },
    /// End the family (logout, expiry sweep, password change).
    EndSession {
        /// Why.
        reason: RevocationReason,
    },
}
