//! Billing's service from the settings.

use commands::billing::{BillingConfig, BillingService, StripeConfig};

use crate::platform::Platform;
use crate::settings::Settings;

/// Stripe's own libraries refuse webhook signatures older than this by default.
const STRIPE_TOLERANCE_SECONDS: i64 = 300;

/// The billing service over the platform's store.
pub fn billing_service(platform: &Platform, settings: &Settings) -> BillingService {
    BillingService::new(&platform.store, billing_config(settings))
}

/// What billing is configured with. Stripe counts as configured when either secret is set:
/// a deployment may take webhooks before it sells, or sell before its webhook is set up.
pub fn billing_config(settings: &Settings) -> BillingConfig {
    let billing = &settings.billing;
    let configured = billing.stripe_secret_key.is_some() || billing.stripe_webhook_secret.is_some();
    let public_url = settings.identity.public_url.trim_end_matches('/');
    let stripe = configured.then(|| StripeConfig {
        api_base: billing.stripe_api_base.clone(),
        secret_key: billing.stripe_secret_key.clone(),
        webhook_secret: billing.stripe_webhook_secret.clone(),
        price_per_million_credits: billing.price_per_million_credits,
        currency: billing.currency.to_lowercase(),
        success_url: format!("{public_url}/billing/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"),
        cancel_url: format!("{public_url}/billing/checkout/cancelled"),
        tolerance_seconds: STRIPE_TOLERANCE_SECONDS,
    });
    if stripe.is_none() {
        tracing::info!(
            "Stripe is not configured: buying credits and the Stripe webhook answer stripe_not_configured"
        );
    }
    BillingConfig {
        signup_credits: billing.signup_credits,
        stripe,
    }
}
