//! Waking read-your-writes waiters from the followers' own progress.
//!
//! A route that must answer only once a read model holds its write used to poll the follower's
//! checkpoint every 2 ms, one query per waiting request. Instead, a follower announces each
//! batch with `NOTIFY` inside the batch's own transaction (Postgres delivers it at commit, to
//! every process, so a waiter on one node learns of a batch applied by the runner on another),
//! and one `LISTEN` connection per process fans the announcements out to every waiter through a
//! `watch` channel per follower name: one notification per batch, whatever the number of waiters.
//!
//! Nothing waits forever on a lost notification: when the listener's connection drops it
//! reconnects and re-reads every checkpoint, and each waiter re-reads its follower's checkpoint
//! when it starts and after every quiet [`RECHECK`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Cursor, load_checkpoint};

/// The notification channel every follower announces its progress on.
pub(super) const CHANNEL: &str = "agentry_follower_progress";
/// How long a waiter trusts the notifications before re-reading the checkpoint itself.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Pause before the listener tries again after its connection failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Announces, inside a follower's batch transaction, that its checkpoint now stands at `to`.
///
/// Call it in the transaction that moved the checkpoint: the notification is delivered when
/// (and only if) that transaction commits, so no waiter is woken for a batch rolled back.
pub async fn announce_progress<'e, E: PgExecutor<'e>>(
    executor: E,
    name: &str,
    to: Cursor,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(progress_payload(name, to))
        .execute(executor)
        .await?;
    Ok(())
}

/// What a follower's progress notification says: `<transaction id> <position> <name>`.
pub(super) fn progress_payload(name: &str, to: Cursor) -> String {
    format!("{} {} {name}", to.transaction_id, to.position)
}

/// The cursor of the last event committed so far (`None`: the log is empty). A follower past it
/// holds every event committed before this call, whichever node wrote it.
pub async fn log_head<'e, E: PgExecutor<'e>>(executor: E) -> Result<Option<Cursor>, sqlx::Error> {
    let head: Option<(String, i64)> = sqlx::query_as(
        // `events.`: a bare `transaction_id` would order by the output column, the id's text.
        "SELECT transaction_id::text, position FROM events ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1",
    )
    .fetch_optional(executor)
    .await?;
    head.map(|(transaction_id, position)| {
        let transaction_id = transaction_id
            .parse()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok(Cursor {
            transaction_id,
            position,
        })
    })
    .transpose()
}

/// This process's knowledge of where each follower stands, shared by every waiting request.
#[derive(Clone, Debug)]
pub struct FollowerProgress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    recheck: Duration,
    followers: Mutex<HashMap<String, watch::Sender<Cursor>>>,
}

impl FollowerProgress {
    /// Starts this process's listener on `pool`'s database; it stops at `shutdown`.
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> Self {
        Self::start_with_recheck(pool, shutdown, RECHECK)
    }

    /// [`start`](Self::start) with waiters re-reading the checkpoint every `recheck` instead of
    /// [`RECHECK`] (tests make it long to prove that the notification alone wakes them).
    pub fn start_with_recheck(pool: PgPool, shutdown: CancellationToken, recheck: Duration) -> Self {
        let progress = Self {
            shared: Arc::new(Shared {
                pool,
                recheck,
                followers: Mutex::default(),
            }),
        };
        tokio::spawn(listen(progress.clone(), shutdown));
        progress
    }

    /// Waits until the follower `name` holds every event committed before this call (on any
    /// node), for at most `timeout`; `false` when it does not by then. What a read of a view
    /// waits for, so that a write of a moment ago is in it without the write waiting itself.
    pub async fn caught_up_with_log(&self, name: &str, timeout: Duration) -> Result<bool, sqlx::Error> {
        match log_head(&self.shared.pool).await? {
            Some(head) => self.wait_for(name, head, timeout).await,
            None => Ok(true),
        }
    }

    /// Waits until the follower `name` has passed `cursor`, for at most `timeout`; `false` when
    /// it has not by then. Reads the checkpoint when it starts, then sleeps on the notifications.
    pub async fn wait_for(&self, name: &str, cursor: Cursor, timeout: Duration) -> Result<bool, sqlx::Error> {
        let mut known = self.sender(name).subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            if *known.borrow() >= cursor {
                return Ok(true);
            }
            let saved = load_checkpoint(&self.shared.pool, name).await?;
            self.advance(name, saved);
            if saved >= cursor {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let quiet = deadline.min(Instant::now() + self.shared.recheck);
            let woken = tokio::time::timeout_at(quiet, known.wait_for(|at| *at >= cursor))
                .await
                .map(|reached| reached.is_ok());
            match woken {
                Ok(true) => return Ok(true),
                // Cannot happen (the map keeps every sender), but must not spin if it did.
                Ok(false) => tokio::time::sleep_until(quiet).await,
                Err(_) => {}
            }
        }
    }

    /// Records that this process's runner of `name` has passed `at` without saving it: every
    /// event up to `at` that it folds is committed, the rest it has read and found nothing to
    /// do with. Waiters in this process learn of it at once; others when the runner saves it.
    pub fn passed(&self, name: &str, at: Cursor) {
        self.advance(name, at);
    }

    /// The channel of `name`, made on first use.
    fn sender(&self, name: &str) -> watch::Sender<Cursor> {
        let mut followers = self
            .shared
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        followers
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(Cursor::START).0)
            .clone()
    }

    /// Records that `name` stands at `at` or beyond; never moves the known position back.
    fn advance(&self, name: &str, at: Cursor) {
        self.sender(name).send_if_modified(|known| {
            let moved = at > *known;
            if moved {
                *known = at;
            }
            moved
        });
    }

    /// Every saved checkpoint, after (re)connecting: covers notifications sent while not listening.
    async fn reread_all(&self) -> Result<(), sqlx::Error> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, transaction_id::text, position FROM follower_checkpoints")
                .fetch_all(&self.shared.pool)
                .await?;
        for (name, transaction_id, position) in rows {
            match transaction_id.parse() {
                Ok(transaction_id) => self.advance(
                    &name,
                    Cursor {
                        transaction_id,
                        position,
                    },
                ),
                Err(_) => tracing::warn!(follower = name, transaction_id, "unreadable checkpoint"),
            }
        }
        Ok(())
    }

    /// Applies one `NOTIFY` payload: `<transaction id> <position> <follower name>`.
    fn apply(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        let parsed = (parts.next(), parts.next(), parts.next());
        if let (Some(transaction_id), Some(position), Some(name)) = parsed
            && let (Ok(transaction_id), Ok(position)) = (transaction_id.parse(), position.parse())
        {
            self.advance(
                name,
                Cursor {
                    transaction_id,
                    position,
                },
            );
        } else {
            tracing::warn!(payload, "unreadable follower progress notification");
        }
    }
}

/// The process's one listener: reconnects after any failure until `shutdown`.
async fn listen(progress: FollowerProgress, shutdown: CancellationToken) {
    // Its own one-connection pool, so listening never takes a connection from request traffic.
    let options = (*progress.shared.pool.connect_options()).clone();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options.application_name("agentry-progress"));
    while !shutdown.is_cancelled() {
        if let Err(error) = listen_once(&progress, &pool, &shutdown).await {
            tracing::warn!(%error, "follower progress listener failed; reconnecting");
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_DELAY) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    pool.close().await;
}

/// Listens until `shutdown` (`Ok`) or a failure the listener cannot recover from by itself.
async fn listen_once(
    progress: &FollowerProgress,
    pool: &PgPool,
    shutdown: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    progress.reread_all().await?;
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received?,
            () = shutdown.cancelled() => return Ok(()),
        };
        match received {
            Some(notification) => progress.apply(notification.payload()),
            // The connection was lost and has been re-established: what was announced in
            // between is gone, so read where everyone stands.
            None => progress.reread_all().await?,
        }
    }
}
