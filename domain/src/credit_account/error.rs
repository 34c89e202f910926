//! Why a credit account command was refused.

/// A refused credit account command; nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreditAccountError {
    /// `Open` on an account that is open already.
    #[error("the credit account is already open")]
    AlreadyOpen,
    /// Any other command before `Open`.
    #[error("the organization has no credit account")]
    NotOpen,
    /// The available balance (balance minus open reservations) does not cover the reservation.
    #[error("insufficient credits: {requested} requested, {available} available")]
    InsufficientCredits {
        /// What the balance minus open reservations was.
        available: i64,
        /// What was asked for.
        requested: u64,
    },
    /// An amount that is zero where it may not be, or above [`super::MAX_CREDITS`].
    #[error("the amount must be between {min} and {max} credits")]
    InvalidAmount {
        /// The least accepted.
        min: u64,
        /// The most accepted.
        max: u64,
    },
    /// The LLM call key is empty, too long or holds a control character.
    #[error("the LLM call key must be 1 to {max} characters without control characters")]
    InvalidKey {
        /// The limit.
        max: usize,
    },
    /// `Settle` for an LLM call with no open reservation.
    #[error("no open reservation for this LLM call")]
    UnknownReservation,
    /// A refund without a reason, or with one too long.
    #[error("a refund needs a reason of 1 to {max} characters")]
    InvalidReason {
        /// The limit.
        max: usize,
    },
    /// A Stripe refund or a refund against a purchase this account never received.
    #[error("no purchase of this account matches")]
    UnknownPurchase,
    /// A refund against a purchase for more credits than remain of it.
    #[error("only {remaining} credits of that purchase remain to refund")]
    ExceedsPurchase {
        /// What is left of the purchase.
        remaining: u64,
    },
}
