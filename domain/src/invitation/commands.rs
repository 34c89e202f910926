//! Commands of the invitation aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::email::EmailAddress;
use crate::role::Role;
use crate::secret::TokenDigest;

/// What a caller asks of an invitation.
///
/// The inviter's authority is decided by the organization aggregate, at sending and again at
/// acceptance; this aggregate decides only about the token: single use, expiry, addressee.
#[derive(Clone, Debug, PartialEq)]
pub enum InvitationCommand {
    /// Record an invitation whose token is being mailed to `email`.
    SendInvitation {
        /// The organization to join.
        org_id: Uuid,
        /// The invited address (normalized).
        email: EmailAddress,
        /// The role the invitee gets on acceptance.
        role: Role,
        /// Digest of the mailed token.
        token_hash: TokenDigest,
        /// When the token stops working.
        expires_at: DateTime<Utc>,
        /// The member who invited.
        invited_by: Uuid,
    },
    /// Spend the token: the user logged in as the invited address accepts.
    AcceptInvitation {
        /// Digest of the token the user presented.
        token_hash: TokenDigest,
        /// The accepting user.
        user_id: Uuid,
        /// The accepting user's email, from the user aggregate.
        user_email: EmailAddress,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
}
