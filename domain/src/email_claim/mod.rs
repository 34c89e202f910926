//! Who owns an email address. The aggregate id is the normalized email, so the event store's
//! `(aggregate_type, aggregate_id, sequence)` key lets exactly one of two racing
//! registrations write the first claim; the loser gets a conflict, retries, and is refused.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::EmailClaim;
pub use commands::EmailClaimCommand;
pub use error::EmailClaimError;
pub use events::EmailClaimEvent;
