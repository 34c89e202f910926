use sqlx::PgPool;
use uuid::Uuid;

use crate::log::{Cursor, Lease, LeaseTimings, save_checkpoint, save_checkpoint_as};

/// Why this process may publish: it holds the relay's lease (a bus shared between processes),
/// or it is the only publisher there can be (the in-process bus).
pub(crate) enum Leadership {
    /// The in-process bus: nobody else publishes to it.
    Sole,
    /// The holder of the relay's lease on a shared bus.
    Leased(Lease),
}

impl Leadership {
    /// Tries once to take the lease `name`; `None` while another process holds it.
    pub async fn try_acquire(
        pool: &PgPool,
        name: &str,
        holder: Uuid,
        timings: LeaseTimings,
    ) -> Result<Option<Self>, sqlx::Error> {
        Ok(Lease::try_acquire(pool, name, holder, timings)
            .await?
            .map(Self::Leased))
    }

    /// Whether this process may still publish (checked just before each batch).
    pub fn is_valid(&self) -> bool {
        match self {
            Self::Sole => true,
            Self::Leased(lease) => lease.is_valid(),
        }
    }

    /// The lease epoch, for the log.
    pub fn epoch(&self) -> i64 {
        match self {
            Self::Sole => 0,
            Self::Leased(lease) => lease.claim().epoch,
        }
    }

    /// Moves the checkpoint forward from `from` to `to`; under a lease, only while the lease
    /// row still names this holder and epoch.
    pub async fn save_checkpoint(
        &self,
        pool: &PgPool,
        name: &str,
        from: Cursor,
        to: Cursor,
    ) -> Result<bool, sqlx::Error> {
        match self {
            Self::Sole => save_checkpoint(pool, name, from, to).await,
            Self::Leased(lease) => save_checkpoint_as(pool, name, from, to, lease.claim()).await,
        }
    }

    /// Hands the lease over at once (on shutdown).
    pub async fn release(self) {
        if let Self::Leased(lease) = self {
            lease.release().await;
        }
    }
}
