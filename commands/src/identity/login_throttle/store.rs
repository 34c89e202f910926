//! Where failed logins are counted: `login_throttle_pairs` and `login_throttle_accounts`, read
//! and written under row locks, with the database's clock.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use sqlx::{PgPool, Postgres, Transaction};

use super::ClientAddress;
use super::policy::{AccountCount, LoginLimits, PairCount};
use crate::identity::{IdentityError, secrets};

/// Every this many admissions, rows that no longer matter (no lock, no recent failure, no
/// recent success) are deleted, so the tables follow recent traffic rather than all traffic.
const PRUNE_EVERY: u64 = 1_000;

/// The digest an email as typed is counted under: that of the normalized address when it
/// parses (the same as its email claim's id), else of the trimmed, lowercased input. Never the
/// address in clear.
pub fn account_key(email: &str) -> String {
    match EmailAddress::parse(email) {
        Ok(email) => secrets::secret_hash(email.as_str()),
        Err(_) => secrets::secret_hash(&email.trim().to_lowercase()),
    }
}

/// Failed-login counting for the whole service.
pub struct LoginThrottle {
    pool: PgPool,
    limits: LoginLimits,
    admitted: AtomicU64,
}

impl LoginThrottle {
    /// Counting in `pool` by `limits`.
    pub fn new(pool: PgPool, limits: LoginLimits) -> Self {
        Self {
            pool,
            limits,
            admitted: AtomicU64::new(0),
        }
    }

    /// Admits one attempt of `client` at `account` (counting it as a failure until
    /// [`Self::succeeded`]) or refuses it with [`IdentityError::TooManyAttempts`].
    pub async fn admit(&self, account: &str, client: ClientAddress) -> Result<(), IdentityError> {
        self.prune_now_and_then().await;
        let client = client.to_string();
        let mut tx = self.pool.begin().await?;
        let (pair, counted, now) = lock_rows(&mut tx, account, &client).await?;
        match self.limits.admit(&pair, &counted, now) {
            Ok((pair, counted)) => {
                write_rows(&mut tx, account, &client, &pair, &counted).await?;
                tx.commit().await?;
                Ok(())
            }
            Err(refused) => {
                tx.rollback().await?;
                Err(IdentityError::TooManyAttempts {
                    retry_after_seconds: refused.retry_after_seconds(now),
                })
            }
        }
    }

    /// The attempt admitted last for this pair had the right password.
    pub async fn succeeded(&self, account: &str, client: ClientAddress) -> Result<(), IdentityError> {
        let client = client.to_string();
        let mut tx = self.pool.begin().await?;
        let (pair, counted, now) = lock_rows(&mut tx, account, &client).await?;
        let (pair, counted) = LoginLimits::succeed(&pair, &counted, now);
        write_rows(&mut tx, account, &client, &pair, &counted).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the account's failures and locks at every address (after a password reset:
    /// whoever reset it reads the mailbox). Which addresses logged in stays known.
    pub async fn clear_account(&self, account: &str) -> Result<(), IdentityError> {
        // The account row first, as `admit` locks them.
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM login_throttle_accounts WHERE account = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE login_throttle_pairs SET failures = 0, locks = 0, locked_until = NULL WHERE account = $1",
        )
        .bind(account)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prune_now_and_then(&self) {
        if self.admitted.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY != PRUNE_EVERY - 1 {
            return;
        }
        let pruned = sqlx::query(
            "DELETE FROM login_throttle_pairs
              WHERE (locked_until IS NULL OR locked_until < now())
                AND (last_failure_at IS NULL OR last_failure_at < now() - interval '1 day')
                AND (last_success_at IS NULL OR last_success_at < now() - interval '30 days')",
        )
        .execute(&self.pool)
        .await
        .and(
            sqlx::query(
                "DELETE FROM login_throttle_accounts WHERE window_started_at < now() - interval '1 hour'",
            )
            .execute(&self.pool)
            .await,
        );
        if let Err(error) = pruned {
            tracing::warn!(%error, "pruning the login throttle failed; it is retried later");
        }
    }
}

/// Creates the rows if missing and locks them (the account first, then the pair, always in
/// that order), with the database's `now()`.
async fn lock_rows(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    client: &str,
) -> Result<(PairCount, AccountCount, DateTime<Utc>), IdentityError> {
    sqlx::query("INSERT INTO login_throttle_accounts (account) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(account)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO login_throttle_pairs (account, client) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(account)
        .bind(client)
        .execute(&mut **tx)
        .await?;
    let (failures, window_started_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "SELECT failures, window_started_at FROM login_throttle_accounts WHERE account = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_one(&mut **tx)
    .await?;
    let counted = AccountCount {
        failures,
        window_started_at,
    };
    #[allow(clippy::type_complexity)]
    let row: (
        i32,
        DateTime<Utc>,
        i32,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT failures, window_started_at, locks, locked_until, last_failure_at, last_success_at, now()
           FROM login_throttle_pairs WHERE account = $1 AND client = $2 FOR UPDATE",
    )
    .bind(account)
    .bind(client)
    .fetch_one(&mut **tx)
    .await?;
    let pair = PairCount {
        failures: row.0,
        window_started_at: row.1,
        locks: row.2,
        locked_until: row.3,
        last_failure_at: row.4,
        last_success_at: row.5,
    };
    Ok((pair, counted, row.6))
}

async fn write_rows(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    client: &str,
    pair: &PairCount,
    counted: &AccountCount,
) -> Result<(), IdentityError> {
    sqlx::query(
        "UPDATE login_throttle_pairs
            SET failures = $3, window_started_at = $4, locks = $5, locked_until = $6,
                last_failure_at = $7, last_success_at = $8
          WHERE account = $1 AND client = $2",
    )
    .bind(account)
    .bind(client)
    .bind(pair.failures)
    .bind(pair.window_started_at)
    .bind(pair.locks)
    .bind(pair.locked_until)
    .bind(pair.last_failure_at)
    .bind(pair.last_success_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE login_throttle_accounts SET failures = $2, window_started_at = $3 WHERE account = $1",
    )
    .bind(account)
    .bind(counted.failures)
    .bind(counted.window_started_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
