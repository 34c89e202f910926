//! Commands of the email claim aggregate.

use uuid::Uuid;

/// What a caller asks of an email address.
#[derive(Clone, Debug, PartialEq)]
pub enum EmailClaimCommand {
    /// Reserve the address for a user, before `RegisterUser`.
    ClaimEmail {
        /// The (new) user who will own the address.
        user_id: Uuid,
    },
}
