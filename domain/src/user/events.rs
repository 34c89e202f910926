//! Events of the user aggregate. Their JSON shapes are stored forever.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::secret::{PasswordDigest, TokenDigest};

/// What happened to a user; internally tagged by the dotted event type.
///
/// `Debug` is written by hand so that hashes never reach logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// The user registered.
    #[serde(rename = "user.registered")]
    Registered {
        /// The normalized email.
        email: EmailAddress,
        /// Argon2id PHC string.
        password_hash: PasswordDigest,
    },
    /// The password changed; any outstanding reset token stops working.
    #[serde(rename = "user.password_changed")]
    PasswordChanged {
        /// Argon2id PHC string of the new password.
        password_hash: PasswordDigest,
    },
    /// A reset token was emailed. Earlier ones still outstanding keep working (until issue 11
    /// it replaced them; the JSON shape is unchanged, only the fold).
    #[serde(rename = "user.password_reset_requested")]
    PasswordResetRequested {
        /// Digest of the emailed token.
        token_hash: TokenDigest,
        /// When it stops working.
        expires_at: DateTime<Utc>,
    },
    /// A reset token was used to set a new password; no reset token is outstanding afterwards.
    #[serde(rename = "user.password_reset_completed")]
    PasswordResetCompleted {
        /// Argon2id PHC string of the new password.
        password_hash: PasswordDigest,
    },
    /// The user became a platform administrator.
    #[serde(rename = "user.promoted_to_platform_admin")]
    PromotedToPlatformAdmin,
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Registered { .. } => "user.registered",
            Self::PasswordChanged { .. } => "user.password_changed",
            Self::PasswordResetRequested { .. } => "user.password_reset_requested",
            Self::PasswordResetCompleted { .. } => "user.password_reset_completed",
            Self::PromotedToPlatformAdmin => "user.promoted_to_platform_admin",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
