//! Stream tickets: short-lived, single-use credentials for one run's stream.
//!
//! Browsers cannot set headers on an `EventSource` or a `WebSocket`, so a page would otherwise
//! put its bearer credential in the stream's URL, where proxies and histories keep it. A page
//! asks for a ticket with its credentials instead, and opens the stream with `?ticket=`: the
//! ticket works once, for one run, for [`STREAM_TICKET_TTL`], and acts as the credentials that
//! asked for it, whose standing is read again when it is used (a key revoked in the meantime
//! refuses it). Only its SHA-256 is stored.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Caller, CredentialError, Denial, IdentityError, IdentityService, secrets};

/// How long a ticket can be used after it was issued: enough for a page to open its stream,
/// short enough that a ticket seen in a log or a history is worth nothing soon after.
pub const STREAM_TICKET_TTL: TimeDelta = TimeDelta::seconds(60);

/// Tickets start so, so that secret scanners and people can tell them from other credentials.
const PREFIX: &str = "agst_";

/// Longer than any ticket this service issues; anything longer is refused without a look-up.
const MAX_TICKET_CHARS: usize = 128;

/// A ticket just issued; `ticket` is shown this once.
#[derive(Clone, Debug)]
pub struct IssuedTicket {
    /// `agst_<secret>`: pass it as `?ticket=`.
    pub ticket: String,
    /// When it stops working (if unused).
    pub expires_at: DateTime<Utc>,
}

/// Records a ticket for run `run_id` of `caller`'s organization acting as `caller`, and prunes
/// tickets expired over an hour ago (kept that long so that a late use is told "expired"
/// rather than "unknown"). The caller has checked the run is in its organization.
pub(crate) async fn record_ticket(
    pool: &PgPool,
    caller: &Caller,
    run_id: Uuid,
) -> Result<IssuedTicket, IdentityError> {
    let org_id = caller.org()?;
    let ticket = format!("{PREFIX}{}", secrets::random_secret(32));
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "WITH pruned AS (DELETE FROM stream_tickets WHERE expires_at < now() - interval '1 hour')
         INSERT INTO stream_tickets
                (ticket_hash, org_id, run_id, user_id, api_key_id, session_id, impersonation_id,
                 impersonator_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
         RETURNING expires_at",
    )
    .bind(secrets::secret_hash(&ticket))
    .bind(org_id)
    .bind(run_id)
    .bind(caller.user_id)
    .bind(caller.api_key_id)
    .bind(caller.session_id)
    .bind(caller.impersonation_id)
    .bind(caller.impersonator_id)
    .bind(STREAM_TICKET_TTL.num_seconds() as f64)
    .fetch_one(pool)
    .await?;
    Ok(IssuedTicket { ticket, expires_at })
}

/// A ticket's row as a use reads it.
#[derive(sqlx::FromRow)]
struct TicketRow {
    org_id: Uuid,
    run_id: Uuid,
    user_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    session_id: Option<Uuid>,
    impersonation_id: Option<Uuid>,
    impersonator_id: Option<Uuid>,
    expired: bool,
}

impl IdentityService {
    /// Uses `ticket` to read run `run_id`'s stream: the caller it acts as, with its standing
    /// read now. A ticket is used up by the first request that presents it, whatever comes of
    /// that request (another run, credentials that no longer stand), so it cannot be probed;
    /// of two concurrent uses exactly one gets it.
    pub async fn redeem_stream_ticket(&self, ticket: &str, run_id: Uuid) -> Result<Caller, IdentityError> {
        if !ticket.starts_with(PREFIX) || ticket.chars().count() > MAX_TICKET_CHARS {
            return Err(CredentialError::InvalidStreamTicket.into());
        }
        let hash = secrets::secret_hash(ticket);
        let used: Option<TicketRow> = sqlx::query_as(
            "UPDATE stream_tickets SET used_at = now()
              WHERE ticket_hash = $1 AND used_at IS NULL
          RETURNING org_id, run_id, user_id, api_key_id, session_id, impersonation_id,
                    impersonator_id, expires_at <= now() AS expired",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = used else {
            let known: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM stream_tickets WHERE ticket_hash = $1")
                    .bind(&hash)
                    .fetch_optional(&self.pool)
                    .await?;
            return Err(match known {
                Some(_) => CredentialError::StreamTicketUsed.into(),
                None => CredentialError::InvalidStreamTicket.into(),
            });
        };
        if row.expired {
            return Err(CredentialError::StreamTicketExpired.into());
        }
        if row.run_id != run_id {
            return Err(Denial::StreamTicketForAnotherRun.into());
        }
        let holder = Caller {
            org_id: Some(row.org_id),
            user_id: row.user_id,
            api_key_id: row.api_key_id,
            role: None,
            impersonator_id: row.impersonator_id,
            is_platform_admin: false,
            session_id: row.session_id,
            impersonation_id: row.impersonation_id,
        };
        self.recheck(&holder).await
    }
}
