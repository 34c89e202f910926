//! Reserve before an LLM call, settle after it: the runtime's way into the ledger.
//!
//! Both are keyed by the LLM call (`llm_call`, for instance `"<run id>/<llm_call.started
//! event id>"`), and both are safe to repeat: a second reservation for a key answers the first
//! one, a second settlement answers the first settlement and charges nothing more. So a worker
//! that crashes anywhere between the two can simply do them again after the run resumes.
//!
//! Each is one append on the organization's account (a settlement writes its charge and its
//! release together). Within a process, commands on one account take turns on its lock and the
//! decision reads the state kept in memory; between processes the store's optimistic concurrency
//! makes the loser decide again on the winner's events. Either way the available balance a
//! decision sees includes every reservation committed before it, so with credits for N calls,
//! N + k concurrent reservations give exactly N.

use domain::credit_account::{
    CallPrice, CreditAccount, CreditAccountCommand, CreditAccountError, CreditAccountEvent,
};
use eventstore::CommandContext;
use eventstore::store::CoalescingBus;
use uuid::Uuid;

use super::{BillingError, BillingService};

/// The open (or settled) reservation of one LLM call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub reservation_id: Uuid,
    /// The run making the call.
    pub run_id: Uuid,
    /// The LLM call's key.
    pub llm_call: String,
    /// Credits held (the worst case the first reservation asked for).
    pub credits: u64,
    /// Its settlement, when the key was reserved and settled before: the call was paid for,
    /// nothing is held now.
    pub settled: Option<Settlement>,
}

/// What settling a reservation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation settled.
    pub reservation_id: Uuid,
    /// Credits charged (the call's actual cost).
    pub charged: u64,
    /// Credits of the reservation released back.
    pub released: u64,
    /// Whether an earlier settlement is being answered again (nothing was recorded now).
    pub replayed: bool,
}

/// What a reservation request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Held (now, or by an earlier request for the same key; see [`Reservation::settled`]).
    Reserved(Reservation),
    /// Not enough credits: the balance minus open reservations is below the worst case.
    /// Nothing was recorded; the call must not be made.
    Insufficient {
        /// The balance minus open reservations.
        available: i64,
        /// The worst case asked for.
        requested: u64,
    },
}

/// Every event of one LLM call's reservation, in order. The unique index on reservation keys
/// finds the reservation; its charge and release follow it in the same account.
const EVENTS_OF_CALL: &str = "
    SELECT payload::text FROM events
     WHERE aggregate_type = 'credit_account' AND aggregate_id = $1
       AND event_type IN ('credit_account.reserved', 'credit_account.charged', 'credit_account.released')
       AND (payload ->> 'llm_call') = $2
     ORDER BY sequence";

impl BillingService {
    /// Holds `worst_case` credits of `org_id`'s account for the LLM call `llm_call` of
    /// `run_id`, or answers [`ReserveOutcome::Insufficient`] when the available balance does
    /// not cover it. Opens the account (with the signup grant) if the organization has none.
    ///
    /// Idempotent by `llm_call`: while the first reservation is open it is answered again
    /// (whatever `worst_case` says now); once settled, it is answered with its settlement and
    /// nothing is held. `context` is stored on the event (use the run's correlation and, as
    /// causation, the event that started the LLM call).
    ///
    /// Errors: an invalid key or amount ([`CreditAccountError::InvalidKey`],
    /// [`CreditAccountError::InvalidAmount`]), the store failing, or (between processes) the
    /// account changing concurrently more than 20 times in a row (`Busy`: retry).
    pub async fn reserve(
        &self,
        org_id: Uuid,
        run_id: Uuid,
        llm_call: &str,
        worst_case: u64,
        context: &CommandContext,
    ) -> Result<ReserveOutcome, BillingError> {
        self.reserve_priced(org_id, run_id, llm_call, worst_case, None, context)
            .await
    }

    /// [`reserve`](Self::reserve), recording on the hold the call's `price`: what charges the
    /// call if its run is cancelled while it streams (see [`CallPrice`]).
    pub async fn reserve_priced(
        &self,
        org_id: Uuid,
        run_id: Uuid,
        llm_call: &str,
        worst_case: u64,
        price: Option<CallPrice>,
        context: &CommandContext,
    ) -> Result<ReserveOutcome, BillingError> {
        let reserve = Self::reserve_command(run_id, llm_call, worst_case, price);
        let appended = self.execute(org_id, reserve, context).await;
        self.reserve_outcome(org_id, llm_call, appended).await
    }

    /// The command that holds `worst_case` credits for the LLM call `llm_call` of `run_id`:
    /// what [`reserve_priced`](Self::reserve_priced) sends, and what a model call's start
    /// recorded with its hold sends (`RunService::record_with_hold`).
    pub fn reserve_command(
        run_id: Uuid,
        llm_call: &str,
        worst_case: u64,
        price: Option<CallPrice>,
    ) -> CreditAccountCommand {
        CreditAccountCommand::Reserve {
            reservation_id: Uuid::now_v7(),
            run_id,
            llm_call: llm_call.to_owned(),
            credits: worst_case,
            price,
        }
    }

    /// What a [`reserve_command`](Self::reserve_command) for `llm_call` came to, answered as
    /// [`reserve_priced`](Self::reserve_priced) answers: the hold (now or earlier), or
    /// [`ReserveOutcome::Insufficient`]. An account not opened yet stays an error here
    /// ([`CreditAccountError::NotOpen`]): `reserve_priced` opens it and asks again.
    pub async fn reserve_outcome(
        &self,
        org_id: Uuid,
        llm_call: &str,
        appended: Result<eventstore::Committed<CreditAccount>, BillingError>,
    ) -> Result<ReserveOutcome, BillingError> {
        match appended {
            Ok(committed) => match committed.state.reservation(llm_call) {
                Some(open) => Ok(ReserveOutcome::Reserved(Reservation {
                    reservation_id: open.reservation_id,
                    run_id: open.run_id,
                    llm_call: llm_call.to_owned(),
                    credits: open.credits,
                    settled: None,
                })),
                None => self.earlier_reservation(org_id, llm_call).await,
            },
            // The key was reserved and settled before (the state forgets settled keys; the
            // store's unique index remembers them).
            Err(BillingError::ReservationKeyTaken) => self.earlier_reservation(org_id, llm_call).await,
            Err(BillingError::Account(CreditAccountError::InsufficientCredits { available, requested })) => {
                // A key settled long ago is answered as such, even when credits ran out since.
                match self.find_reservation(org_id, llm_call).await? {
                    Some(earlier) => Ok(ReserveOutcome::Reserved(earlier)),
                    None => Ok(ReserveOutcome::Insufficient { available, requested }),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Charges `actual` credits for the LLM call `llm_call` and releases the rest of its
    /// reservation (an `actual` above the reservation is charged in full: the provider was paid).
    /// `tokens_counted`: the provider reported no usage, Agentry counted the tokens (the charge
    /// says so).
    ///
    /// Idempotent by `llm_call`: a second settlement (a retry after a crash) records nothing and
    /// answers the first one, with [`Settlement::replayed`] set, whatever `actual` says now.
    /// [`CreditAccountError::UnknownReservation`] when the key was never reserved.
    pub async fn settle(
        &self,
        org_id: Uuid,
        llm_call: &str,
        actual: u64,
        tokens_counted: bool,
        context: &CommandContext,
    ) -> Result<Settlement, BillingError> {
        let settle = Self::settle_command(llm_call, actual, tokens_counted);
        match self.execute(org_id, settle, context).await {
            Ok(committed) => {
                Ok(settlement_in(&committed.events, false).ok_or(CreditAccountError::UnknownReservation)?)
            }
            Err(BillingError::Account(CreditAccountError::UnknownReservation)) => {
                match self.find_reservation(org_id, llm_call).await? {
                    Some(Reservation {
                        settled: Some(settlement),
                        ..
                    }) => Ok(settlement),
                    _ => Err(CreditAccountError::UnknownReservation.into()),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// The account command [`settle`](Self::settle) runs, for a caller that commits it in one
    /// transaction with another aggregate's command ([`eventstore::CommandBus::execute_linked`] on
    /// [`account_bus`](Self::account_bus), the account's id being the organization's).
    pub fn settle_command(llm_call: &str, actual: u64, tokens_counted: bool) -> CreditAccountCommand {
        CreditAccountCommand::Settle {
            llm_call: llm_call.to_owned(),
            actual,
            tokens_counted,
        }
    }

    /// The organizations' accounts, for commands linked with another aggregate's (see
    /// [`settle_command`](Self::settle_command)): they queue and share appends with every
    /// other command on the account.
    pub fn account_bus(&self) -> &CoalescingBus<CreditAccount> {
        &self.accounts
    }

    async fn earlier_reservation(
        &self,
        org_id: Uuid,
        llm_call: &str,
    ) -> Result<ReserveOutcome, BillingError> {
        let found = self.find_reservation(org_id, llm_call).await?;
        let earlier = found.ok_or_else(|| {
            crate::identity::IdentityError::Internal(format!(
                "reservation {llm_call} neither open nor recorded"
            ))
        })?;
        Ok(ReserveOutcome::Reserved(earlier))
    }

    /// The reservation of `llm_call` as the store recorded it, with its settlement if any: the
    /// slow path, for keys the account's state no longer holds.
    async fn find_reservation(
        &self,
        org_id: Uuid,
        llm_call: &str,
    ) -> Result<Option<Reservation>, BillingError> {
        let rows: Vec<(String,)> = sqlx::query_as(EVENTS_OF_CALL)
            .bind(org_id.to_string())
            .bind(llm_call)
            .fetch_all(&self.pool)
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for (payload,) in rows {
            let event: CreditAccountEvent = serde_json::from_str(&payload)
                .map_err(|error| crate::identity::IdentityError::Internal(error.to_string()))?;
            events.push(event);
        }
        let Some(CreditAccountEvent::Reserved {
            reservation_id,
            run_id,
            credits,
            ..
        }) = events.first()
        else {
            return Ok(None);
        };
        Ok(Some(Reservation {
            reservation_id: *reservation_id,
            run_id: *run_id,
            llm_call: llm_call.to_owned(),
            credits: *credits,
            settled: settlement_in(&events, true),
        }))
    }
}

/// The settlement among `events` (a charge and its release), if there is one.
fn settlement_in(events: &[CreditAccountEvent], replayed: bool) -> Option<Settlement> {
    let charged = events.iter().find_map(|event| match event {
        CreditAccountEvent::Charged {
            reservation_id,
            credits,
            ..
        } => Some((*reservation_id, *credits)),
        _ => None,
    })?;
    let released = events.iter().find_map(|event| match event {
        CreditAccountEvent::Released { credits, .. } => Some(*credits),
        _ => None,
    })?;
    Some(Settlement {
        reservation_id: charged.0,
        charged: charged.1,
        released,
        replayed,
    })
}
