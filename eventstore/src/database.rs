//! Creating, connecting to and migrating the event-store database.

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .application_name("agentry")
        .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT)]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
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
