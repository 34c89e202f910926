//! Events of the credit account: each one a ledger entry. Their JSON shapes are stored forever.

use cqrs_es::DomainEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CallPrice;

/// What a grant came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrantSource {
    /// The grant every new organization starts with (`AGENTRY_SIGNUP_CREDITS`).
    Signup {
        /// The organization's `organization.created` event.
        organization_event_id: Uuid,
    },
    /// Credits bought through Stripe Checkout.
    Purchase {
        /// The Stripe event that reported the payment (`evt_…`).
        stripe_event_id: String,
        /// The Checkout Session paid (`cs_…`): a session grants once, whichever event reports it.
        checkout_session_id: String,
        /// The session's PaymentIntent (`pi_…`), which Stripe refunds name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payment_intent: Option<String>,
        /// What was paid, in the currency's smallest unit (cents).
        amount_paid: u64,
        /// The ISO currency, lowercase (`usd`).
        currency: String,
    },
}

/// What a refund (credits taken back) came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RefundSource {
    /// Stripe reported money refunded on a purchase (`charge.refunded`).
    Stripe {
        /// The Stripe event (`evt_…`).
        stripe_event_id: String,
        /// The refunded charge (`ch_…`).
        charge_id: String,
        /// The purchase's Checkout Session.
        checkout_session_id: String,
        /// Everything refunded on the charge so far, in cents, as that event reported it.
        amount_refunded: u64,
    },
    /// A platform administrator took credits back (`POST /v1/admin/orgs/{id}/refunds`).
    Admin {
        /// The administrator (also the event's actor).
        by: Uuid,
        /// Why.
        reason: String,
        /// The purchase the credits are taken from, when named: its Stripe refunds then count
        /// these credits as taken back already.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkout_session_id: Option<String>,
    },
}

/// What happened to a credit account; internally tagged by the dotted event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum CreditAccountEvent {
    /// The account exists; the first event of every account.
    #[serde(rename = "credit_account.opened")]
    Opened {
        /// The organization (also the aggregate id).
        org_id: Uuid,
        /// The organization's `organization.created` event: what the account is opened for.
        organization_event_id: Uuid,
    },
    /// Credits added to the balance.
    #[serde(rename = "credit_account.granted")]
    Granted {
        /// How many.
        credits: u64,
        /// Why.
        source: GrantSource,
    },
    /// Credits held for an LLM call about to be made: out of the available balance until the
    /// call is settled.
    #[serde(rename = "credit_account.reserved")]
    Reserved {
        /// The reservation.
        reservation_id: Uuid,
        /// The run making the call.
        run_id: Uuid,
        /// The LLM call, as the runtime keys it: at most one reservation per key, ever.
        llm_call: String,
        /// The call's worst case.
        credits: u64,
        /// The call's price: what charges it if it ends without the provider's count
        /// (cancelled while it streamed). Absent on holds recorded before it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<CallPrice>,
    },
    /// What an LLM call actually cost, taken from the balance.
    #[serde(rename = "credit_account.charged")]
    Charged {
        /// The reservation settled.
        reservation_id: Uuid,
        /// The run.
        run_id: Uuid,
        /// The LLM call.
        llm_call: String,
        /// The actual cost.
        credits: u64,
        /// The provider reported no usage for the call: its tokens were counted by Agentry.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tokens_counted: bool,
    },
    /// The part of a reservation not charged, back in the available balance; it closes the
    /// reservation (`credits` may be 0).
    #[serde(rename = "credit_account.released")]
    Released {
        /// The reservation closed.
        reservation_id: Uuid,
        /// The run.
        run_id: Uuid,
        /// The LLM call.
        llm_call: String,
        /// Credits no longer held.
        credits: u64,
    },
    /// Credits taken back from the balance (which may go below zero: money already refunded
    /// cannot be refused).
    #[serde(rename = "credit_account.refunded")]
    Refunded {
        /// How many.
        credits: u64,
        /// Why.
        source: RefundSource,
    },
}

impl DomainEvent for CreditAccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Opened { .. } => "credit_account.opened",
            Self::Granted { .. } => "credit_account.granted",
            Self::Reserved { .. } => "credit_account.reserved",
            Self::Charged { .. } => "credit_account.charged",
            Self::Released { .. } => "credit_account.released",
            Self::Refunded { .. } => "credit_account.refunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl CreditAccountEvent {
    /// What the event does to the balance (reservations and releases change only what is
    /// available, not the balance).
    pub fn balance_change(&self) -> i64 {
        match self {
            Self::Granted { credits, .. } => signed(*credits),
            Self::Charged { credits, .. } | Self::Refunded { credits, .. } => -signed(*credits),
            Self::Opened { .. } | Self::Reserved { .. } | Self::Released { .. } => 0,
        }
    }
}

/// Amounts are at most [`super::MAX_CREDITS`], far inside `i64`.
pub(super) fn signed(credits: u64) -> i64 {
    i64::try_from(credits).unwrap_or(i64::MAX)
}
