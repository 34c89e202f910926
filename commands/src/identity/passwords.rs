//! Argon2id password hashing, off the async runtime and bounded.
//!
//! Each hash holds Argon2's memory (`m_cost`, 19 MiB with the default parameters) on a blocking
//! thread for tens of milliseconds. Unbounded, a flood of logins runs hundreds at once: the
//! process grows by gigabytes and a real login waits seconds. So every hash and every verify
//! (the dummy one for an unknown email too) first takes one of a fixed number of permits, sized
//! to the cores, and runs in the working memory that permit owns ([`HashMemory`], allocated
//! once): memory for passwords is exactly `permits × m_cost`, known in advance. A caller waits a short,
//! bounded time for a permit, and only a bounded number of callers wait at all; past either
//! bound the answer is [`IdentityError::HashingBusy`] (503 with `Retry-After`), never a queue
//! without end.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::hash_memory::HashMemory;

use super::{IdentityError, secrets};

/// How much password hashing may run at once and how long callers may wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes running at once. Memory held by hashing is at most this × Argon2's `m_cost`.
    pub permits: usize,
    /// Callers that may wait for a permit; one more is answered busy at once.
    pub waiters: usize,
    /// How long a caller waits for a permit before it is answered busy.
    pub wait: Duration,
}

/// How long a caller waits for a hashing permit unless configured otherwise: a person does not
/// notice it, and a queue that takes longer to drain means the service is overloaded.
pub const DEFAULT_HASH_WAIT: Duration = Duration::from_secs(2);

/// Callers that may wait per permit unless configured otherwise: with tens of milliseconds
/// per hash, a full queue drains in well under [`DEFAULT_HASH_WAIT`].
const WAITERS_PER_PERMIT: usize = 8;

impl HashingLimits {
    /// One permit per core (hashing is CPU-bound: more would only share the cores).
    pub fn for_this_machine() -> Self {
        Self::with_permits(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }

    /// `permits` (at least one), with the default queue per permit and wait.
    pub fn with_permits(permits: usize) -> Self {
        let permits = permits.max(1);
        Self {
            permits,
            waiters: permits * WAITERS_PER_PERMIT,
            wait: DEFAULT_HASH_WAIT,
        }
    }
}

impl Default for HashingLimits {
    fn default() -> Self {
        Self::for_this_machine()
    }
}

/// Seconds a client told that hashing is saturated should wait before trying again.
pub const HASHING_BUSY_RETRY_AFTER: u64 = 1;

/// The process's password hashing, bounded by [`HashingLimits`].
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
    memories: Arc<Mutex<Vec<HashMemory>>>,
    waiting: AtomicUsize,
    limits: HashingLimits,
}

/// The right to run one hash now, with the working memory for it. Moved into the blocking task,
/// so the permit is held until the hash is done even when the request that asked for it has
/// gone; dropping it gives the memory back before the permit.
pub struct HashingPermit {
    memory: Option<HashMemory>,
    memories: Arc<Mutex<Vec<HashMemory>>>,
    _held: OwnedSemaphorePermit,
}

impl PasswordHashing {
    /// Hashing bounded by `limits` (at least one permit).
    pub fn new(limits: HashingLimits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.permits.max(1))),
            memories: Arc::new(Mutex::new(Vec::new())),
            waiting: AtomicUsize::new(0),
            limits,
        }
    }

    /// A permit, after at most [`HashingLimits::wait`]; busy when too many wait already or
    /// none came free in time.
    pub async fn permit(&self) -> Result<HashingPermit, IdentityError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(self.with_memory(permit));
        }
        let waiting = WaitingSlot::take(&self.waiting, self.limits.waiters).ok_or(busy())?;
        let acquired =
            tokio::time::timeout(self.limits.wait, Arc::clone(&self.permits).acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(permit)) => Ok(self.with_memory(permit)),
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }

    /// A permit with a block of working memory: a free one, or a new one while fewer than the
    /// permits exist (there is never more than one per permit).
    fn with_memory(&self, permit: OwnedSemaphorePermit) -> HashingPermit {
        let memory = self
            .memories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        HashingPermit {
            memory: Some(memory),
            memories: Arc::clone(&self.memories),
            _held: permit,
        }
    }

    /// Hashes a new password (Argon2id, default parameters, random salt) within the bound.
    pub async fn hash(&self, password: String) -> Result<String, IdentityError> {
        self.permit().await?.hash(password).await
    }

    /// [`HashingPermit::verify`] within the bound.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, IdentityError> {
        Ok(self.permit().await?.verify(password, stored).await)
    }
}

impl HashingPermit {
    /// Hashes a new password (Argon2id, default parameters, random salt).
    pub async fn hash(mut self, password: String) -> Result<String, IdentityError> {
        tokio::task::spawn_blocking(move || {
            self.memory()
                .hash(password.as_bytes())
                .map_err(|error| IdentityError::Internal(format!("password hashing failed: {error}")))
        })
        .await
        .map_err(|error| IdentityError::Internal(format!("password hashing task failed: {error}")))?
    }

    /// Whether `password` matches `stored`. With `None` (no such account) it verifies against
    /// the hash of a random password anyway, so a failed login costs the same whether or not
    /// the account exists.
    pub async fn verify(mut self, password: String, stored: Option<String>) -> bool {
        let known = stored.is_some();
        let matches = tokio::task::spawn_blocking(move || {
            let memory = self.memory();
            let hash = stored.unwrap_or_else(|| dummy_hash(memory).to_owned());
            memory.verify(password.as_bytes(), &hash)
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}

impl HashingPermit {
    fn memory(&mut self) -> &mut HashMemory {
        self.memory.get_or_insert_with(HashMemory::new)
    }
}

impl Drop for HashingPermit {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.memories
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
        }
    }
}

/// One of the bounded places in the queue for a permit, given back when dropped.
struct WaitingSlot<'a>(&'a AtomicUsize);

impl<'a> WaitingSlot<'a> {
    fn take(waiting: &'a AtomicUsize, most: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < most).then_some(now + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for WaitingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn busy() -> IdentityError {
    IdentityError::HashingBusy {
        retry_after_seconds: HASHING_BUSY_RETRY_AFTER,
    }
}

/// Computed once, under the permit (and in the memory) of the first verify that needs it.
fn dummy_hash(memory: &mut HashMemory) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        memory
            .hash(secrets::random_secret(24).as_bytes())
            .unwrap_or_default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(permits: usize, waiters: usize, wait_ms: u64) -> HashingLimits {
        HashingLimits {
            permits,
            waiters,
            wait: Duration::from_millis(wait_ms),
        }
    }

    #[tokio::test]
    async fn past_the_permits_and_the_waiters_a_caller_is_told_busy_at_once() {
        let hashing = PasswordHashing::new(limits(1, 0, 10_000));
        let _held = hashing.permit().await.unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            hashing.permit().await,
            Err(IdentityError::HashingBusy { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_permit_given_back_within_its_wait_and_is_busy_after_it() {
        let hashing = Arc::new(PasswordHashing::new(limits(1, 1, 300)));
        let held = hashing.permit().await.unwrap();
        assert!(matches!(
            hashing.permit().await,
            Err(IdentityError::HashingBusy { .. })
        ));
        let waiter = tokio::spawn({
            let hashing = Arc::clone(&hashing);
            async move { hashing.permit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap(), "the released permit went to the waiter");
        assert_eq!(
            hashing.waiting.load(Ordering::Acquire),
            0,
            "the slot was given back"
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_and_an_unknown_account_never_does() {
        let hashing = PasswordHashing::new(limits(2, 2, 1_000));
        let hash = hashing.hash("correct horse".to_owned()).await.unwrap();
        assert!(
            hashing
                .verify("correct horse".to_owned(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!hashing.verify("wrong".to_owned(), Some(hash)).await.unwrap());
        assert!(!hashing.verify("correct horse".to_owned(), None).await.unwrap());
    }
}
