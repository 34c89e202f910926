//! Billing: the organization's credit account (a ledger in the event store), the reservations
//! the runtime takes before each LLM call and settles after it, Stripe Checkout for buying
//! credits, Stripe's webhook, and administrators' refunds.
//!
//! Decisions live in `domain::credit_account`; this module opens accounts (with the signup
//! grant), talks to Stripe, verifies its signatures, and reads the ledger.

mod config;
mod error;
mod history;
mod refunds;
mod reservations;
mod service;
pub mod stripe;
mod webhook;

pub use config::{BillingConfig, DEFAULT_SIGNUP_CREDITS, StripeConfig};
pub use error::BillingError;
pub use history::{Balance, LedgerEntry, LedgerPage};
pub use refunds::{AdminRefund, StripeRefundAttempt};
pub use reservations::{Reservation, ReserveOutcome, Settlement};
pub use service::BillingService;
pub use stripe::{CheckoutSession, SignatureError};
pub use webhook::{WebhookOutcome, WebhookResult};
