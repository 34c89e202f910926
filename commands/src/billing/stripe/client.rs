//! The two calls Agentry makes to Stripe's REST API: form-encoded requests, JSON answers.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

/// Stripe calls give up after this long; the caller is told Stripe is unavailable.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A Checkout Session Stripe created.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: String,
    /// Where the buyer pays.
    pub url: String,
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe refused the idempotency key: it was first sent with other parameters
    /// (`idempotency_error`), which a client's `Idempotency-Key` reused for another request is.
    #[error("Stripe refused the idempotency key: {0}")]
    KeyReused(String),
    /// Stripe could not be reached, answered an error, or answered what cannot be read.
    #[error("{0}")]
    Failed(String),
}

/// Talks to Stripe at a base URL (`STRIPE_API_BASE`) with a secret key.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    secret_key: SecretString,
}

impl StripeClient {
    /// A client for `api_base` (no trailing slash needed) with `secret_key`.
    pub fn new(api_base: &str, secret_key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            secret_key,
        }
    }

    /// `POST /v1/checkout/sessions` with `form` (Stripe's bracketed keys).
    pub async fn create_checkout_session(
        &self,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeCallError> {
        let answer = self.post("/v1/checkout/sessions", form, idempotency_key).await?;
        serde_json::from_value(answer)
            .map_err(|error| StripeCallError::Failed(format!("unexpected Checkout Session: {error}")))
    }

    /// `POST /v1/refunds` of `amount` cents of `payment_intent`; answers the refund's id.
    /// `idempotency_key` makes a retried request refund once.
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount: u64,
        metadata: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<String, String> {
        let mut form = vec![
            ("payment_intent".to_owned(), payment_intent.to_owned()),
            ("amount".to_owned(), amount.to_string()),
        ];
        for (key, value) in metadata {
            form.push((format!("metadata[{key}]"), value.clone()));
        }
        let answer = self
            .post("/v1/refunds", &form, idempotency_key)
            .await
            .map_err(|error| error.to_string())?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the refund answer has no id".to_owned())
    }

    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeCallError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.api_base))
            .bearer_auth(self.secret_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|error| {
                StripeCallError::Failed(format!("cannot reach Stripe: {}", without_url(&error)))
            })?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|error| {
            StripeCallError::Failed(format!(
                "Stripe answered {status} with a body that is not JSON: {}",
                without_url(&error)
            ))
        })?;
        if status.is_success() {
            return Ok(answer);
        }
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        if answer["error"]["type"] == "idempotency_error" {
            return Err(StripeCallError::KeyReused(message.to_owned()));
        }
        Err(StripeCallError::Failed(format!(
            "Stripe answered {status}: {message}"
        )))
    }
}

/// reqwest's error text without the URL (which holds nothing secret here, but the base URL of
/// a deployment is not the caller's business).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "Stripe");
    }
    text
}
