//! Events of the user aggregate. Their JSON shapes are stored forever.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::secret::{PasswordDigest, TokenDigest};

/// What happened to a user; internally tagged by the dotted event type.
///
/// `Debug` is written by hand so that hashes never reach logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// A verification link was mailed; it joins the ones still outstanding.
    #[serde(rename = "user.email_verification_requested")]
    EmailVerificationRequested {
        /// Digest of the mailed token.
        token_hash: TokenDigest,
        /// When it stops working.
        expires_at: DateTime<Utc>,
        /// When it was requested (the per-hour limit counts these).
        requested_at: DateTime<Utc>,
    },
    /// The user proved they read the mailbox of their email address.
    #[serde(rename = "user.email_verified")]
    EmailVerified {
        /// How.
        proof: VerificationProof,
    },
}

/// How a user proved they read their mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationProof {
    /// The verification link mailed at registration (or re-sent).
    Link,
    /// An accepted invitation, whose token was mailed to the address.
    Invitation,
    /// A completed password reset, whose token was mailed to the address.
    PasswordReset,
    /// Created or promoted by an operator with `agentry admin create`.
    PlatformAdmin,
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Registered { .. } => "user.registered",
            Self::PasswordChanged { .. } => "user.password_changed",
            Self::PasswordResetRequested { .. } => "user.password_reset_requested",
            Self::PasswordResetCompleted { .. } => "user.password_reset_completed",
            Self::PromotedToPlatformAdmin => "user.promoted_to_platform_admin",
            Self::EmailVerificationRequested { .. } => "user.email_verification_requested",
            Self::EmailVerified { .. } => "user.email_verified",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
