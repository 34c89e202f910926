//! Platform administrators' refunds: credits taken back with a reason, recorded with the
//! administrator as actor (the audit log shows who, when, from where and why).
//!
//! Naming a purchase (its Checkout Session) also refunds its money through Stripe, in proportion
//! to the credits, after the credits are taken back: the `charge.refunded` Stripe sends next then
//! finds those credits taken back already and takes nothing more. A Stripe failure leaves the
//! credits taken back and says so in the answer; refunding the money from Stripe's dashboard
//! afterwards takes nothing more back either.

use domain::credit_account::CreditAccountCommand;
use domain::{Actor, credit_account::CreditAccountEvent};
use eventstore::{CommandContext, RequestOrigin};
use uuid::Uuid;

use super::{BillingError, BillingService};
use crate::identity::{Caller, Denial};

/// What an administrator's refund did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRefund {
    /// The ledger entry recording it.
    pub event_id: Uuid,
    /// Credits taken back.
    pub credits: u64,
    /// The balance after it.
    pub balance: i64,
    /// The money refund asked of Stripe, when a purchase was named.
    pub stripe_refund: Option<StripeRefundAttempt>,
}

/// A money refund asked of Stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeRefundAttempt {
    /// Cents asked for: the purchase's price times the share of its credits taken back, rounded down.
    pub amount: u64,
    /// The Stripe refund (`re_…`) when Stripe accepted it.
    pub refund_id: Option<String>,
    /// Why it failed otherwise (Stripe not configured, unreachable, or refusing).
    pub error: Option<String>,
}

impl BillingService {
    /// Takes `credits` back from `org_id`'s account with `reason` (platform administrators). With
    /// `checkout_session_id`, the credits come from that purchase (at most what is left of it)
    /// and its money is refunded through Stripe.
    pub async fn admin_refund(
        &self,
        caller: &Caller,
        org_id: Uuid,
        credits: u64,
        reason: &str,
        checkout_session_id: Option<String>,
        origin: Option<RequestOrigin>,
    ) -> Result<AdminRefund, BillingError> {
        let admin = match caller.user_id {
            Some(user_id) if caller.is_platform_admin => user_id,
            _ => return Err(crate::identity::IdentityError::Denied(Denial::PlatformAdminRequired).into()),
        };
        let context = CommandContext {
            actor: Actor::User { id: admin },
            org_id: Some(org_id),
            request: origin,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            impersonator_id: None,
        };
        let refund = CreditAccountCommand::Refund {
            by: admin,
            credits,
            reason: reason.to_owned(),
            checkout_session_id: checkout_session_id.clone(),
        };
        let committed = self.execute(org_id, refund, &context).await?;
        let event_id = committed
            .appended
            .first()
            .map(|appended| appended.event_id)
            .unwrap_or_default();
        let taken = committed
            .events
            .iter()
            .map(|event| match event {
                CreditAccountEvent::Refunded { credits, .. } => *credits,
                _ => 0,
            })
            .sum();
        let stripe_refund = match checkout_session_id {
            Some(session) => Some(
                self.refund_money(org_id, &committed.state, &session, taken, event_id)
                    .await,
            ),
            None => None,
        };
        Ok(AdminRefund {
            event_id,
            credits: taken,
            balance: committed.state.balance(),
            stripe_refund,
        })
    }

    async fn refund_money(
        &self,
        org_id: Uuid,
        account: &domain::credit_account::CreditAccount,
        session: &str,
        credits: u64,
        event_id: Uuid,
    ) -> StripeRefundAttempt {
        let purchase = account.purchase(session);
        let amount = purchase.map_or(0, |purchase| {
            let share =
                u128::from(purchase.amount_paid) * u128::from(credits) / u128::from(purchase.credits.max(1));
            u64::try_from(share).unwrap_or(purchase.amount_paid)
        });
        let failed = |error: &str| StripeRefundAttempt {
            amount,
            refund_id: None,
            error: Some(error.to_owned()),
        };
        let Some(stripe) = &self.stripe else {
            return failed(
                "Stripe is not configured (STRIPE_SECRET_KEY); refund the money from Stripe's dashboard",
            );
        };
        let Some(payment_intent) = purchase.and_then(|purchase| purchase.payment_intent.clone()) else {
            return failed("the purchase has no PaymentIntent to refund");
        };
        if amount == 0 {
            return failed("the credits taken back are worth less than a cent of the purchase");
        }
        let metadata = [
            ("org_id", org_id.to_string()),
            ("credits", credits.to_string()),
            ("agentry_event_id", event_id.to_string()),
        ];
        let idempotency_key = format!("agentry-refund-{event_id}");
        match stripe
            .create_refund(&payment_intent, amount, &metadata, &idempotency_key)
            .await
        {
            Ok(refund_id) => StripeRefundAttempt {
                amount,
                refund_id: Some(refund_id),
                error: None,
            },
            Err(error) => {
                tracing::warn!(org = %org_id, %error, "credits taken back, but Stripe refused the money refund");
                failed(&error)
            }
        }
    }
}
