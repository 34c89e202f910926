//! An organization's credit account: a ledger of grants, purchases, reservations, charges,
//! releases and refunds, every entry an event naming what caused it. The balance is the fold of
//! those events, never a stored number that gets edited.
//!
//! Credits are whole numbers, the unit a run's `credits` uses (the runtime's price table).
//!
//! # Reserve before, settle after
//!
//! Before an LLM call the runtime reserves the call's worst case; the reservation holds those
//! credits out of the *available* balance (balance minus every open reservation), so concurrent
//! calls can never together spend more than the balance. After the call, settling charges what
//! it actually cost and releases the rest. Both are keyed by the LLM call, so a retry after a
//! crash finds what the first attempt did instead of doing it twice.

mod aggregate;
mod commands;
mod error;
mod events;
mod price;

pub use aggregate::{CreditAccount, MAX_CREDITS, MAX_KEY_CHARS, MAX_REASON_CHARS, OpenReservation, Purchase};
pub use commands::{CreditAccountCommand, StripeRefund};
pub use error::CreditAccountError;
pub use events::{CreditAccountEvent, GrantSource, RefundSource};
pub use price::{CHARS_PER_TOKEN, CallPrice, counted_tokens, credits_for};
