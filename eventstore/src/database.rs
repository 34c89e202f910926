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

/// A pool sized for the API and the background loops.
///
/// Sessions end transactions left idle for 30 s: an idle *writing* transaction would hold the
/// log follower's gate shut for the whole cluster (see `docs/event-store.md`).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .application_name("agentry")
        .options([("idle_in_transaction_session_timeout", "30s")]);
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
