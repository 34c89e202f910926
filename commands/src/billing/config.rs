//! What billing is configured with.

use secrecy::SecretString;

/// Credits a new organization starts with unless configured otherwise: enough for a newcomer's
/// first runs on the development model (`echo` costs about a credit per call) and a few on a
/// real model.
pub const DEFAULT_SIGNUP_CREDITS: u64 = 1_000_000;

/// Billing's settings.
#[derive(Clone, Debug)]
pub struct BillingConfig {
    /// Credits granted when an organization's account opens (0: none).
    pub signup_credits: u64,
    /// Stripe, when configured; without it checkout and the webhook answer
    /// `stripe_not_configured`.
    pub stripe: Option<StripeConfig>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            signup_credits: DEFAULT_SIGNUP_CREDITS,
            stripe: None,
        }
    }
}

/// How Agentry talks to Stripe.
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `STRIPE_API_BASE`: `https://api.stripe.com`, or a local server in tests.
    pub api_base: String,
    /// `STRIPE_SECRET_KEY`: checkout and refunds need it.
    pub secret_key: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`): the webhook verifies signatures with it.
    pub webhook_secret: Option<SecretString>,
    /// The price of a million credits, in the currency's smallest unit (cents).
    pub price_per_million_credits: u64,
    /// The ISO currency, lowercase.
    pub currency: String,
    /// Where Checkout sends the buyer after paying (`{CHECKOUT_SESSION_ID}` is Stripe's
    /// placeholder).
    pub success_url: String,
    /// Where Checkout sends a buyer who gives up.
    pub cancel_url: String,
    /// How far a webhook's signed timestamp may be from our clock, in seconds (Stripe's
    /// libraries use 300).
    pub tolerance_seconds: i64,
}
