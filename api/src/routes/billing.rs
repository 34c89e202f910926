//! `/v1/billing`: the organization's credits (balance, ledger), buying credits through Stripe
//! Checkout, and Stripe's webhook.

use chrono::{DateTime, Utc};
use commands::billing::{Balance, LedgerEntry, WebhookOutcome, WebhookResult};
use domain::credit_account::{CreditAccountEvent, GrantSource, RefundSource};
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, SignedBody, idempotency_key};

/// The organization's credits, and Stripe.
pub struct BillingApi;

/// What the organization's account holds.
#[derive(Object)]
struct BalanceResponse {
    /// The balance: credits granted and bought, minus those charged and refunded. Below zero
    /// only after money already spent was refunded.
    credits: i64,
    /// Credits held by LLM calls in flight (reserved before each call, settled after it).
    reserved: i64,
    /// What new LLM calls may use: `credits - reserved`.
    available: i64,
}

impl From<Balance> for BalanceResponse {
    fn from(balance: Balance) -> Self {
        Self {
            credits: balance.credits,
            reserved: balance.reserved,
            available: balance.available,
        }
    }
}

/// What a ledger entry is.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum LedgerKind {
    /// The account was opened (the first entry).
    Opened,
    /// Credits added: the signup grant or a purchase (`source` says which).
    Granted,
    /// Credits held for an LLM call about to be made.
    Reserved,
    /// What an LLM call cost, taken from the balance.
    Charged,
    /// The unused part of a reservation, available again; closes the reservation.
    Released,
    /// Credits taken back: a Stripe refund or a platform administrator's (`source` says which).
    Refunded,
}

/// Where a grant or a refund came from.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum LedgerSource {
    /// The grant every organization starts with.
    Signup,
    /// A Stripe Checkout purchase.
    Purchase,
    /// Money refunded through Stripe (`charge.refunded`).
    StripeRefund,
    /// A platform administrator's refund.
    AdminRefund,
}

/// One entry of the ledger: one event of the account, naming what caused it. Fields that do
/// not apply to the entry's kind are left out.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct LedgerEntryBody {
    /// The entry's place in the account (1 for the opening).
    sequence: i64,
    /// The event in the organization's log (`GET /v1/events/{id}`).
    event_id: Uuid,
    /// What it is.
    kind: LedgerKind,
    /// Credits it moved (reserved, charged, released, granted or refunded).
    credits: u64,
    /// What it did to the balance: positive for grants, negative for charges and refunds,
    /// 0 for the opening, reservations and releases.
    balance_change: i64,
    /// When it was recorded.
    recorded_at: Option<DateTime<Utc>>,
    /// Who caused it: `user:<id>`, `api_key:<id>` or `system`.
    actor: Option<String>,
    /// Where a grant or refund came from.
    source: Option<LedgerSource>,
    /// The organization's creation event (the opening and the signup grant).
    organization_event_id: Option<Uuid>,
    /// The Stripe event that caused it (`evt_…`).
    stripe_event_id: Option<String>,
    /// The Stripe Checkout Session (`cs_…`) bought, or refunded from.
    checkout_session_id: Option<String>,
    /// The purchase's Stripe PaymentIntent (`pi_…`).
    payment_intent: Option<String>,
    /// The Stripe charge refunded (`ch_…`).
    charge_id: Option<String>,
    /// What the purchase cost, in the currency's smallest unit.
    amount_paid: Option<u64>,
    /// What Stripe had refunded of the charge in all, in the currency's smallest unit.
    amount_refunded: Option<u64>,
    /// The purchase's currency.
    currency: Option<String>,
    /// The run whose LLM call reserved or was charged.
    run_id: Option<Uuid>,
    /// The LLM call, as the runtime keys it (`<run id>/<step>`).
    llm_call: Option<String>,
    /// The event that caused the entry: for a charge, the run's `llm_call.completed` (for a
    /// call cancelled while it streamed, the `run.cancelled` that priced it; for a call that
    /// never completed otherwise, the run's last event); for a reservation, the step's event
    /// before the call.
    caused_by: Option<Uuid>,
    /// On a charge: the provider reported no usage, so Agentry counted the tokens itself
    /// (approximately).
    tokens_counted: Option<bool>,
    /// The reservation.
    reservation_id: Option<Uuid>,
    /// The platform administrator who refunded.
    refunded_by: Option<Uuid>,
    /// Why they did.
    reason: Option<String>,
}

/// One page of the ledger, newest entry first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct LedgerPageBody {
    /// This page.
    entries: Vec<LedgerEntryBody>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<i64>,
}

/// Credits to buy.
#[derive(Object)]
struct CheckoutRequest {
    /// How many credits (at least what Stripe's smallest charge buys; at most the ledger's
    /// limit per entry, `domain::credit_account::MAX_CREDITS`).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000000")))]
    credits: u64,
}

/// A Stripe Checkout Session to pay for credits.
#[derive(Object)]
struct CheckoutResponse {
    /// Where to send the buyer.
    checkout_url: String,
    /// The session (`cs_…`); the ledger names it once the payment is granted.
    session_id: String,
}

#[derive(ApiResponse)]
enum CheckoutCreated {
    /// Created; the credits are granted when Stripe reports the payment to the webhook.
    #[oai(status = 201)]
    Created(Json<CheckoutResponse>),
}

/// What a Stripe event delivery came to.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum WebhookResultName {
    /// The purchase's credits were granted by this event.
    Granted,
    /// The Checkout Session was granted already, by another event about it.
    AlreadyGranted,
    /// Credits matching the money refunded were taken back by this event.
    TakenBack,
    /// The refund was taken back already (by an event reporting a later total, or an
    /// administrator's refund of the purchase).
    NothingToTakeBack,
    /// Completed without payment yet (a delayed payment method); a later event grants.
    AwaitingPayment,
    /// Nothing for Agentry to do; `reason` says why.
    Ignored,
}

impl From<WebhookResult> for WebhookResultName {
    fn from(result: WebhookResult) -> Self {
        match result {
            WebhookResult::Granted => Self::Granted,
            WebhookResult::AlreadyGranted => Self::AlreadyGranted,
            WebhookResult::TakenBack => Self::TakenBack,
            WebhookResult::NothingToTakeBack => Self::NothingToTakeBack,
            WebhookResult::AwaitingPayment => Self::AwaitingPayment,
            WebhookResult::Ignored => Self::Ignored,
        }
    }
}

/// The webhook's answer. A repeated delivery of an event gets the first delivery's answer,
/// with `replayed` set.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct WebhookResponse {
    /// The Stripe event (`evt_…`).
    event_id: String,
    /// Its type.
    event_type: String,
    /// What it came to.
    result: WebhookResultName,
    /// Why it was ignored: `unhandled_event_type`, `not_an_agentry_purchase`,
    /// `unknown_organization` or `unknown_purchase`.
    reason: Option<String>,
    /// The organization whose credits it concerns.
    org_id: Option<Uuid>,
    /// Credits granted or taken back.
    credits: u64,
    /// Whether this answers an earlier delivery again (nothing was recorded now).
    replayed: bool,
}

impl From<WebhookOutcome> for WebhookResponse {
    fn from(outcome: WebhookOutcome) -> Self {
        Self {
            event_id: outcome.event_id,
            event_type: outcome.event_type,
            result: outcome.result.into(),
            reason: outcome.reason.map(str::to_owned),
            org_id: outcome.org_id,
            credits: outcome.credits,
            replayed: outcome.replayed,
        }
    }
}

#[OpenApi(tag = "ApiTags::Billing")]
impl BillingApi {
    /// Read the organization's credit balance
    ///
    /// The balance, what LLM calls in flight hold, and what is available (owners, admins,
    /// auditors). With `as_of`, the balance as it stood then, folded from the ledger's entries
    /// recorded until that time (404 `no_credit_account` before the account was opened).
    #[oai(path = "/billing/balance", method = "get", operation_id = "getBalance")]
    async fn balance(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// A past moment (RFC 3339): the balance as it stood then.
        as_of: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<BalanceResponse>, ApiError> {
        let balance = match as_of.0 {
            Some(as_of) => state.billing.balance_as_of(&auth.0, as_of).await?,
            None => state.billing.balance(&auth.0).await?,
        };
        Ok(Json(balance.into()))
    }

    /// List the organization's ledger
    ///
    /// Every entry of the credit account, newest first, a page at a time (owners, admins,
    /// auditors): grants, purchases, reservations, charges, releases and refunds, each naming
    /// what caused it (the organization's creation, a Stripe event and session, a run and its
    /// LLM call, an administrator and their reason).
    #[oai(path = "/billing/ledger", method = "get", operation_id = "listLedgerEntries")]
    async fn ledger(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// Most entries in the page (1–100); 50 when absent.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// Where to continue: a previous page's `next_cursor`.
        #[oai(validator(minimum(value = "1")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<LedgerPageBody>, ApiError> {
        let page = state
            .billing
            .ledger(&auth.0, limit.0.unwrap_or(50), cursor.0)
            .await?;
        Ok(Json(LedgerPageBody {
            entries: page.entries.into_iter().map(entry_body).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Buy credits
    ///
    /// Creates a Stripe Checkout Session for `credits` (owners and admins) and answers where to
    /// pay. The credits are granted once Stripe reports the payment to the webhook. 503
    /// `stripe_not_configured` on a deployment without Stripe.
    ///
    /// With an `Idempotency-Key`, the same request repeated within 24 hours (Stripe's limit)
    /// answers the session the first one created, so a buyer is never sent two.
    #[oai(
        path = "/billing/checkout",
        method = "post",
        operation_id = "createCheckoutSession"
    )]
    async fn checkout(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// A key of the client's choosing (1–255 visible ASCII characters) that makes the request
        /// safe to repeat: the same key with the same credits within 24 hours answers the session
        /// it created; with other credits, 422 `idempotency_key_reused`. Keys are the
        /// organization's.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        key: Header<Option<String>>,
        body: Json<CheckoutRequest>,
        request: &poem::Request,
    ) -> Result<CheckoutCreated, ApiError> {
        let key = idempotency_key(key.0.as_deref(), request)?;
        let session = state
            .billing
            .checkout(&auth.0, body.credits, key.as_ref(), request_id.for_events())
            .await?;
        Ok(CheckoutCreated::Created(Json(CheckoutResponse {
            checkout_url: session.url,
            session_id: session.id,
        })))
    }

    /// Receive a Stripe event
    ///
    /// Stripe's webhook (no bearer credential: the `Stripe-Signature` header, an HMAC-SHA256 of
    /// the raw body with `STRIPE_WEBHOOK_SECRET`, is checked instead, with a 300 s tolerance).
    /// `checkout.session.completed` and `checkout.session.async_payment_succeeded` grant a paid
    /// session's credits once, however many events and copies report it; `charge.refunded`
    /// takes back the credits matching the money refunded. Other types are answered 200
    /// `ignored`. A repeated delivery answers what the first did. A bad, missing or stale
    /// signature, or an unreadable event, gets 400 with its own code and changes nothing.
    #[oai(
        path = "/billing/stripe/webhook",
        method = "post",
        operation_id = "receiveStripeWebhook"
    )]
    async fn stripe_webhook(
        &self,
        state: Data<&AppState>,
        /// `t=<unix seconds>,v1=<hex HMAC-SHA256>` as Stripe signs deliveries.
        #[oai(name = "Stripe-Signature")]
        signature: Header<Option<String>>,
        body: SignedBody,
    ) -> Result<Json<WebhookResponse>, ApiError> {
        let outcome = state
            .billing
            .stripe_webhook(signature.0.as_deref(), &body.0)
            .await?;
        Ok(Json(outcome.into()))
    }
}

fn entry_body(entry: LedgerEntry) -> LedgerEntryBody {
    let mut body = LedgerEntryBody {
        sequence: entry.sequence,
        event_id: entry.event_id,
        kind: LedgerKind::Opened,
        credits: 0,
        balance_change: entry.event.balance_change(),
        recorded_at: entry.recorded_at,
        actor: entry.actor,
        source: None,
        organization_event_id: None,
        stripe_event_id: None,
        checkout_session_id: None,
        payment_intent: None,
        charge_id: None,
        amount_paid: None,
        amount_refunded: None,
        currency: None,
        run_id: None,
        llm_call: None,
        caused_by: entry.caused_by,
        tokens_counted: None,
        reservation_id: None,
        refunded_by: None,
        reason: None,
    };
    match entry.event {
        CreditAccountEvent::Opened {
            organization_event_id,
            ..
        } => body.organization_event_id = Some(organization_event_id),
        CreditAccountEvent::Granted { credits, source } => {
            body.kind = LedgerKind::Granted;
            body.credits = credits;
            grant_source(&mut body, source);
        }
        CreditAccountEvent::Reserved {
            reservation_id,
            run_id,
            llm_call,
            credits,
            ..
        } => call_entry(
            &mut body,
            LedgerKind::Reserved,
            reservation_id,
            run_id,
            llm_call,
            credits,
        ),
        CreditAccountEvent::Charged {
            reservation_id,
            run_id,
            llm_call,
            credits,
            tokens_counted,
        } => {
            call_entry(
                &mut body,
                LedgerKind::Charged,
                reservation_id,
                run_id,
                llm_call,
                credits,
            );
            body.tokens_counted = Some(tokens_counted);
        }
        CreditAccountEvent::Released {
            reservation_id,
            run_id,
            llm_call,
            credits,
        } => call_entry(
            &mut body,
            LedgerKind::Released,
            reservation_id,
            run_id,
            llm_call,
            credits,
        ),
        CreditAccountEvent::Refunded { credits, source } => {
            body.kind = LedgerKind::Refunded;
            body.credits = credits;
            refund_source(&mut body, source);
        }
    }
    body
}

fn call_entry(
    body: &mut LedgerEntryBody,
    kind: LedgerKind,
    reservation_id: Uuid,
    run_id: Uuid,
    llm_call: String,
    credits: u64,
) {
    body.kind = kind;
    body.credits = credits;
    body.reservation_id = Some(reservation_id);
    body.run_id = Some(run_id);
    body.llm_call = Some(llm_call);
}

fn grant_source(body: &mut LedgerEntryBody, source: GrantSource) {
    match source {
        GrantSource::Signup {
            organization_event_id,
        } => {
            body.source = Some(LedgerSource::Signup);
            body.organization_event_id = Some(organization_event_id);
        }
        GrantSource::Purchase {
            stripe_event_id,
            checkout_session_id,
            payment_intent,
            amount_paid,
            currency,
        } => {
            body.source = Some(LedgerSource::Purchase);
            body.stripe_event_id = Some(stripe_event_id);
            body.checkout_session_id = Some(checkout_session_id);
            body.payment_intent = payment_intent;
            body.amount_paid = Some(amount_paid);
            body.currency = Some(currency);
        }
    }
}

fn refund_source(body: &mut LedgerEntryBody, source: RefundSource) {
    match source {
        RefundSource::Stripe {
            stripe_event_id,
            charge_id,
            checkout_session_id,
            amount_refunded,
        } => {
            body.source = Some(LedgerSource::StripeRefund);
            body.stripe_event_id = Some(stripe_event_id);
            body.charge_id = Some(charge_id);
            body.checkout_session_id = Some(checkout_session_id);
            body.amount_refunded = Some(amount_refunded);
        }
        RefundSource::Admin {
            by,
            reason,
            checkout_session_id,
        } => {
            body.source = Some(LedgerSource::AdminRefund);
            body.refunded_by = Some(by);
            body.reason = Some(reason);
            body.checkout_session_id = checkout_session_id;
        }
    }
}
