//! Reading the account: its balance now or at a past moment (folded from the events recorded
//! until then), and its ledger, newest entry first.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::Role;
use domain::credit_account::{CreditAccount, CreditAccountError, CreditAccountEvent};
use uuid::Uuid;

use super::{BillingError, BillingService};
use crate::identity::{Caller, IdentityError};
use crate::pages::MAX_PAGE;

/// One page of the ledger: `$1` the account, `$2` the cursor (a sequence, or `NULL`), `$3` the
/// row limit. The primary key `(aggregate_type, aggregate_id, sequence)` serves it backwards.
const LEDGER_PAGE: &str = "
    SELECT sequence, event_id, payload::text, metadata ->> 'recorded_at', metadata ->> 'actor',
           (metadata ->> 'causation_id')::uuid
      FROM events
     WHERE aggregate_type = 'credit_account' AND aggregate_id = $1
       AND sequence < COALESCE($2, 9223372036854775807)
     ORDER BY sequence DESC
     LIMIT $3";

/// A row of [`LEDGER_PAGE`]: sequence, event id, payload, recording time, actor, causation.
type LedgerRow = (i64, Uuid, String, Option<String>, Option<String>, Option<Uuid>);

/// What an account holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Granted minus charged and refunded.
    pub credits: i64,
    /// Held by open reservations.
    pub reserved: i64,
    /// What new reservations may take: `credits - reserved`.
    pub available: i64,
}

impl Balance {
    fn of(account: &CreditAccount) -> Self {
        Self {
            credits: account.balance(),
            reserved: account.reserved(),
            available: account.available(),
        }
    }
}

/// One entry of the ledger: one event of the account.
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    /// Its place in the account (1 for the opening); pages go by it.
    pub sequence: i64,
    /// The event's id in the log (`GET /v1/events/{id}`).
    pub event_id: Uuid,
    /// When it was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Who caused it (`user:<id>`, `api_key:<id>`, `system`).
    pub actor: Option<String>,
    /// The event (or request) that caused it: for a charge, the run's `llm_call.completed`;
    /// for a reservation, its `llm_call.started` or the step before it.
    pub caused_by: Option<Uuid>,
    /// What happened, naming its cause.
    pub event: CreditAccountEvent,
}

/// One page of the ledger, newest first.
#[derive(Clone, Debug)]
pub struct LedgerPage {
    /// This page.
    pub entries: Vec<LedgerEntry>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

impl BillingService {
    /// The caller's organization's balance (owners, admins, auditors). An organization without
    /// an account gets it now, with the signup grant.
    pub async fn balance(&self, caller: &Caller) -> Result<Balance, BillingError> {
        let org_id = readable_org(caller)?;
        Ok(Balance::of(&self.account(org_id).await?))
    }

    /// The balance as it stood at `as_of`, folded from the account's events recorded until
    /// then. [`CreditAccountError::NotOpen`] when the account did not exist yet.
    pub async fn balance_as_of(
        &self,
        caller: &Caller,
        as_of: DateTime<Utc>,
    ) -> Result<Balance, BillingError> {
        let org_id = readable_org(caller)?;
        let events = self
            .store
            .load_until::<CreditAccount>(&org_id.to_string(), as_of)
            .await?;
        let mut account = CreditAccount::default();
        for (_, event) in events {
            account.apply(event);
        }
        if !account.exists() {
            return Err(CreditAccountError::NotOpen.into());
        }
        Ok(Balance::of(&account))
    }

    /// The caller's organization's ledger, newest first, `limit` (1 to 100) entries from
    /// `cursor` (a previous page's `next_cursor`).
    pub async fn ledger(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<LedgerPage, BillingError> {
        let org_id = readable_org(caller)?;
        self.account(org_id).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let rows: Vec<LedgerRow> = sqlx::query_as(LEDGER_PAGE)
            .bind(org_id.to_string())
            .bind(cursor)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let more = rows.len() > limit as usize;
        let mut entries = Vec::with_capacity(rows.len().min(limit as usize));
        for (sequence, event_id, payload, recorded_at, actor, caused_by) in
            rows.into_iter().take(limit as usize)
        {
            let event = serde_json::from_str(&payload)
                .map_err(|error| IdentityError::Internal(format!("ledger entry {sequence}: {error}")))?;
            entries.push(LedgerEntry {
                sequence,
                event_id,
                recorded_at: recorded_at
                    .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
                    .map(|time| time.with_timezone(&Utc)),
                actor,
                caused_by,
                event,
            });
        }
        let next_cursor = entries.last().map(|entry| entry.sequence).filter(|_| more);
        Ok(LedgerPage { entries, next_cursor })
    }
}

fn readable_org(caller: &Caller) -> Result<Uuid, BillingError> {
    let org_id = caller.org()?;
    caller.require(Role::can_read_billing, "read the organization's credits")?;
    Ok(org_id)
}
