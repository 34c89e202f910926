//! Commands of the session aggregate.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RevocationReason;
use crate::redacted::Redacted;

/// What a caller asks of a refresh-token family.
///
/// Tokens are generated and hashed by the application; the domain sees only digests.
/// `Debug` is written by hand so that digests never reach logs.
#[derive(Clone, PartialEq)]
pub enum SessionCommand {
    /// Begin a family at login.
    StartSession {
        /// Who signed in.
        user_id: Uuid,
        /// The organization the session's access tokens are for.
        org_id: Option<Uuid>,
        /// Digest of the first refresh token.
        token_hash: String,
        /// When that token stops working.
        expires_at: DateTime<Utc>,
        /// The user's credential version now; a later password change ends this session.
        credential_version: u64,
    },
    /// Trade the presented refresh token for a new one.
    RefreshSession {
        /// Digest of the token the client presented.
        presented_hash: String,
        /// Digest of the replacement token.
        new_hash: String,
        /// When the replacement stops working.
        new_expires_at: DateTime<Utc>,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// End the family (logout, expiry sweep, password change).
    EndSession {
        /// Why.
        reason: RevocationReason,
    },
}

impl fmt::Debug for SessionCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StartSession {
                user_id,
                org_id,
                expires_at,
                credential_version,
                ..
            } => f
                .debug_struct("StartSession")
                .field("user_id", user_id)
                .field("org_id", org_id)
                .field("token_hash", &Redacted)
                .field("expires_at", expires_at)
                .field("credential_version", credential_version)
                .finish(),
            Self::RefreshSession {
                new_expires_at, now, ..
            } => f
                .debug_struct("RefreshSession")
                .field("presented_hash", &Redacted)
                .field("new_hash", &Redacted)
                .field("new_expires_at", new_expires_at)
                .field("now", now)
                .finish(),
            Self::EndSession { reason } => f.debug_struct("EndSession").field("reason", reason).finish(),
        }
    }
}
