//! [`EmbeddedPostgresError`] and the small constructors the other files share.

use std::path::{Path, PathBuf};

use super::binaries::DEBIAN_PG_ROOT;

/// Why the private cluster could not be started or stopped; each renders as one line
/// saying what to install, set or fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPostgresError {
    /// PostgreSQL's server programs are not installed, so there is nothing to start.
    #[error("{hint}")]
    NotInstalled {
        /// What to install or set instead.
        hint: String,
    },
    /// This process is root, the server refuses to run as root, and there is no
    /// unprivileged `postgres` account to run it as.
    #[error("{hint}")]
    NoServiceUser {
        /// What to create or set instead.
        hint: String,
    },
    /// The data directory cannot hold (or does not hold) a cluster the installed server
    /// can use.
    #[error("PostgreSQL data directory {}: {reason}", path.display())]
    DataDir {
        /// The data directory in question.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// Another program already listens on the port chosen for the private cluster.
    #[error(
        "cannot start private PostgreSQL on 127.0.0.1:{port}: the port is already in use; \
         free it, choose another port, or set DATABASE_URL"
    )]
    PortInUse {
        /// The port that is taken.
        port: u16,
    },
    /// A file-system or process-spawn operation failed.
    #[error("{action}: {error}")]
    Io {
        /// What was being attempted.
        action: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// `initdb` or `pg_ctl` exited unsuccessfully.
    #[error("{program} failed ({status}): {detail}{}", log_hint(log.as_deref()))]
    CommandFailed {
        /// Which program failed, e.g. `pg_ctl start`.
        program: String,
        /// Its exit status.
        status: String,
        /// The tail of its output (and of the server log), on one line.
        detail: String,
        /// The server log to read for more, if there is one.
        log: Option<PathBuf>,
    },
    /// The server reportedly started but does not accept TCP connections.
    #[error(
        "private PostgreSQL in {} is running but 127.0.0.1:{port} does not accept connections; see {}",
        data_dir.display(),
        log.display()
    )]
    NotReachable {
        /// The cluster's data directory.
        data_dir: PathBuf,
        /// The port that did not answer.
        port: u16,
        /// The server log.
        log: PathBuf,
    },
    /// Talking SQL to the private cluster failed (e.g. creating the application database).
    #[error("{action}: {error}")]
    Database {
        /// What was being attempted.
        action: String,
        /// The underlying error.
        error: sqlx::Error,
    },
}

fn log_hint(log: Option<&Path>) -> String {
    log.map(|l| format!("; see {}", l.display())).unwrap_or_default()
}

pub(super) fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let action = action.into();
    move |error| EmbeddedPostgresError::Io { action, error }
}

pub(super) fn not_installed() -> EmbeddedPostgresError {
    EmbeddedPostgresError::NotInstalled {
        hint: format!(
            "PostgreSQL server programs (initdb, pg_ctl, postgres) not found in \
             {DEBIAN_PG_ROOT}/<major>/bin or PATH: install them (apt-get install postgresql) \
             or set DATABASE_URL"
        ),
    }
}
