//! Commands of the user aggregate.

use chrono::{DateTime, Utc};

use super::VerificationProof;
use crate::email::EmailAddress;
use crate::secret::{PasswordDigest, TokenDigest};

/// What a caller asks of a user.
///
/// Hashes are computed outside (`password_hash` is an Argon2id PHC string, `token_hash` a
/// digest of the emailed reset token): the domain never sees a plaintext secret. `Debug` is
/// written by hand so that hashes never reach logs.
#[derive(Clone, Debug, PartialEq)]
pub enum UserCommand {
    /// Register a new user. The caller must first win the email's claim.
    RegisterUser {
        /// The normalized email.
        email: EmailAddress,
        /// Argon2id PHC string of the chosen password.
        password_hash: PasswordDigest,
    },
    /// Replace the password (the caller has verified the old one).
    ChangePassword {
        /// Argon2id PHC string of the new password.
        password_hash: PasswordDigest,
    },
    /// Record a freshly emailed reset token, beside any earlier ones still outstanding;
    /// refused while [`MAX_OUTSTANDING_RESETS`](super::aggregate::MAX_OUTSTANDING_RESETS) are.
    RequestPasswordReset {
        /// Digest of the token sent by email.
        token_hash: TokenDigest,
        /// When the token stops working.
        expires_at: DateTime<Utc>,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// Set a new password with a reset token.
    CompletePasswordReset {
        /// Digest of the token the user presented.
        token_hash: TokenDigest,
        /// Argon2id PHC string of the new password.
        password_hash: PasswordDigest,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// Make the user a platform administrator (`agentry admin create`).
    PromoteToPlatformAdmin,
    /// Register a new user who is a platform administrator from the start (`agentry admin
    /// create` for a new email): one command, so nobody ever sees them registered but not yet
    /// an administrator.
    RegisterPlatformAdmin {
        /// The normalized email.
        email: EmailAddress,
        /// Argon2id PHC string of the chosen password.
        password_hash: PasswordDigest,
    },
    /// Record a freshly mailed email verification token (at registration, or re-sent by the
    /// user). Up to [`super::MAX_VERIFICATION_MAILS_PER_HOUR`] per rolling hour.
    RequestEmailVerification {
        /// Digest of the token sent by email.
        token_hash: TokenDigest,
        /// When the token stops working.
        expires_at: DateTime<Utc>,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// Verify the email with the token of a verification link.
    VerifyEmail {
        /// Digest of the token the user presented.
        token_hash: TokenDigest,
        /// The current time, read by the application.
        now: DateTime<Utc>,
    },
    /// Record that the user proved they read the mailbox some other way (an accepted
    /// invitation); nothing is recorded when the email is verified already.
    MarkEmailVerified {
        /// How the mailbox was proved.
        proof: VerificationProof,
    },
}
