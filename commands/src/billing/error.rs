//! What billing operations answer besides success.

use domain::credit_account::CreditAccountError;
use eventstore::{CommandError, StoreError};
use thiserror::Error;

use super::stripe::SignatureError;
use crate::identity::IdentityError;

/// A refusal of the credit account, a Stripe problem, or one of the outcomes shared with
/// identity (denied, busy, unstorable, internal).
#[derive(Debug, Error)]
pub enum BillingError {
    /// The credit account refused.
    #[error(transparent)]
    Account(#[from] CreditAccountError),
    /// Stripe is not configured (no `STRIPE_SECRET_KEY`, or no `STRIPE_WEBHOOK_SECRET` for the
    /// webhook).
    #[error("{0} is not configured on this deployment")]
    StripeNotConfigured(&'static str),
    /// Stripe could not be reached, or answered an error; the text says which (never a secret).
    #[error("Stripe: {0}")]
    Stripe(String),
    /// A webhook whose `Stripe-Signature` does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A signed webhook body that is not a Stripe event of the shape its type has.
    #[error("the Stripe event cannot be read: {0}")]
    InvalidEvent(String),
    /// A checkout below Stripe's smallest charge.
    #[error("a purchase must be at least {min_credits} credits (Stripe's smallest charge)")]
    PurchaseTooSmall {
        /// The fewest credits that may be bought.
        min_credits: u64,
    },
    /// A reservation for an LLM call whose key was reserved before (refused by the store's
    /// unique index): the reservation service answers the first one instead, so this never
    /// reaches a client.
    #[error("this LLM call was reserved before")]
    ReservationKeyTaken,
    /// Denied, lost a race, unstorable input, no such organization, or our failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl From<CommandError<CreditAccountError>> for BillingError {
    fn from(error: CommandError<CreditAccountError>) -> Self {
        match error {
            CommandError::Rejected(refusal) => Self::Account(refusal),
            CommandError::Conflict => Self::Identity(IdentityError::Busy),
            CommandError::Store(StoreError::Database(error)) if is_reservation_key(&error) => {
                Self::ReservationKeyTaken
            }
            CommandError::Store(store) => Self::Identity(store.into()),
        }
    }
}

/// The unique index on reservation keys (migration `credit_ledger`) refused the append.
fn is_reservation_key(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("23505") && db.constraint() == Some("credit_reservation_keys")
    })
}

impl From<StoreError> for BillingError {
    fn from(error: StoreError) -> Self {
        Self::Identity(error.into())
    }
}

impl From<sqlx::Error> for BillingError {
    fn from(error: sqlx::Error) -> Self {
        Self::Identity(error.into())
    }
}
