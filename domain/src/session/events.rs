//! Events of the session aggregate. Their JSON shapes are stored forever.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::TokenDigest;

/// Why a refresh-token family ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The user signed out.
    Logout,
    /// A spent refresh token was presented again: someone holds a stolen copy, so the whole
    /// family is ended.
    ReuseDetected,
    /// The family was swept after its last token expired.
    Expired,
    /// The user's password changed, which ends every sign-in made with the old one.
    PasswordChanged,
}

/// What happened to a refresh-token family; internally tagged by the dotted event type.
///
/// `Debug` is written by hand so that digests never reach logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum SessionEvent {
    /// A user signed in to an organization.
    #[serde(rename = "session.started")]
    Started {
        /// Who signed in.
        user_id: Uuid,
        /// The organization.
        org_id: Option<Uuid>,
        /// Digest of the first refresh token.
        token_hash: TokenDigest,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// The user's credential version when the session started (absent, so 0, in sessions
        /// started before it was recorded).
        #[serde(default)]
        credential_version: u64,
    },
    /// The current token was spent and replaced.
    #[serde(rename = "session.refreshed")]
    Refreshed {
        /// Digest of the new current token.
        token_hash: TokenDigest,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// When the rotation happened, which starts the grace window for a repeat of the spent
        /// token (absent in rotations recorded before it was: they get no grace).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refreshed_at: Option<DateTime<Utc>>,
    },
    /// The family ended; none of its tokens works any more.
    #[serde(rename = "session.revoked")]
    Revoked {
        /// Why.
        reason: RevocationReason,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Started { .. } => "session.started",
            Self::Refreshed { .. } => "session.refreshed",
            Self::Revoked { .. } => "session.revoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
