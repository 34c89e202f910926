//! One run start at a time per organization under a concurrent-run limit, across every node.
//!
//! Counting the runs not ended and recording a new one must not interleave with another start
//! of the same organization, or two starts could both see room for one more. The lock is a
//! Postgres transaction-scoped advisory lock (`pg_advisory_xact_lock`), so it holds across
//! nodes and is released by Postgres itself when the transaction ends, whatever happens to
//! the task that took it: a request dropped mid-way rolls back (see [`OrgLock`]'s `Drop`), a
//! node frozen while holding it loses it after [`IDLE_TIMEOUT`].
//!
//! Starts on one node first queue on an in-process mutex per organization, so that waiting
//! starts do not each hold a pool connection: a node holds at most one connection per
//! organization for this, plus the one its current start appends with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use super::QuotaError;
use crate::identity::IdentityError;

/// The first key of every quota lock: no other advisory lock in Agentry uses it.
const NAMESPACE: i32 = 0x7175_6f74; // "quot"
/// How long a start waits for another node's start of the same organization before it is
/// answered as busy (409 `concurrent_modification`, which may be retried).
const LOCK_TIMEOUT: &str = "5s";
/// How long Postgres lets a lock holder's transaction sit idle before it ends it (and so the
/// lock): longer than a start takes, including its wait for the run view.
const IDLE_TIMEOUT: &str = "30s";
/// In-process mutexes kept before those no start holds or waits for are dropped.
const PRUNE_ABOVE: usize = 1_024;

/// The per-organization mutexes of this process.
#[derive(Default)]
pub(super) struct OrgLocks {
    mutexes: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// The organization's lock, held until dropped.
pub(super) struct OrgLock {
    transaction: Option<Transaction<'static, Postgres>>,
    // Dropped after `drop` has handed the transaction to its rollback.
    _local: OwnedMutexGuard<()>,
}

impl OrgLocks {
    /// Waits for the organization's lock on this node, then across nodes; busy (409) when
    /// another node holds it past [`LOCK_TIMEOUT`].
    pub(super) async fn lock(&self, pool: &PgPool, org_id: Uuid) -> Result<OrgLock, QuotaError> {
        let local = self.mutex_of(org_id).lock_owned().await;
        take(pool, org_id, local).await.map_err(busy_on_timeout)
    }

    fn mutex_of(&self, org_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut mutexes = self.mutexes.lock().unwrap_or_else(PoisonError::into_inner);
        if mutexes.len() > PRUNE_ABOVE {
            mutexes.retain(|_, mutex| Arc::strong_count(mutex) > 1);
        }
        Arc::clone(mutexes.entry(org_id).or_default())
    }
}

/// Takes the Postgres lock for the holder of the local one.
async fn take(pool: &PgPool, org_id: Uuid, local: OwnedMutexGuard<()>) -> Result<OrgLock, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true)")
            .bind(LOCK_TIMEOUT)
            .bind(IDLE_TIMEOUT)
            .execute(&mut *transaction)
            .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(NAMESPACE)
        .bind(lock_key(org_id))
        .execute(&mut *transaction)
        .await?;
    Ok(OrgLock {
        transaction: Some(transaction),
        _local: local,
    })
}

/// `lock_not_available` (the lock timeout) is a lost race, worth retrying; anything else ours.
fn busy_on_timeout(error: sqlx::Error) -> QuotaError {
    let timed_out = error
        .as_database_error()
        .and_then(|database| database.code())
        .is_some_and(|code| code == "55P03");
    if timed_out {
        IdentityError::Busy.into()
    } else {
        error.into()
    }
}

impl Drop for OrgLock {
    /// Ends the transaction now rather than when its connection is next used, so the next
    /// start (here or on another node) gets the lock at once.
    fn drop(&mut self) {
        let Some(transaction) = self.transaction.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = transaction.rollback().await {
                    tracing::warn!(%error, "releasing a quota lock failed; Postgres ends it with the connection");
                }
            });
        }
    }
}

/// The organization's 32-bit lock key: its id folded. Two organizations sharing a key only
/// wait for each other's starts.
fn lock_key(org_id: Uuid) -> i32 {
    let folded = org_id.as_u128();
    let folded = (folded as u64) ^ ((folded >> 64) as u64);
    ((folded as u32) ^ ((folded >> 32) as u32)) as i32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Two nodes are two processes with their own [`OrgLocks`]: the second must wait for the
    /// first's lock of the same organization, and get it once the first lets go.
    #[sqlx::test(migrations = false)]
    async fn a_second_node_waits_for_the_first_nodes_lock_of_the_organization(pool: PgPool) {
        let (first_node, second_node) = (OrgLocks::default(), OrgLocks::default());
        let org_id = Uuid::new_v4();
        let held = first_node.lock(&pool, org_id).await.unwrap();

        let other_org = second_node.lock(&pool, Uuid::new_v4()).await;
        assert!(other_org.is_ok(), "another organization does not wait");
        drop(other_org);
        let waiting_pool = pool.clone();
        let waiting =
            tokio::spawn(async move { second_node.lock(&waiting_pool, org_id).await.map(|_| ()).is_ok() });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the second node got the lock while the first held it"
        );

        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(3), waiting).await;
        assert!(
            got.unwrap().unwrap(),
            "the second node gets the lock once the first lets go"
        );
    }
}
