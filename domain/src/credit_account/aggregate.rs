//! The credit account aggregate: state, decisions and how events change the state.

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::signed;
use super::{
    CallPrice, CreditAccountCommand, CreditAccountError, CreditAccountEvent, GrantSource, RefundSource,
    StripeRefund,
};
use crate::sink::write_all;
use crate::text::trimmed;

/// Largest amount one entry may move: a million dollars' worth at a micro-dollar a credit many
/// times over, and far from `i64`'s limit however many entries add up.
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;
/// Longest LLM call key, in characters.
pub const MAX_KEY_CHARS: usize = 200;
/// Longest refund reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

type Decision = Result<Vec<CreditAccountEvent>, CreditAccountError>;

/// A reservation not yet settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReservation {
    /// Its id.
    pub reservation_id: Uuid,
    /// The run making the call.
    pub run_id: Uuid,
    /// Credits reserved.
    pub credits: u64,
    /// The call's price, when the hold recorded it.
    #[serde(default)]
    pub price: Option<CallPrice>,
}

/// A purchase through Stripe Checkout, and what of it was taken back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The Stripe event that granted it.
    pub stripe_event_id: String,
    /// Its PaymentIntent.
    pub payment_intent: Option<String>,
    /// Credits granted.
    pub credits: u64,
    /// Money paid, in cents.
    pub amount_paid: u64,
    /// Credits taken back from it so far (Stripe refunds and administrators' refunds naming it).
    pub taken_back: u64,
}

/// An organization's credits. The aggregate id is the organization id.
///
/// The state holds only what a decision needs: the balance, what is reserved, the open
/// reservations (bounded by the calls in flight) and the purchases with the Stripe events
/// already applied (few). Settled reservations are forgotten here; the store's unique index on
/// reservation keys (migration `credit_reservation_keys`) still refuses a second reservation for
/// a settled key, and the application then answers with the first one.
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CreditAccount {
    org_id: Option<Uuid>,
    balance: i64,
    reserved: i64,
    open: BTreeMap<String, OpenReservation>,
    purchases: BTreeMap<String, Purchase>,
    /// Stripe events that changed the account, with the credits they moved.
    stripe_events: BTreeMap<String, u64>,
}

impl CreditAccount {
    /// Whether the account has been opened.
    pub fn exists(&self) -> bool {
        self.org_id.is_some()
    }

    /// The organization, once opened.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// Credits granted minus credits charged and refunded. Below zero only after a charge above
    /// its reservation or a refund of credits already spent.
    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// Credits held by open reservations.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// What a new reservation may take: the balance minus open reservations.
    pub fn available(&self) -> i64 {
        self.balance.saturating_sub(self.reserved)
    }

    /// The open reservation of an LLM call.
    pub fn reservation(&self, llm_call: &str) -> Option<&OpenReservation> {
        self.open.get(llm_call)
    }

    /// Every open reservation, by LLM call key.
    pub fn open_reservations(&self) -> &BTreeMap<String, OpenReservation> {
        &self.open
    }

    /// A purchase by its Checkout Session id.
    pub fn purchase(&self, checkout_session_id: &str) -> Option<&Purchase> {
        self.purchases.get(checkout_session_id)
    }

    /// The credits a Stripe event moved, if it changed this account.
    pub fn stripe_event(&self, stripe_event_id: &str) -> Option<u64> {
        self.stripe_events.get(stripe_event_id).copied()
    }

    fn purchase_paid_by(&self, payment_intent: &str) -> Option<(&String, &Purchase)> {
        self.purchases
            .iter()
            .find(|(_, purchase)| purchase.payment_intent.as_deref() == Some(payment_intent))
    }

    fn require_open(&self) -> Result<(), CreditAccountError> {
        if self.exists() {
            Ok(())
        } else {
            Err(CreditAccountError::NotOpen)
        }
    }

    fn open_account(&self, org_id: Uuid, organization_event_id: Uuid, signup_grant: u64) -> Decision {
        if self.exists() {
            return Err(CreditAccountError::AlreadyOpen);
        }
        amount(signup_grant, 0)?;
        let mut events = vec![CreditAccountEvent::Opened {
            org_id,
            organization_event_id,
        }];
        if signup_grant > 0 {
            events.push(CreditAccountEvent::Granted {
                credits: signup_grant,
                source: GrantSource::Signup {
                    organization_event_id,
                },
            });
        }
        Ok(events)
    }

    fn reserve(
        &self,
        reservation_id: Uuid,
        run_id: Uuid,
        llm_call: String,
        credits: u64,
        price: Option<CallPrice>,
    ) -> Decision {
        self.require_open()?;
        valid_key(&llm_call)?;
        amount(credits, 1)?;
        if self.open.contains_key(&llm_call) {
            return Ok(vec![]);
        }
        let available = self.available();
        if available < signed(credits) {
            return Err(CreditAccountError::InsufficientCredits {
                available,
                requested: credits,
            });
        }
        Ok(vec![CreditAccountEvent::Reserved {
            reservation_id,
            run_id,
            llm_call,
            credits,
            price,
        }])
    }

    /// Charges `actual` in full even above the reservation (the provider was paid for it) and
    /// releases what is left of the hold, closing it: two entries, one append.
    fn settle(&self, llm_call: String, actual: u64, tokens_counted: bool) -> Decision {
        self.require_open()?;
        amount(actual, 0)?;
        let Some(open) = self.open.get(&llm_call) else {
            return Err(CreditAccountError::UnknownReservation);
        };
        let (reservation_id, run_id) = (open.reservation_id, open.run_id);
        Ok(vec![
            CreditAccountEvent::Charged {
                reservation_id,
                run_id,
                llm_call: llm_call.clone(),
                credits: actual,
                tokens_counted,
            },
            CreditAccountEvent::Released {
                reservation_id,
                run_id,
                llm_call,
                credits: open.credits.saturating_sub(actual),
            },
        ])
    }

    fn grant_purchase(&self, command: CreditAccountCommand) -> Decision {
        self.require_open()?;
        let CreditAccountCommand::GrantPurchase {
            stripe_event_id,
            checkout_session_id,
            payment_intent,
            credits,
            amount_paid,
            currency,
        } = command
        else {
            return Ok(vec![]);
        };
        if self.stripe_events.contains_key(&stripe_event_id)
            || self.purchases.contains_key(&checkout_session_id)
        {
            return Ok(vec![]);
        }
        amount(credits, 1)?;
        Ok(vec![CreditAccountEvent::Granted {
            credits,
            source: GrantSource::Purchase {
                stripe_event_id,
                checkout_session_id,
                payment_intent,
                amount_paid,
                currency,
            },
        }])
    }

    /// Takes back the share of the purchase matching the money refunded so far, less what was
    /// taken back from it already: a running total, so each credit goes once whatever the order
    /// and number of deliveries.
    fn take_back_stripe_refund(&self, refund: StripeRefund) -> Decision {
        self.require_open()?;
        if self.stripe_events.contains_key(&refund.stripe_event_id) {
            return Ok(vec![]);
        }
        let Some((session, purchase)) = self.purchase_paid_by(&refund.payment_intent) else {
            return Err(CreditAccountError::UnknownPurchase);
        };
        let target = share_refunded(purchase, refund.amount_refunded);
        let credits = target.saturating_sub(purchase.taken_back);
        if credits == 0 {
            return Ok(vec![]);
        }
        Ok(vec![CreditAccountEvent::Refunded {
            credits,
            source: RefundSource::Stripe {
                stripe_event_id: refund.stripe_event_id,
                charge_id: refund.charge_id,
                checkout_session_id: session.clone(),
                amount_refunded: refund.amount_refunded,
            },
        }])
    }

    fn refund(&self, by: Uuid, credits: u64, reason: &str, checkout_session_id: Option<String>) -> Decision {
        self.require_open()?;
        amount(credits, 1)?;
        let reason =
            trimmed(reason, MAX_REASON_CHARS, false).map_err(|_| CreditAccountError::InvalidReason {
                max: MAX_REASON_CHARS,
            })?;
        if let Some(session) = &checkout_session_id {
            let purchase = self
                .purchases
                .get(session)
                .ok_or(CreditAccountError::UnknownPurchase)?;
            let remaining = purchase.credits.saturating_sub(purchase.taken_back);
            if credits > remaining {
                return Err(CreditAccountError::ExceedsPurchase { remaining });
            }
        }
        Ok(vec![CreditAccountEvent::Refunded {
            credits,
            source: RefundSource::Admin {
                by,
                reason,
                checkout_session_id,
            },
        }])
    }

    fn apply_refund(&mut self, credits: u64, source: &RefundSource) {
        self.balance = self.balance.saturating_sub(signed(credits));
        let session = match source {
            RefundSource::Stripe {
                stripe_event_id,
                checkout_session_id,
                ..
            } => {
                self.stripe_events.insert(stripe_event_id.clone(), credits);
                Some(checkout_session_id)
            }
            RefundSource::Admin {
                checkout_session_id, ..
            } => checkout_session_id.as_ref(),
        };
        if let Some(purchase) = session.and_then(|session| self.purchases.get_mut(session)) {
            purchase.taken_back = purchase.taken_back.saturating_add(credits);
        }
    }
}

/// The credits of `purchase` matching `amount_refunded` cents of it, rounded down.
fn share_refunded(purchase: &Purchase, amount_refunded: u64) -> u64 {
    if purchase.amount_paid == 0 {
        return 0;
    }
    let refunded = u128::from(amount_refunded.min(purchase.amount_paid));
    let share = u128::from(purchase.credits) * refunded / u128::from(purchase.amount_paid);
    u64::try_from(share).unwrap_or(purchase.credits)
}

fn amount(credits: u64, min: u64) -> Result<(), CreditAccountError> {
    if (min..=MAX_CREDITS).contains(&credits) {
        Ok(())
    } else {
        Err(CreditAccountError::InvalidAmount {
            min,
            max: MAX_CREDITS,
        })
    }
}

fn valid_key(key: &str) -> Result<(), CreditAccountError> {
    let length = key.chars().count();
    if length == 0 || length > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(CreditAccountError::InvalidKey { max: MAX_KEY_CHARS });
    }
    Ok(())
}

impl Aggregate for CreditAccount {
    const TYPE: &'static str = "credit_account";
    type Command = CreditAccountCommand;
    type Event = CreditAccountEvent;
    type Error = CreditAccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use CreditAccountCommand as C;
        let events = match command {
            C::Open {
                org_id,
                organization_event_id,
                signup_grant,
            } => self.open_account(org_id, organization_event_id, signup_grant)?,
            C::Reserve {
                reservation_id,
                run_id,
                llm_call,
                credits,
                price,
            } => self.reserve(reservation_id, run_id, llm_call, credits, price)?,
            C::Settle {
                llm_call,
                actual,
                tokens_counted,
            } => self.settle(llm_call, actual, tokens_counted)?,
            grant @ C::GrantPurchase { .. } => self.grant_purchase(grant)?,
            C::TakeBackStripeRefund(refund) => self.take_back_stripe_refund(refund)?,
            C::Refund {
                by,
                credits,
                reason,
                checkout_session_id,
            } => self.refund(by, credits, &reason, checkout_session_id)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use CreditAccountEvent as E;
        match event {
            E::Opened { org_id, .. } => self.org_id = Some(org_id),
            E::Granted { credits, source } => {
                self.balance = self.balance.saturating_add(signed(credits));
                if let GrantSource::Purchase {
                    stripe_event_id,
                    checkout_session_id,
                    payment_intent,
                    amount_paid,
                    ..
                } = source
                {
                    self.stripe_events.insert(stripe_event_id.clone(), credits);
                    self.purchases.insert(
                        checkout_session_id,
                        Purchase {
                            stripe_event_id,
                            payment_intent,
                            credits,
                            amount_paid,
                            taken_back: 0,
                        },
                    );
                }
            }
            E::Reserved {
                reservation_id,
                run_id,
                llm_call,
                credits,
                price,
            } => {
                self.reserved = self.reserved.saturating_add(signed(credits));
                self.open.insert(
                    llm_call,
                    OpenReservation {
                        reservation_id,
                        run_id,
                        credits,
                        price,
                    },
                );
            }
            E::Charged { credits, .. } => self.balance = self.balance.saturating_sub(signed(credits)),
            // The release closes the reservation: its whole hold leaves `reserved`, the charged
            // part having left the balance with the charge.
            E::Released { llm_call, .. } => {
                if let Some(open) = self.open.remove(&llm_call) {
                    self.reserved = self.reserved.saturating_sub(signed(open.credits));
                }
            }
            E::Refunded { credits, source } => self.apply_refund(credits, &source),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;
    use CreditAccountCommand as C;
    use CreditAccountEvent as E;

    fn account() -> TestFramework<CreditAccount> {
        TestFramework::with(())
    }

    fn opened(org_id: Uuid) -> E {
        E::Opened {
            org_id,
            organization_event_id: Uuid::nil(),
        }
    }

    fn granted(credits: u64) -> E {
        E::Granted {
            credits,
            source: GrantSource::Signup {
                organization_event_id: Uuid::nil(),
            },
        }
    }

    fn reserved(key: &str, credits: u64) -> E {
        E::Reserved {
            reservation_id: Uuid::nil(),
            run_id: Uuid::nil(),
            llm_call: key.into(),
            credits,
            price: None,
        }
    }

    fn reserve(key: &str, credits: u64) -> C {
        C::Reserve {
            reservation_id: Uuid::nil(),
            run_id: Uuid::nil(),
            llm_call: key.into(),
            credits,
            price: None,
        }
    }

    fn purchased(session: &str, credits: u64, amount_paid: u64) -> E {
        E::Granted {
            credits,
            source: GrantSource::Purchase {
                stripe_event_id: format!("evt_{session}"),
                checkout_session_id: session.into(),
                payment_intent: Some(format!("pi_{session}")),
                amount_paid,
                currency: "usd".into(),
            },
        }
    }

    fn fold(events: Vec<E>) -> CreditAccount {
        let mut state = CreditAccount::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    #[test]
    fn opening_records_the_signup_grant_tied_to_the_organization() {
        let (org_id, created) = (Uuid::new_v4(), Uuid::new_v4());
        let open = C::Open {
            org_id,
            organization_event_id: created,
            signup_grant: 500,
        };
        account()
            .given_no_previous_events()
            .when(open)
            .then_expect_events(vec![
                E::Opened {
                    org_id,
                    organization_event_id: created,
                },
                E::Granted {
                    credits: 500,
                    source: GrantSource::Signup {
                        organization_event_id: created,
                    },
                },
            ]);
    }

    #[test]
    fn a_zero_signup_grant_opens_the_account_without_a_grant_entry() {
        let org_id = Uuid::new_v4();
        let open = C::Open {
            org_id,
            organization_event_id: Uuid::nil(),
            signup_grant: 0,
        };
        account()
            .given_no_previous_events()
            .when(open)
            .then_expect_events(vec![opened(org_id)]);
    }

    #[test]
    fn a_reservation_within_the_available_balance_is_recorded() {
        account()
            .given(vec![opened(Uuid::nil()), granted(10), reserved("a", 6)])
            .when(reserve("b", 4))
            .then_expect_events(vec![reserved("b", 4)]);
    }

    #[test]
    fn a_reservation_above_the_available_balance_is_refused() {
        account()
            .given(vec![opened(Uuid::nil()), granted(10), reserved("a", 6)])
            .when(reserve("b", 5))
            .then_expect_error(CreditAccountError::InsufficientCredits {
                available: 4,
                requested: 5,
            });
    }

    #[test]
    fn reserving_an_open_key_again_records_nothing() {
        account()
            .given(vec![opened(Uuid::nil()), granted(10), reserved("a", 6)])
            .when(reserve("a", 6))
            .then_expect_events(vec![]);
    }

    #[test]
    fn settling_charges_the_actual_cost_and_releases_the_rest() {
        account()
            .given(vec![opened(Uuid::nil()), granted(10), reserved("a", 6)])
            .when(C::Settle {
                llm_call: "a".into(),
                actual: 2,
                tokens_counted: false,
            })
            .then_expect_events(vec![
                E::Charged {
                    reservation_id: Uuid::nil(),
                    run_id: Uuid::nil(),
                    llm_call: "a".into(),
                    credits: 2,
                    tokens_counted: false,
                },
                E::Released {
                    reservation_id: Uuid::nil(),
                    run_id: Uuid::nil(),
                    llm_call: "a".into(),
                    credits: 4,
                },
            ]);
    }

    #[test]
    fn a_settled_reservation_leaves_the_balance_less_the_charge_and_nothing_held() {
        let state = fold(vec![
            opened(Uuid::nil()),
            granted(10),
            reserved("a", 6),
            E::Charged {
                reservation_id: Uuid::nil(),
                run_id: Uuid::nil(),
                llm_call: "a".into(),
                credits: 2,
                tokens_counted: false,
            },
            E::Released {
                reservation_id: Uuid::nil(),
                run_id: Uuid::nil(),
                llm_call: "a".into(),
                credits: 4,
            },
        ]);
        assert_eq!((state.balance(), state.reserved(), state.available()), (8, 0, 8));
        assert!(state.reservation("a").is_none());
    }

    #[test]
    fn settling_an_unknown_call_is_refused() {
        account()
            .given(vec![opened(Uuid::nil()), granted(10)])
            .when(C::Settle {
                llm_call: "a".into(),
                actual: 1,
                tokens_counted: false,
            })
            .then_expect_error(CreditAccountError::UnknownReservation);
    }

    #[test]
    fn a_checkout_session_grants_once_whichever_event_reports_it() {
        let grant = |event: &str| C::GrantPurchase {
            stripe_event_id: event.into(),
            checkout_session_id: "cs_1".into(),
            payment_intent: Some("pi_cs_1".into()),
            credits: 100,
            amount_paid: 1_000,
            currency: "usd".into(),
        };
        account()
            .given(vec![opened(Uuid::nil()), purchased("cs_1", 100, 1_000)])
            .when(grant("evt_other"))
            .then_expect_events(vec![]);
        account()
            .given(vec![opened(Uuid::nil())])
            .when(grant("evt_first"))
            .then_expect_events(vec![E::Granted {
                credits: 100,
                source: GrantSource::Purchase {
                    stripe_event_id: "evt_first".into(),
                    checkout_session_id: "cs_1".into(),
                    payment_intent: Some("pi_cs_1".into()),
                    amount_paid: 1_000,
                    currency: "usd".into(),
                },
            }]);
    }

    #[test]
    fn stripe_refunds_take_back_each_credit_once_in_any_order() {
        let refund = |event: &str, amount_refunded: u64| {
            C::TakeBackStripeRefund(StripeRefund {
                stripe_event_id: event.into(),
                charge_id: "ch_1".into(),
                payment_intent: "pi_cs_1".into(),
                amount_refunded,
            })
        };
        let taken = |event: &str, credits: u64, amount_refunded: u64| E::Refunded {
            credits,
            source: RefundSource::Stripe {
                stripe_event_id: event.into(),
                charge_id: "ch_1".into(),
                checkout_session_id: "cs_1".into(),
                amount_refunded,
            },
        };
        let given = vec![opened(Uuid::nil()), purchased("cs_1", 100, 1_000)];
        account()
            .given(given.clone())
            .when(refund("evt_half", 500))
            .then_expect_events(vec![taken("evt_half", 50, 500)]);
        // The full refund reported first; the earlier, partial report then takes nothing.
        let mut after_full = given.clone();
        after_full.push(taken("evt_full", 100, 1_000));
        account()
            .given(after_full)
            .when(refund("evt_half", 500))
            .then_expect_events(vec![]);
        let mut after_half = given;
        after_half.push(taken("evt_half", 50, 500));
        account()
            .given(after_half)
            .when(refund("evt_full", 1_000))
            .then_expect_events(vec![taken("evt_full", 50, 1_000)]);
    }

    #[test]
    fn an_administrator_refund_needs_a_reason_and_stays_within_a_named_purchase() {
        let refund = |credits: u64, reason: &str, session: Option<&str>| C::Refund {
            by: Uuid::nil(),
            credits,
            reason: reason.into(),
            checkout_session_id: session.map(str::to_owned),
        };
        let given = vec![opened(Uuid::nil()), purchased("cs_1", 100, 1_000)];
        account()
            .given(given.clone())
            .when(refund(60, " goodwill ", Some("cs_1")))
            .then_expect_events(vec![E::Refunded {
                credits: 60,
                source: RefundSource::Admin {
                    by: Uuid::nil(),
                    reason: "goodwill".into(),
                    checkout_session_id: Some("cs_1".into()),
                },
            }]);
        account()
            .given(given.clone())
            .when(refund(101, "too much", Some("cs_1")))
            .then_expect_error(CreditAccountError::ExceedsPurchase { remaining: 100 });
        account()
            .given(given)
            .when(refund(1, "  ", None))
            .then_expect_error(CreditAccountError::InvalidReason {
                max: MAX_REASON_CHARS,
            });
    }

    #[test]
    fn an_administrator_refund_naming_a_purchase_counts_against_its_stripe_refunds() {
        let state = fold(vec![
            opened(Uuid::nil()),
            purchased("cs_1", 100, 1_000),
            E::Refunded {
                credits: 100,
                source: RefundSource::Admin {
                    by: Uuid::nil(),
                    reason: "r".into(),
                    checkout_session_id: Some("cs_1".into()),
                },
            },
        ]);
        let refund = StripeRefund {
            stripe_event_id: "evt_r".into(),
            charge_id: "ch_1".into(),
            payment_intent: "pi_cs_1".into(),
            amount_refunded: 1_000,
        };
        assert_eq!(state.take_back_stripe_refund(refund), Ok(vec![]));
        assert_eq!(state.balance(), 0);
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let events = [
            opened(Uuid::nil()),
            granted(1),
            purchased("cs", 1, 1),
            reserved("a", 1),
            E::Charged {
                reservation_id: Uuid::nil(),
                run_id: Uuid::nil(),
                llm_call: "a".into(),
                credits: 1,
                tokens_counted: false,
            },
            E::Released {
                reservation_id: Uuid::nil(),
                run_id: Uuid::nil(),
                llm_call: "a".into(),
                credits: 0,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }
}
