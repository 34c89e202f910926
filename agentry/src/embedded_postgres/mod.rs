//! A private PostgreSQL cluster for the zero-configuration default.
//!
//! Why this exists: with no `DATABASE_URL` and nothing listening at the default address,
//! `agentry serve` should still work on any machine that has PostgreSQL's *server programs*
//! installed (Debian puts them under `/usr/lib/postgresql/<major>/bin`). We do not use an
//! embedded-Postgres crate: those download binaries (impossible offline), delete the data
//! directory on drop, and recent releases pull a second sqlx (see DESIGN-NOTES §6).
//!
//! Facts this module is built around:
//! - `initdb`, `pg_ctl` and `postgres` refuse to run as root. When this process is root the
//!   server programs run as the unprivileged `postgres` system user, which must own the data
//!   directory, the socket directory and the log file.
//! - The cluster uses its own port and its own unix-socket directory (inside the data
//!   directory), never the packaged cluster's.
//! - The data directory is persistent: it is never deleted, a later start reuses it, and a
//!   server left running by an earlier start (e.g. after a crash of this process) is reused.
//! - Every failure is one line an operator can act on.
//!
//! Layout:
//! - `error`: [`EmbeddedPostgresError`], one actionable line per failure.
//! - `binaries`: finding `initdb`/`pg_ctl`/`postgres` and checking their major version.
//! - `service_user`: root detection, the `postgres` account from `/etc/passwd`, and whether
//!   that account owns and can reach the data directory.
//! - `runner`: running the server programs from one directory, as the right user.
//! - `cluster`: `initdb`, `pg_ctl start`, adopting a server left running, readiness.
//! - `quoting`: escaping for the shell, SQL identifiers and URLs.

mod binaries;
mod cluster;
mod error;
mod quoting;
mod runner;
mod service_user;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::EmbeddedPostgresError;
use quoting::{percent_encode, quote_ident};
use runner::Runner;

/// Superuser role created by `initdb -U`; the one the URL connects as.
const SUPERUSER: &str = "postgres";

/// A private PostgreSQL cluster this process started (or found already running from an
/// earlier start).
///
/// Why a handle: the caller needs the connection URL while serving and must be able to
/// stop the server on graceful shutdown. Dropping the handle does *not* stop the server
/// (and never deletes data): a server left running is simply reused by the next start.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    port: u16,
    socket_dir: Option<PathBuf>,
    log_file: PathBuf,
    pid: Option<u32>,
    reused: bool,
    runner: Runner,
}

/// Where a private cluster lives when `AGENTRY_DATA_DIR` is not set: `/var/lib/agentry` for
/// root (the server runs as `postgres`, which cannot enter root's home), `./.agentry`
/// otherwise.
pub fn default_data_dir() -> PathBuf {
    if service_user::current_euid() == Some(0) {
        PathBuf::from("/var/lib/agentry")
    } else {
        PathBuf::from(".agentry")
    }
}

impl EmbeddedPostgres {
    /// Directory of initdb/pg_ctl/postgres, searching /usr/lib/postgresql/<highest major>/bin,
    /// then PATH.
    ///
    /// Why: Debian keeps the server programs off PATH (only wrappers for client tools are
    /// there), so the versioned directory is searched first; PATH covers other layouts.
    /// A PATH entry that is a symlink (e.g. `/usr/local/bin/initdb`) resolves to the real
    /// directory so `pg_ctl` finds the matching `postgres` next to itself.
    pub fn find_binaries() -> Option<PathBuf> {
        binaries::find_binaries_in(
            Path::new(binaries::DEBIAN_PG_ROOT),
            std::env::var_os("PATH").as_deref(),
        )
    }

    /// Initialise (first time) and start a cluster in `data_dir` listening on
    /// 127.0.0.1:`port` with its own unix socket directory inside data_dir. Idempotent: if a
    /// cluster from an earlier start is still running there (postmaster.pid alive), reuse it.
    ///
    /// Why these choices: `trust` authentication on 127.0.0.1 only, superuser `postgres`,
    /// UTF8 with the C locale (available everywhere). When reusing a running server its
    /// actual port (from `postmaster.pid`) wins over `port`, with a warning. The data
    /// directory is created if missing and never deleted.
    pub async fn start(data_dir: &Path, port: u16) -> Result<Self, EmbeddedPostgresError> {
        cluster::start(data_dir, port).await
    }

    /// postgres://postgres@127.0.0.1:<port>/agentry style URL for database `db`.
    ///
    /// Why TCP and not the socket: it is what sqlx and operators' tools use by default, and
    /// it works no matter which user this process runs as. The database must exist; see
    /// [`EmbeddedPostgres::ensure_database`].
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// Creates database `db` unless it exists.
    ///
    /// Why: a fresh cluster only has `postgres`, `template0` and `template1`; the
    /// application's own database must be created before [`EmbeddedPostgres::url`] for it
    /// can be connected to.
    pub async fn ensure_database(&self, db: &str) -> Result<(), EmbeddedPostgresError> {
        use sqlx::Connection as _;
        let db_err = |action: String| move |error| EmbeddedPostgresError::Database { action, error };
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(db_err(format!(
                "cannot connect to private PostgreSQL on 127.0.0.1:{}",
                self.port
            )))?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(db)
            .fetch_optional(&mut conn)
            .await
            .map_err(db_err(format!("cannot look up database {db:?}")))?;
        if exists.is_none() {
            let sql = format!("CREATE DATABASE {}", quote_ident(db));
            match sqlx::query(&sql).execute(&mut conn).await {
                Ok(_) => tracing::info!(db, "created database in private PostgreSQL cluster"),
                // Someone else created it concurrently: that is what we wanted.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(error) => {
                    return Err(EmbeddedPostgresError::Database {
                        action: format!("cannot create database {db:?}"),
                        error,
                    });
                }
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Stops the cluster (pg_ctl stop -m fast) — called on graceful shutdown.
    ///
    /// Why fast mode: it rolls back open transactions and shuts down cleanly, so the next
    /// start needs no crash recovery; smart mode could wait forever on idle pool
    /// connections. Stopping a server that is already gone is not an error.
    pub async fn stop(self) -> Result<(), EmbeddedPostgresError> {
        let mut cmd = self.runner.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        match self.runner.run(cmd, "pg_ctl stop", Some(&self.log_file)).await {
            Ok(_) => {
                tracing::info!(data_dir = %self.data_dir.display(), "stopped private PostgreSQL cluster");
                Ok(())
            }
            Err(_) if !self.data_dir.join("postmaster.pid").exists() => {
                tracing::info!(data_dir = %self.data_dir.display(), "private PostgreSQL cluster was already stopped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The cluster's data directory (absolute), so callers can report where data lives.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TCP port the server listens on at 127.0.0.1 (may differ from the requested one
    /// when a server from an earlier start was reused).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix-socket directory (for `psql -h <dir>`), or `None` when the data directory
    /// path is too long for a socket and the server listens on TCP only.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// The server log file, the first place to look when something goes wrong.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The postmaster's process id, if `postmaster.pid` could be read.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether this handle adopted a server left running by an earlier start rather than
    /// starting one.
    pub fn was_already_running(&self) -> bool {
        self.reused
    }
}
