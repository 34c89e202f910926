//! Stripe's webhook: verify the signature on the raw body, then apply the event once.
//!
//! Stripe delivers an event at least once, sometimes several copies at the same moment, and in
//! any order. Every change is decided by the organization's account, which remembers the Stripe
//! events it applied and the Checkout Sessions it granted: a copy of an event (or another event
//! about a session already granted) records nothing and answers what the first one did. Copies
//! racing each other take turns on the account (its lock in a process, optimistic concurrency
//! between processes), so exactly one of them records.

use domain::credit_account::{CreditAccountCommand, CreditAccountError, StripeRefund};
use domain::organization::OrganizationError;
use eventstore::CommandContext;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::stripe::verify;
use super::{BillingError, BillingService};
use crate::identity::IdentityError;

/// The account that bought through a PaymentIntent (index `credit_purchases_by_payment_intent`).
const BUYER_OF_PAYMENT_INTENT: &str = "
    SELECT aggregate_id FROM events
     WHERE aggregate_type = 'credit_account' AND event_type = 'credit_account.granted'
       AND ((payload -> 'source') ->> 'payment_intent') = $1
     LIMIT 1";

/// What a delivery came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookResult {
    /// The purchase's credits were granted (by this event).
    Granted,
    /// The Checkout Session was granted already, by another event about it.
    AlreadyGranted,
    /// Credits matching the money refunded were taken back (by this event).
    TakenBack,
    /// The refund reported was taken back already (by an event reporting a later total, or an
    /// administrator's refund naming the purchase).
    NothingToTakeBack,
    /// The session completed without payment yet (a delayed payment method): its
    /// `checkout.session.async_payment_succeeded` will grant.
    AwaitingPayment,
    /// Nothing to do with it; `reason` says why.
    Ignored,
}

/// The answer to one delivery. A repeated delivery gets the same answer, `replayed` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOutcome {
    /// The Stripe event (`evt_…`).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// What it came to.
    pub result: WebhookResult,
    /// Why it was ignored: `unhandled_event_type`, `not_an_agentry_purchase`,
    /// `unknown_organization` or `unknown_purchase`.
    pub reason: Option<&'static str>,
    /// The organization whose account it concerns.
    pub org_id: Option<Uuid>,
    /// Credits granted or taken back (by this event, or by the one that granted the session).
    pub credits: u64,
    /// Whether this answers an earlier delivery again (nothing was recorded now).
    pub replayed: bool,
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

impl BillingService {
    /// Verifies `signature` (the `Stripe-Signature` header) on the raw `body` and applies the
    /// event: `checkout.session.completed` and `checkout.session.async_payment_succeeded`
    /// grant a paid session's credits once; `charge.refunded` takes back the credits matching
    /// the money refunded. Other types are answered [`WebhookResult::Ignored`] (Stripe would
    /// keep retrying, then disable the endpoint, on an error answer). A refused signature or an
    /// unreadable event changes nothing.
    pub async fn stripe_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, BillingError> {
        let Some((config, secret)) = self
            .config
            .stripe
            .as_ref()
            .and_then(|config| Some((config, config.webhook_secret.as_ref()?)))
        else {
            return Err(BillingError::StripeNotConfigured("STRIPE_WEBHOOK_SECRET"));
        };
        let now = chrono::Utc::now().timestamp();
        verify(
            signature,
            body,
            secret.expose_secret().as_bytes(),
            now,
            config.tolerance_seconds,
        )?;
        let event: StripeEvent =
            serde_json::from_slice(body).map_err(|error| BillingError::InvalidEvent(error.to_string()))?;
        let outcome = match event.kind.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                self.session_paid(&event).await?
            }
            "charge.refunded" => self.charge_refunded(&event).await?,
            _ => ignored(&event, "unhandled_event_type", None),
        };
        tracing::info!(
            stripe_event = %outcome.event_id,
            event_type = %outcome.event_type,
            result = ?outcome.result,
            credits = outcome.credits,
            replayed = outcome.replayed,
            "stripe webhook"
        );
        Ok(outcome)
    }

    async fn session_paid(&self, event: &StripeEvent) -> Result<WebhookOutcome, BillingError> {
        let session = &event.data.object;
        let session_id = text(session, "id").ok_or_else(|| invalid("the session has no id"))?;
        let metadata = &session["metadata"];
        let org_id = text(metadata, "org_id")
            .or_else(|| text(session, "client_reference_id"))
            .and_then(|id| Uuid::parse_str(&id).ok());
        let credits = text(metadata, "credits").and_then(|credits| credits.parse::<u64>().ok());
        let (Some(org_id), Some(credits)) = (org_id, credits) else {
            return Ok(ignored(event, "not_an_agentry_purchase", None));
        };
        let paid = matches!(
            session["payment_status"].as_str(),
            Some("paid" | "no_payment_required")
        );
        if !paid {
            return Ok(outcome(
                event,
                WebhookResult::AwaitingPayment,
                Some(org_id),
                0,
                false,
            ));
        }
        let grant = CreditAccountCommand::GrantPurchase {
            stripe_event_id: event.id.clone(),
            checkout_session_id: session_id.clone(),
            payment_intent: id_of(&session["payment_intent"]),
            credits,
            amount_paid: session["amount_total"].as_u64().unwrap_or_default(),
            currency: text(session, "currency").unwrap_or_default(),
        };
        let committed = match self.execute(org_id, grant, &stripe_context(org_id)).await {
            Ok(committed) => committed,
            Err(error) if is_unknown_organization(&error) => {
                return Ok(ignored(event, "unknown_organization", Some(org_id)));
            }
            Err(other) => return Err(other),
        };
        let account = &committed.state;
        Ok(if !committed.events.is_empty() {
            outcome(event, WebhookResult::Granted, Some(org_id), credits, false)
        } else if let Some(granted) = account.stripe_event(&event.id) {
            outcome(event, WebhookResult::Granted, Some(org_id), granted, true)
        } else {
            let granted = account
                .purchase(&session_id)
                .map_or(0, |purchase| purchase.credits);
            outcome(event, WebhookResult::AlreadyGranted, Some(org_id), granted, true)
        })
    }

    async fn charge_refunded(&self, event: &StripeEvent) -> Result<WebhookOutcome, BillingError> {
        let charge = &event.data.object;
        let charge_id = text(charge, "id").ok_or_else(|| invalid("the charge has no id"))?;
        let Some(payment_intent) = id_of(&charge["payment_intent"]) else {
            return Ok(ignored(event, "not_an_agentry_purchase", None));
        };
        let org_id = match text(&charge["metadata"], "org_id").and_then(|id| Uuid::parse_str(&id).ok()) {
            Some(org_id) => Some(org_id),
            None => self.buyer_of(&payment_intent).await?,
        };
        let Some(org_id) = org_id else {
            return Ok(ignored(event, "unknown_purchase", None));
        };
        let take_back = CreditAccountCommand::TakeBackStripeRefund(StripeRefund {
            stripe_event_id: event.id.clone(),
            charge_id,
            payment_intent,
            amount_refunded: charge["amount_refunded"].as_u64().unwrap_or_default(),
        });
        let committed = match self.execute(org_id, take_back, &stripe_context(org_id)).await {
            Ok(committed) => committed,
            Err(BillingError::Account(CreditAccountError::UnknownPurchase)) => {
                return Ok(ignored(event, "unknown_purchase", Some(org_id)));
            }
            Err(error) if is_unknown_organization(&error) => {
                return Ok(ignored(event, "unknown_organization", Some(org_id)));
            }
            Err(other) => return Err(other),
        };
        let taken = committed
            .events
            .iter()
            .map(|event| event.balance_change().unsigned_abs())
            .sum();
        Ok(if taken > 0 {
            outcome(event, WebhookResult::TakenBack, Some(org_id), taken, false)
        } else if let Some(taken) = committed.state.stripe_event(&event.id) {
            outcome(event, WebhookResult::TakenBack, Some(org_id), taken, true)
        } else {
            outcome(event, WebhookResult::NothingToTakeBack, Some(org_id), 0, false)
        })
    }

    async fn buyer_of(&self, payment_intent: &str) -> Result<Option<Uuid>, BillingError> {
        let row: Option<(String,)> = sqlx::query_as(BUYER_OF_PAYMENT_INTENT)
            .bind(payment_intent)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(id,)| Uuid::parse_str(&id).ok()))
    }
}

/// Events the webhook records are the platform's doing, for the organization.
fn stripe_context(org_id: Uuid) -> CommandContext {
    CommandContext::system(Some(org_id))
}

fn is_unknown_organization(error: &BillingError) -> bool {
    matches!(
        error,
        BillingError::Identity(IdentityError::Organization(OrganizationError::NotFound))
    )
}

fn outcome(
    event: &StripeEvent,
    result: WebhookResult,
    org_id: Option<Uuid>,
    credits: u64,
    replayed: bool,
) -> WebhookOutcome {
    WebhookOutcome {
        event_id: event.id.clone(),
        event_type: event.kind.clone(),
        result,
        reason: None,
        org_id,
        credits,
        replayed,
    }
}

fn ignored(event: &StripeEvent, reason: &'static str, org_id: Option<Uuid>) -> WebhookOutcome {
    WebhookOutcome {
        reason: Some(reason),
        ..outcome(event, WebhookResult::Ignored, org_id, 0, false)
    }
}

fn invalid(detail: &str) -> BillingError {
    BillingError::InvalidEvent(detail.to_owned())
}

fn text(object: &Value, field: &str) -> Option<String> {
    object.get(field)?.as_str().map(str::to_owned)
}

/// An id field Stripe sends as a string, or as the object itself when expanded.
fn id_of(value: &Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value.get("id")?.as_str())
        .map(str::to_owned)
}
