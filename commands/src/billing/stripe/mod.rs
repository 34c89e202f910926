//! Stripe: its webhook signatures and the two REST calls Agentry makes (a Checkout Session,
//! a refund), over its form-encoded API with reqwest.
//!
//! Not a Stripe crate: `async-stripe` generates hundreds of thousands of lines for the whole
//! API (minutes of build on two cores for two calls) and brings its own HTTP stack, while
//! `stripe-rust` is unmaintained; two form posts and one HMAC are short to write and to test
//! against Stripe's own library (`agentry/tests/api/billing_stripe.rs`).

mod client;
mod signature;

pub use client::{CheckoutSession, StripeCallError, StripeClient};
pub use signature::{SignatureError, sign, verify};
