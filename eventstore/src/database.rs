//! Creating, connecting to and migrating the event-store database.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgPool, Postgres};

/// Every migration in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Creates the database named by `url` when it does not exist yet. Two processes starting at
/// once are fine: losing the race to create it is success.
pub async fn create_if_missing(url: &str) -> Result<(), sqlx::Error> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        Err(error) if is_duplicate_database(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

/// How long a session may sit idle inside a transaction before Postgres ends it. An idle
/// *writing* transaction holds the log followers' gate shut for the whole cluster (see
/// `docs/event-store.md`), and a process frozen (SIGSTOP, a stalled VM) in the middle of one
/// is exactly that: every relay and projector on every node would wait for it. Agentry's own
/// transactions are a few statements with no waiting between them (never an HTTP call or a
/// password hash), so a few seconds is far above their needs and bounds that stall.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

/// A pool sized for the API and the background loops; its sessions end transactions left idle
/// for [`IDLE_IN_TRANSACTION_TIMEOUT`].
///
/// sqlx tests each idle connection before handing it out (`test_before_acquire`, one round
/// trip). It stays on: a connection Postgres ended while it sat idle (`pg_terminate_backend`,
/// a failover) would otherwise fail the next statement on it, and the request as a 500
/// (`agentry/tests/api/killed_connections.rs` fails without it).
///
/// A server on this machine is reached without TLS unless the URL (or `PGSSLMODE`) asks for
/// it: see [`connect_options`].
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = connect_options(url)?
        .application_name("agentry")
        .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// A small pool beside `pool` (same server and settings, at most `connections`) whose sessions
/// plan each prepared statement once, for the hottest statements only.
///
/// Postgres plans a prepared statement anew on each execution while a plan for the values at
/// hand looks cheaper than its generic plan, which for statements over arrays of changing
/// length, or near the end of the log, is most of the time. Measured with `pg_stat_statements`
/// under load, planning was 1.8 s beside 0.35 s of execution for the standing query during
/// conversation creation, and 2.7 s beside 4.4 s for the group append in the billing bench
/// (BENCHMARKS.md, 2026-12-06 "Statements planned once").
///
/// Only for statements whose generic plan is sound whatever the tables' sizes when it was
/// made, since it is made once per connection, possibly on empty tables, and kept while they
/// grow (it is made again only when their statistics change): each table read as an index
/// probe by key in a scalar subquery, or in key order under a `LIMIT`. A join or `EXISTS` over
/// a table may be planned as a hash over a sequential scan of the empty table instead, ruinous
/// once it holds millions of rows. `tests/store/generic_plans.rs` checks every statement
/// run on such a pool. On the shared pool the setting would reach every statement.
///
/// Unlike the shared pool, it tests a connection before handing it out only when it sat idle
/// for [`GENERIC_POOL_TEST_AFTER_IDLE`]: the test is a round trip before every statement (sqlx
/// sends one more as each connection comes back, which no setting turns off), and under load
/// a writer's connection is idle for microseconds. A connection Postgres ended with its notice
/// while it sat idle for less than that fails its first statement with that `FATAL`, the
/// statement not run, and the group commit sends it again on the shared pool
/// ([`ended_before_the_statement`]); one lost without a notice fails it with an I/O error,
/// answered `StoreError::OutcomeUnknown`. Without the test, +0.9% to +9.2% conversations per second over six
/// pairs, within the spread of `main`'s own runs for most (BENCHMARKS.md, "Appends without the
/// pool's test").
///
/// Its sessions end a statement that runs longer than `statement_timeout` themselves
/// (SQLSTATE 57014, nothing committed: [`cancelled_by_the_server`]). The group commit gives up
/// on a statement with no answer a second later (`store::APPEND_STATEMENT_DEADLINE`), when the
/// backend cannot even do that (frozen, or its host gone); the server's own limit comes first
/// so that a statement merely slow in its execution (waiting on a lock another transaction
/// holds) is ended with a known outcome rather than left behind to commit after its caller
/// heard of a failure. It does not cover the commit's WAL flush (the server stops the timer
/// before committing) nor the time to send the statement.
pub fn generic_plan_pool(
    pool: &PgPool,
    connections: u32,
    application_name: &str,
    statement_timeout: Duration,
) -> PgPool {
    let timeout = format!("{}ms", statement_timeout.as_millis());
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= GENERIC_POOL_TEST_AFTER_IDLE {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(
            generic_plan_options(pool, application_name).options([("statement_timeout", timeout)]),
        )
}

/// Whether `error` is the server cancelling the statement (SQLSTATE 57014: its
/// `statement_timeout`, or an administrator's `pg_cancel_backend`). For one statement in an
/// implicit transaction (every append is one) its transaction was rolled back, nothing of it
/// committed, and it may be sent again; not so for a `COMMIT` sent as a statement of its own,
/// as for [`ended_before_the_statement`].
pub fn cancelled_by_the_server(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.code().as_deref() == Some("57014"))
}

/// How long a connection of a [`generic_plan_pool`] may sit idle and still be handed out
/// untested. Past it, the test keeps what it was for: a connection the server ended, or whose
/// backend froze (SIGSTOP, a paused VM), is found within the pool's acquire timeout instead of
/// holding a writer for as long as TCP takes to give up. A backend that freezes in the second
/// after its last use, or under a statement, holds its writer until the statement's deadline
/// (`store::APPEND_STATEMENT_DEADLINE`), which closes the connection and leaves the statement's
/// outcome unknown.
pub const GENERIC_POOL_TEST_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Whether `error` is the server's notice that it ended the session (an administrator's
/// `pg_terminate_backend`, `idle_session_timeout`, a smart or fast shutdown: `FATAL` with
/// SQLSTATE class 57P) read in answer to a statement. For one statement in an implicit
/// transaction (every append is one), the commit happens at the protocol's Sync with
/// interrupts held, and its answer up to ReadyForQuery goes out before the server looks at
/// interrupts again: a `FATAL` read in its place means the statement was not committed, so it
/// may be sent again on another connection. That does not hold for a `COMMIT` sent as a
/// statement of its own (the server may look at interrupts after committing, before
/// answering): keep this to single-statement writes. Many endings give no such notice (a
/// crash, an immediate shutdown, a vanished host, a Unix socket's broken pipe): those are I/O
/// errors, [`outcome_unknown`].
pub fn ended_before_the_statement(error: &sqlx::Error) -> bool {
    let Some(error) = error.as_database_error() else {
        return false;
    };
    let fatal = error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some_and(|error| matches!(error.severity(), sqlx::postgres::PgSeverity::Fatal));
    fatal && error.code().is_some_and(|code| code.starts_with("57P"))
}

/// Whether `error` leaves open whether the statement took effect: the connection was lost
/// after the statement may have reached the server (what
/// [`HeldConnection`](crate::held_connection::HeldConnection) calls a lost connection), with
/// no notice that the session was ended first ([`ended_before_the_statement`]). A pool's
/// timeout is not one: no connection was had, nothing was sent. A statement that failed so
/// must not be taken for one that wrote nothing.
pub fn outcome_unknown(error: &sqlx::Error) -> bool {
    !matches!(error, sqlx::Error::PoolTimedOut)
        && crate::held_connection::connection_lost(error)
        && !ended_before_the_statement(error)
}

/// `pool`'s server and settings for a session named `application_name` that plans each
/// prepared statement once: what [`generic_plan_pool`]'s connections and a
/// [`HeldConnection`](crate::held_connection::HeldConnection) open.
pub(crate) fn generic_plan_options(pool: &PgPool, application_name: &str) -> PgConnectOptions {
    (*pool.connect_options())
        .clone()
        .application_name(application_name)
        .options([("plan_cache_mode", "force_generic_plan")])
}

/// Every statement this crate runs under a generic plan ([`generic_plan_pool`] for the appends,
/// a [`HeldConnection`](crate::held_connection::HeldConnection) for the log tail's read), by name: what
/// `tests/store/generic_plans.rs` plans on an empty log and on a full one.
#[doc(hidden)]
pub fn generic_planned_statements() -> Vec<(&'static str, &'static str)> {
    let mut statements = crate::store::GENERIC_PLANNED_APPENDS.to_vec();
    statements.push(("read_after", crate::log::READ_AFTER));
    statements
}

/// The options `url` names, with TLS off for a server on this machine (a loopback address,
/// `localhost` or a Unix socket) unless the URL's `sslmode` or `PGSSLMODE` says otherwise.
///
/// sqlx's default (`prefer`) encrypts whenever the server offers TLS, also over loopback,
/// where it protects nothing (whoever can read loopback traffic can read the server's memory)
/// and costs every statement: from 16 connections a bare `SELECT 1` ran at 36,100/s with TLS
/// and 58,400/s without, an `INSERT` at 9,600–10,200/s and 11,200–12,400/s (pgbench on this
/// machine kind, BENCHMARKS.md); under the runs bench Postgres spent 8% of its time in TLS.
/// A server elsewhere keeps sqlx's default.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let asked = has_ssl_mode(url) || std::env::var_os("PGSSLMODE").is_some();
    if asked || !is_on_this_machine(options.get_host()) {
        return Ok(options);
    }
    Ok(options.ssl_mode(PgSslMode::Disable))
}

/// Whether the URL's query names an SSL mode (`sslmode` or sqlx's `ssl-mode`).
fn has_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            name.eq_ignore_ascii_case("sslmode") || name.eq_ignore_ascii_case("ssl-mode")
        })
    })
}

fn is_on_this_machine(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Creates (if needed), connects and migrates: what every `agentry` command does first.
pub async fn prepare(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    create_if_missing(url).await?;
    let pool = connect(url, max_connections).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

fn is_duplicate_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| matches!(db.code().as_deref(), Some("42P04" | "23505")))
}

#[cfg(test)]
mod tests {
    use super::{has_ssl_mode, is_on_this_machine};

    #[test]
    fn loopback_addresses_localhost_and_sockets_are_this_machine() {
        for host in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "/run/postgresql",
        ] {
            assert!(is_on_this_machine(host), "{host}");
        }
        for host in [
            "10.0.0.5",
            "db.example.com",
            "192.168.1.2",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_on_this_machine(host), "{host}");
        }
    }

    #[test]
    fn an_ssl_mode_in_the_query_is_seen_in_either_spelling() {
        assert!(has_ssl_mode("postgres://u@127.0.0.1/db?sslmode=require"));
        assert!(has_ssl_mode(
            "postgres://u@127.0.0.1/db?application_name=x&SSLMODE=verify-full"
        ));
        assert!(has_ssl_mode("postgres://u@127.0.0.1/db?ssl-mode=require"));
        assert!(!has_ssl_mode("postgres://u@127.0.0.1/db"));
        assert!(!has_ssl_mode(
            "postgres://u@127.0.0.1/db?application_name=sslmode"
        ));
    }
}
