//! One connection kept open for one loop's reads, outside any pool.
//!
//! sqlx's pool sends a round trip to the server each time a connection is taken
//! (`test_before_acquire`) and another each time one is handed back (unconditionally, to find
//! connections a cancelled statement left in an unknown state). For a loop that makes one
//! short read after another (the standing read of authenticated requests, the shared read
//! at the end of the log), that tripled the round trips: `perf` on the conversations bench put
//! 16% of the process's CPU in those pings, most of it in the kernel sending them
//! (BENCHMARKS.md, "Standing reads with a timeout, reads on a held connection").
//!
//! Held, the connection is checked by use instead. A read that fails on the connection it
//! found open is made once more on a new one, so a connection Postgres ended while it sat idle
//! (`pg_terminate_backend`, a failover) never reaches a caller as an error. A read that lost
//! its connection, timed out or was cancelled drops it (its state is unknown): the next read
//! connects again. Like a pool's, the connection is replaced when old or long idle.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgSeverity};
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::Mutex;

use crate::database::generic_plan_options;

/// How long a held connection serves at most before it is replaced, as a pool's
/// `max_lifetime` would: a server moved behind the same name (a failover through DNS or a
/// virtual address) is reached within this.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A connection idle longer than this is replaced rather than trusted: a firewall or NAT may
/// have dropped it silently, and finding that out would cost a whole attempt's timeout.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// The first pause between two connection attempts the server refused (it is restarting, or
/// out of connections); doubled up to [`MAX_CONNECT_PAUSE`] within the attempt's timeout.
const FIRST_CONNECT_PAUSE: Duration = Duration::from_millis(20);
const MAX_CONNECT_PAUSE: Duration = Duration::from_millis(500);

/// A connection for reads made one at a time, reconnected when it fails.
pub struct HeldConnection {
    options: PgConnectOptions,
    attempt_timeout: Duration,
    slot: Mutex<Option<Held>>,
}

/// The open connection and its age.
struct Held {
    connection: PgConnection,
    connected_at: Instant,
    last_used: Instant,
}

impl Held {
    /// Whether it may still serve: neither too old nor idle too long.
    fn fresh_enough(&self, now: Instant) -> bool {
        now.duration_since(self.connected_at) < MAX_LIFETIME && now.duration_since(self.last_used) < MAX_IDLE
    }
}

impl HeldConnection {
    /// A connection to `pool`'s server with its settings, named `application_name` in
    /// `pg_stat_activity`, whose session plans each prepared statement once
    /// (`plan_cache_mode = force_generic_plan`: only for statements whose generic plan is sound
    /// at any size of the tables, see [`generic_plan_pool`](crate::database::generic_plan_pool)).
    ///
    /// One attempt at a read (connecting included, with pauses while the server refuses) may
    /// take `attempt_timeout`; past it the connection is taken for stuck (a backend frozen by
    /// SIGSTOP or a paused VM, a peer gone without a reset) and dropped, and the attempt fails
    /// with [`sqlx::Error::PoolTimedOut`], the error a pool gives when it has no connection to
    /// offer in time, so callers answer it as they answer a busy pool. Connects lazily.
    pub fn generic_plan(pool: &PgPool, application_name: &str, attempt_timeout: Duration) -> Self {
        Self {
            options: generic_plan_options(pool, application_name),
            attempt_timeout,
            slot: Mutex::new(None),
        }
    }

    /// Runs `read` on the connection, after any read already under way. When the connection
    /// an earlier read left open turns out lost (an I/O error, a server that ended the
    /// session, no answer within the timeout), `read` runs once more on a new connection: so
    /// at most two attempts' timeouts in all. `read` must therefore be safe to make twice: a
    /// read, not a write. An error of the statement itself (an SQL error, a value that does not
    /// decode) is answered as it is, and the connection kept. `read` gets `context` beside the
    /// connection (a closure capturing borrowed data could not promise to outlive any
    /// connection it is handed).
    pub async fn read<C: ?Sized + Sync, T>(
        &self,
        context: &C,
        read: impl for<'c> Fn(&'c mut PgConnection, &'c C) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if slot.as_ref().is_some_and(|held| !held.fresh_enough(now)) {
            *slot = None;
        }
        let reused = slot.is_some();
        match self.attempt(&mut slot, context, &read).await {
            Err(error) if reused && connection_lost(&error) => {
                tracing::debug!(%error, "a read on a held connection failed; trying a new connection");
                self.attempt(&mut slot, context, &read).await
            }
            outcome => outcome,
        }
    }

    /// One attempt: the connection is taken out of `slot` for it and put back unless it was
    /// lost, so a lost connection, a timeout or the caller giving up drops it.
    async fn attempt<C: ?Sized + Sync, T>(
        &self,
        slot: &mut Option<Held>,
        context: &C,
        read: &impl for<'c> Fn(&'c mut PgConnection, &'c C) -> BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let taken = slot.take();
        let attempt = async {
            let mut held = match taken {
                Some(held) => held,
                None => self.connect().await?,
            };
            let outcome = read(&mut held.connection, context).await;
            held.last_used = Instant::now();
            Ok::<_, sqlx::Error>((outcome, held))
        };
        match tokio::time::timeout(self.attempt_timeout, attempt).await {
            Ok(Ok((outcome, held))) => {
                if !outcome.as_ref().is_err_and(connection_lost) {
                    *slot = Some(held);
                }
                outcome
            }
            Ok(Err(connect_error)) => Err(connect_error),
            Err(_elapsed) => {
                tracing::warn!(
                    application_name = self.options.get_application_name(),
                    timeout_ms = self.attempt_timeout.as_millis(),
                    "a read got no answer in time; its connection is dropped"
                );
                Err(sqlx::Error::PoolTimedOut)
            }
        }
    }

    /// A new connection, trying again while the server refuses it for now (not listening yet,
    /// starting up, out of connections), as a pool does; the attempt's timeout ends the
    /// trying. Any other failure (a wrong password, no such database) is answered at once.
    async fn connect(&self) -> Result<Held, sqlx::Error> {
        let mut pause = FIRST_CONNECT_PAUSE;
        loop {
            match self.options.connect().await {
                Ok(connection) => {
                    let now = Instant::now();
                    return Ok(Held {
                        connection,
                        connected_at: now,
                        last_used: now,
                    });
                }
                Err(error) if refused_for_now(&error) => {
                    tracing::debug!(%error, application_name = self.options.get_application_name(), "the server refused a connection; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_CONNECT_PAUSE);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Whether `error` says the connection is gone, stuck or unusable, rather than that the
/// statement failed: I/O and protocol errors, the attempt's timeout ([`sqlx::Error::PoolTimedOut`]:
/// the read itself runs on no pool), and the server ending the session: an error of severity
/// `FATAL` or `PANIC` (`pg_terminate_backend`, a conflict with recovery on a standby, a
/// session timeout), or of SQLSTATE class 08 (connection exception).
pub(crate) fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(error) => {
            let ended = error
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|error| matches!(error.severity(), PgSeverity::Fatal | PgSeverity::Panic));
            ended || error.code().is_some_and(|code| code.starts_with("08"))
        }
        _ => false,
    }
}

/// Whether connecting failed for a reason that passes: nothing listening yet (a restart), or
/// the server starting up or out of connections (SQLSTATE 57P03, 53300), as sqlx's pool judges.
fn refused_for_now(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code == "57P03" || code == "53300"),
        _ => false,
    }
}

impl std::fmt::Debug for HeldConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HeldConnection")
            .field("application_name", &self.options.get_application_name())
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}
