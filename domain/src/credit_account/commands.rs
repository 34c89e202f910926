//! Commands of the credit account.

use uuid::Uuid;

use super::CallPrice;

/// Money Stripe reports refunded on one of the account's purchases (`charge.refunded`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeRefund {
    /// The Stripe event (`evt_…`): a repeated delivery finds what the first one did.
    pub stripe_event_id: String,
    /// The refunded charge (`ch_…`).
    pub charge_id: String,
    /// The charge's PaymentIntent (`pi_…`), which names the purchase.
    pub payment_intent: String,
    /// Everything refunded on the charge so far, in cents (Stripe's `amount_refunded`). Being
    /// a running total, deliveries that arrive out of order take back each credit once.
    pub amount_refunded: u64,
}

/// What a caller asks of a credit account. The application looks up everything a decision
/// needs (the organization's creation event, the signup grant configured) and puts it here.
#[derive(Clone, Debug, PartialEq)]
pub enum CreditAccountCommand {
    /// Open the account with the signup grant (0: no grant entry).
    Open {
        /// The organization.
        org_id: Uuid,
        /// Its `organization.created` event.
        organization_event_id: Uuid,
        /// Credits granted at signup.
        signup_grant: u64,
    },
    /// Hold `credits` for an LLM call; refused when the available balance does not cover it.
    /// A key reserved already (and still open) records nothing: the open reservation stands.
    Reserve {
        /// The new reservation's id (used only if one is recorded).
        reservation_id: Uuid,
        /// The run making the call.
        run_id: Uuid,
        /// The LLM call's key (1 to 200 characters).
        llm_call: String,
        /// Its worst case (at least 1).
        credits: u64,
        /// Its price, recorded on the hold (see [`CallPrice`]).
        price: Option<CallPrice>,
    },
    /// Charge what the LLM call actually cost and release the rest of its reservation.
    Settle {
        /// The LLM call's key.
        llm_call: String,
        /// The actual cost (0 for a call that failed without usage).
        actual: u64,
        /// The provider reported no usage: the tokens were counted by Agentry (approximately),
        /// and the charge says so.
        tokens_counted: bool,
    },
    /// Grant credits paid through a Stripe Checkout Session; a session already granted (by
    /// this event or another) records nothing.
    GrantPurchase {
        /// The Stripe event reporting the payment.
        stripe_event_id: String,
        /// The session.
        checkout_session_id: String,
        /// Its PaymentIntent.
        payment_intent: Option<String>,
        /// Credits bought (from the session's metadata, which Agentry wrote).
        credits: u64,
        /// What was paid, in cents.
        amount_paid: u64,
        /// The currency.
        currency: String,
    },
    /// Take back the credits matching money refunded on a purchase.
    TakeBackStripeRefund(StripeRefund),
    /// A platform administrator takes credits back, with a reason.
    Refund {
        /// The administrator.
        by: Uuid,
        /// How many.
        credits: u64,
        /// Why (1 to 500 characters).
        reason: String,
        /// The purchase they come from, if any (`cs_…`).
        checkout_session_id: Option<String>,
    },
}
