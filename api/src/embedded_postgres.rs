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

use std::fmt::Write as _;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

/// Programs that must all live in one directory for the cluster to be managed.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// Where Debian/Ubuntu install one directory per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The unprivileged account that runs the server when this process is root.
const SERVICE_USER: &str = "postgres";
/// Superuser role created by `initdb -U`; the one the URL connects as.
const SUPERUSER: &str = "postgres";
/// Unix-socket directory, inside the data directory (created after `initdb`, which
/// insists on an empty directory).
const SOCKET_DIR_NAME: &str = "socket";
/// Server log, inside the data directory.
const LOG_FILE_NAME: &str = "server.log";
/// How long `pg_ctl -w` may wait for the server (crash recovery can take a while).
const START_TIMEOUT_SECS: u32 = 120;
/// How long to wait for the TCP port to accept connections after `pg_ctl` says it is up.
const TCP_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// `sun_path` is 108 bytes on Linux including the NUL; leave a little slack.
const MAX_SOCKET_PATH: usize = 100;
/// Environment variables that could redirect the server programs elsewhere.
const SCRUBBED_ENV: [&str; 8] = [
    "PGDATA",
    "PGPORT",
    "PGHOST",
    "PGHOSTADDR",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
    "PGPASSWORD",
];

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

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let action = action.into();
    move |error| EmbeddedPostgresError::Io { action, error }
}

fn not_installed() -> EmbeddedPostgresError {
    EmbeddedPostgresError::NotInstalled {
        hint: format!(
            "PostgreSQL server programs (initdb, pg_ctl, postgres) not found in \
             {DEBIAN_PG_ROOT}/<major>/bin or PATH: install them (apt-get install postgresql) \
             or set DATABASE_URL"
        ),
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
        find_binaries_in(Path::new(DEBIAN_PG_ROOT), std::env::var_os("PATH").as_deref())
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
        let data_dir = std::path::absolute(data_dir).map_err(io_err(format!(
            "cannot resolve PostgreSQL data directory {}",
            data_dir.display()
        )))?;
        let log_file = data_dir.join(LOG_FILE_NAME);
        let socket_path = data_dir.join(SOCKET_DIR_NAME);
        let existing_version = read_pg_version(&data_dir);

        let bin_dir = match existing_version.as_deref() {
            Some(major) => find_binaries_for_major(major),
            None => None,
        }
        .or_else(Self::find_binaries)
        .ok_or_else(not_installed)?;
        let run_as = if current_euid() == Some(0) {
            Some(service_user_from_passwd()?)
        } else {
            None
        };
        let runner = Runner { bin_dir, run_as };

        if let Some(major) = existing_version.as_deref() {
            check_server_version(&runner, &data_dir, major).await?;
            check_owner(&runner, &data_dir)?;
            if let Some((pid, port)) = runner.running_server(&data_dir, port).await? {
                let pid = Some(pid);
                wait_for_tcp(port).await.then_some(()).ok_or_else(|| {
                    EmbeddedPostgresError::NotReachable {
                        data_dir: data_dir.clone(),
                        port,
                        log: log_file.clone(),
                    }
                })?;
                tracing::info!(
                    data_dir = %data_dir.display(),
                    port,
                    pid,
                    log = %log_file.display(),
                    "reusing private PostgreSQL cluster already running from an earlier start"
                );
                return Ok(Self {
                    data_dir,
                    port,
                    socket_dir: socket_path.is_dir().then_some(socket_path),
                    log_file,
                    pid,
                    reused: true,
                    runner,
                });
            }
        }

        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(EmbeddedPostgresError::PortInUse { port });
        }

        // Checked before creating anything (so an unusable path leaves no litter) and again
        // after (directories we just created follow the umask).
        if let Some(user) = &runner.run_as {
            check_reachable_by(&data_dir, user)?;
        }
        std::fs::create_dir_all(&data_dir).map_err(io_err(format!(
            "cannot create PostgreSQL data directory {}",
            data_dir.display()
        )))?;
        if let Some(user) = &runner.run_as {
            check_reachable_by(&data_dir, user)?;
        }

        if existing_version.is_none() {
            let entries = match std::fs::read_dir(&data_dir) {
                Ok(entries) => entries,
                Err(e) => {
                    // Most likely a cluster owned by another user: say whose, and the fix.
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        check_owner(&runner, &data_dir)?;
                    }
                    return Err(io_err(format!("cannot read {}", data_dir.display()))(e));
                }
            };
            let non_empty = entries.into_iter().next().is_some();
            if non_empty {
                return Err(EmbeddedPostgresError::DataDir {
                    path: data_dir,
                    reason: "exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION); \
                             empty it or choose another data directory"
                        .into(),
                });
            }
            runner.chown(&data_dir)?;
            tracing::info!(
                data_dir = %data_dir.display(),
                bin_dir = %runner.bin_dir.display(),
                "initialising a new private PostgreSQL cluster"
            );
            let mut cmd = runner.command("initdb");
            cmd.arg("-D")
                .arg(&data_dir)
                .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]);
            runner.run(cmd, "initdb", None).await?;
        }

        let socket_dir = if socket_path.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH {
            if !socket_path.is_dir() {
                std::fs::create_dir(&socket_path).map_err(io_err(format!(
                    "cannot create socket directory {}",
                    socket_path.display()
                )))?;
            }
            std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(format!("cannot chmod {}", socket_path.display())))?;
            runner.chown(&socket_path)?;
            Some(socket_path)
        } else {
            tracing::warn!(
                path = %socket_path.display(),
                "data directory path too long for a unix socket; private PostgreSQL listens on TCP only"
            );
            None
        };

        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(io_err(format!("cannot create {}", log_file.display())))?;
        runner.chown(&log_file)?;

        let socket_opt = socket_dir
            .as_deref()
            .map(|p| shell_quote(&p.to_string_lossy()))
            .unwrap_or_else(|| "''".into());
        let server_opts = format!("-p {port} -k {socket_opt} -c listen_addresses=127.0.0.1");
        let mut cmd = runner.command("pg_ctl");
        cmd.arg("-D")
            .arg(&data_dir)
            .arg("-l")
            .arg(&log_file)
            .arg("-o")
            .arg(server_opts)
            .args(["-w", "-t", &START_TIMEOUT_SECS.to_string(), "start"]);
        runner.run(cmd, "pg_ctl start", Some(&log_file)).await?;

        let pid = read_pid_file(&data_dir).map(|p| p.pid);
        if !wait_for_tcp(port).await {
            return Err(EmbeddedPostgresError::NotReachable {
                data_dir,
                port,
                log: log_file,
            });
        }
        tracing::info!(
            data_dir = %data_dir.display(),
            port,
            pid,
            log = %log_file.display(),
            "started private PostgreSQL cluster (DATABASE_URL not set)"
        );
        Ok(Self {
            data_dir,
            port,
            socket_dir,
            log_file,
            pid,
            reused: false,
            runner,
        })
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

/// The unprivileged account the server programs run as when this process is root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Runs the server programs from one directory, as the right user.
#[derive(Debug, Clone)]
struct Runner {
    bin_dir: PathBuf,
    /// `Some` when this process is root: run as this user instead.
    run_as: Option<ServiceUser>,
}

impl Runner {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        // All paths are absolute; "/" is reachable by any user, unlike e.g. /root.
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid)
                .gid(user.gid)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        cmd
    }

    /// Runs `cmd` to completion; a non-zero exit becomes a one-line error with the tail of
    /// its output and, when given, of the server log.
    async fn run(
        &self,
        mut cmd: Command,
        what: &str,
        log: Option<&Path>,
    ) -> Result<Output, EmbeddedPostgresError> {
        let program = cmd.as_std().get_program().to_owned();
        let output = cmd
            .output()
            .await
            .map_err(io_err(format!("cannot run {}", Path::new(&program).display())))?;
        if output.status.success() {
            return Ok(output);
        }
        let mut detail = tail_lines(&String::from_utf8_lossy(&output.stderr), 3);
        if detail.is_empty() {
            detail = tail_lines(&String::from_utf8_lossy(&output.stdout), 3);
        }
        if let Some(log_tail) = log.and_then(|l| read_tail(l, 8192)) {
            let log_tail = tail_lines(&log_tail, 3);
            if !log_tail.is_empty() {
                let _ = write!(detail, " | log: {log_tail}");
            }
        }
        Err(EmbeddedPostgresError::CommandFailed {
            program: what.to_owned(),
            status: output.status.to_string(),
            detail,
            log: log.map(Path::to_path_buf),
        })
    }

    /// Gives `path` to the service user when running as root (no-op otherwise).
    fn chown(&self, path: &Path) -> Result<(), EmbeddedPostgresError> {
        match &self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io_err(
                format!("cannot give {} to the `{}` user", path.display(), user.name),
            )),
            None => Ok(()),
        }
    }

    /// If a server from an earlier start is alive in `data_dir`, its pid and actual port.
    async fn running_server(
        &self,
        data_dir: &Path,
        requested_port: u16,
    ) -> Result<Option<(u32, u16)>, EmbeddedPostgresError> {
        let Some(pid_file) = read_pid_file(data_dir) else {
            return Ok(None);
        };
        // `pg_ctl status` checks the pid is alive (kill 0) as the service user, so a stale
        // pid file whose pid was recycled by another user's process does not count.
        let mut cmd = self.command("pg_ctl");
        cmd.arg("status").arg("-D").arg(data_dir);
        let status = cmd.output().await.map_err(io_err(format!(
            "cannot run {}",
            self.bin_dir.join("pg_ctl").display()
        )))?;
        if !status.status.success() {
            return Ok(None);
        }
        let port = pid_file.port.unwrap_or(requested_port);
        if port != requested_port {
            tracing::warn!(
                requested_port,
                port,
                data_dir = %data_dir.display(),
                "private PostgreSQL is already running on a different port; using that"
            );
        }
        Ok(Some((pid_file.pid, port)))
    }
}

/// Refuses a data directory written by another major version, whose files the installed
/// server cannot read.
async fn check_server_version(
    runner: &Runner,
    data_dir: &Path,
    data_major: &str,
) -> Result<(), EmbeddedPostgresError> {
    let mut cmd = runner.command("postgres");
    cmd.arg("--version");
    let output = runner.run(cmd, "postgres --version", None).await?;
    let text = String::from_utf8_lossy(&output.stdout);
    match server_major(&text) {
        Some(server) if server != data_major => Err(EmbeddedPostgresError::DataDir {
            path: data_dir.to_path_buf(),
            reason: format!(
                "was created by PostgreSQL {data_major} but the installed server is {server}; \
                 install PostgreSQL {data_major}'s server programs, upgrade the cluster with \
                 pg_upgrade, or choose another data directory"
            ),
        }),
        _ => Ok(()),
    }
}

/// The server refuses a data directory it does not own; say so before it does, with a fix.
fn check_owner(runner: &Runner, data_dir: &Path) -> Result<(), EmbeddedPostgresError> {
    let expected = match &runner.run_as {
        Some(user) => Some((user.uid, user.name.clone())),
        None => current_euid().map(|uid| (uid, "the current user".to_owned())),
    };
    let Some((uid, who)) = expected else {
        return Ok(());
    };
    let meta =
        std::fs::metadata(data_dir).map_err(io_err(format!("cannot inspect {}", data_dir.display())))?;
    if meta.uid() == uid {
        return Ok(());
    }
    Err(EmbeddedPostgresError::DataDir {
        path: data_dir.to_path_buf(),
        reason: format!(
            "is owned by uid {} but the server runs as {who} (uid {uid}); \
             chown -R it to that user or choose another data directory",
            meta.uid()
        ),
    })
}

/// When the server runs as another user, every ancestor of the data directory must be
/// searchable by that user (e.g. `/root` is not), or the server cannot even open it.
fn check_reachable_by(data_dir: &Path, user: &ServiceUser) -> Result<(), EmbeddedPostgresError> {
    for ancestor in data_dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        let mode = meta.mode();
        let bit = if meta.uid() == user.uid {
            0o100
        } else if meta.gid() == user.gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(EmbeddedPostgresError::DataDir {
                path: data_dir.to_path_buf(),
                reason: format!(
                    "the `{}` user the server runs as cannot reach it because {} (mode {:o}) is \
                     not searchable for it; choose a data directory it can reach (e.g. under \
                     /var/lib or /tmp) or chmod o+x {}",
                    user.name,
                    ancestor.display(),
                    mode & 0o7777,
                    ancestor.display()
                ),
            });
        }
    }
    Ok(())
}

fn find_binaries_in(debian_root: &Path, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = parse_version(name.to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server_programs(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    for dir in std::env::split_paths(path_var?) {
        let initdb = dir.join("initdb");
        if !is_executable(&initdb) {
            continue;
        }
        if let Some(real_dir) = std::fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_server_programs(d))
        {
            return Some(real_dir);
        }
        if has_server_programs(&dir) {
            return Some(dir);
        }
    }
    None
}

/// Prefers the binaries of the major version that created an existing data directory.
fn find_binaries_for_major(major: &str) -> Option<PathBuf> {
    let bin = Path::new(DEBIAN_PG_ROOT).join(major).join("bin");
    has_server_programs(&bin).then_some(bin)
}

fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn has_server_programs(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|p| is_executable(&dir.join(p)))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Contents of `PG_VERSION` (e.g. "15"), present once `initdb` has run.
fn read_pg_version(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("PG_VERSION")).ok()?;
    let version = text.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

/// Major version from `postgres --version`, in the form `PG_VERSION` uses ("15", "9.6").
fn server_major(version_output: &str) -> Option<String> {
    let number = version_output
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = number
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let first: u32 = parts.next()?.parse().ok()?;
    if first >= 10 {
        Some(first.to_string())
    } else {
        Some(format!("{first}.{}", parts.next()?))
    }
}

/// What `postmaster.pid` says about a running server.
#[derive(Debug, PartialEq, Eq)]
struct PidFile {
    pid: u32,
    port: Option<u16>,
}

fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    parse_pid_file(&std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?)
}

/// Line 1 is the pid, line 4 the port (see PostgreSQL's `pidfile.h`).
fn parse_pid_file(text: &str) -> Option<PidFile> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let port = lines.nth(2).and_then(|l| l.trim().parse().ok());
    Some(PidFile { pid, port })
}

/// Effective uid, from `/proc/self/status` (no `libc`, and `unsafe` is forbidden here).
fn current_euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_euid(&status)
}

fn parse_euid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn service_user_from_passwd() -> Result<ServiceUser, EmbeddedPostgresError> {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| parse_passwd(&text, SERVICE_USER))
        .ok_or_else(|| EmbeddedPostgresError::NoServiceUser {
            hint: format!(
                "running as root, but PostgreSQL refuses to run as root and there is no \
                 `{SERVICE_USER}` system user in /etc/passwd to run it as: create one \
                 (useradd --system {SERVICE_USER}; apt-get install postgresql does this), \
                 run agentry as a non-root user, or set DATABASE_URL"
            ),
        })
}

/// Finds `name` in passwd-format text (`name:x:uid:gid:gecos:home:shell`).
fn parse_passwd(text: &str, name: &str) -> Option<ServiceUser> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 || fields[0] != name {
            return None;
        }
        Some(ServiceUser {
            name: name.to_owned(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: PathBuf::from(fields[5]),
        })
    })
}

/// `pg_ctl -o` is passed through `/bin/sh`, so paths inside it need shell quoting.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// SQL identifier quoting for `CREATE DATABASE`.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (URL path segment).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Last `n` non-blank lines of `text`, joined on one line.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Last `max` bytes of a (possibly large, ever-growing) log file.
fn read_tail(path: &Path, max: u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Waits until 127.0.0.1:`port` accepts a TCP connection.
async fn wait_for_tcp(port: u16) -> bool {
    let deadline = tokio::time::Instant::now() + TCP_READY_TIMEOUT;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_entries() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            parse_passwd(text, "postgres"),
            Some(ServiceUser {
                name: "postgres".into(),
                uid: 101,
                gid: 104,
                home: "/var/lib/postgresql".into(),
            })
        );
        assert_eq!(parse_passwd(text, "nobody"), None);
        assert_eq!(parse_passwd("postgres:x:abc:1:::", "postgres"), None);
    }

    #[test]
    fn parses_euid_and_pid_file_and_versions() {
        assert_eq!(parse_euid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\n"), Some(0));
        assert_eq!(
            parse_pid_file("4242\n/data\n1700000000\n54321\n/data/socket\n127.0.0.1\n  1 2\nready   \n"),
            Some(PidFile {
                pid: 4242,
                port: Some(54321)
            })
        );
        assert_eq!(
            server_major("postgres (PostgreSQL) 15.14 (Debian 15.14-1)\n").as_deref(),
            Some("15")
        );
        assert_eq!(
            server_major("postgres (PostgreSQL) 9.6.24\n").as_deref(),
            Some("9.6")
        );
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("common"), None);
    }

    #[test]
    fn quoting_and_tails() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(percent_encode("agentry_1"), "agentry_1");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(tail_lines("a\n\nb\nc\n d \n", 2), "c | d");
        let err = not_installed().to_string();
        assert!(
            !err.contains('\n') && err.contains("apt-get install postgresql"),
            "{err}"
        );
    }

    #[test]
    fn finds_binaries_in_highest_major_then_path() {
        let root = TempDir::new("find");
        let make = |dir: &Path| {
            std::fs::create_dir_all(dir).unwrap();
            for p in SERVER_PROGRAMS {
                let f = dir.join(p);
                std::fs::write(&f, "").unwrap();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        let debian = root.path.join("lib/postgresql");
        make(&debian.join("9.6/bin"));
        make(&debian.join("13/bin"));
        std::fs::create_dir_all(debian.join("16/bin")).unwrap(); // incomplete: skipped
        let on_path = root.path.join("bin");
        make(&on_path);
        let path_var = std::env::join_paths([root.path.join("nothing"), on_path.clone()]).unwrap();
        assert_eq!(
            find_binaries_in(&debian, Some(&path_var)),
            Some(debian.join("13/bin"))
        );
        assert_eq!(
            find_binaries_in(&root.path.join("missing"), Some(&path_var)),
            Some(on_path)
        );
        assert_eq!(find_binaries_in(&root.path.join("missing"), None), None);
    }

    /// A temp dir under /tmp that is removed (with anything a cluster left in it) on drop,
    /// after making sure no server is still running from it.
    struct TempDir {
        path: PathBuf,
    }

    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = PathBuf::from(format!(
                "/tmp/agentry-embedded-pg-{tag}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self { path }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            // If a test failed half-way, don't leave a postmaster behind.
            let data = self.path.join("data");
            if let (Some(pid), Some(bin)) = (
                read_pid_file(&data).map(|p| p.pid),
                EmbeddedPostgres::find_binaries(),
            ) {
                let mut cmd = std::process::Command::new(bin.join("pg_ctl"));
                cmd.arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]);
                if current_euid() == Some(0)
                    && let Ok(user) = service_user_from_passwd()
                {
                    use std::os::unix::process::CommandExt as _;
                    cmd.uid(user.uid).gid(user.gid).current_dir("/");
                }
                let _ = cmd.output();
                eprintln!("cleanup: stopped leftover postmaster {pid}");
            }
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn starts_persists_reuses_and_stops_a_real_cluster() {
        if EmbeddedPostgres::find_binaries().is_none() {
            eprintln!("skipping: PostgreSQL server programs are not installed");
            return;
        }
        let tmp = TempDir::new("cluster");
        let data = tmp.path.join("data");
        let port = free_port();

        let pg = EmbeddedPostgres::start(&data, port).await.unwrap();
        assert_eq!(pg.port(), port);
        assert!(!pg.was_already_running());
        assert!(data.join("PG_VERSION").is_file());
        assert!(pg.log_file().is_file());
        assert!(pg.socket_dir().unwrap().join(format!(".s.PGSQL.{port}")).exists());
        assert_eq!(
            pg.url("agentry"),
            format!("postgres://postgres@127.0.0.1:{port}/agentry")
        );
        {
            let pool = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
            assert_eq!(one, 1);
            sqlx::query("CREATE TABLE survives_restart (id int primary key)")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO survives_restart VALUES (7)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        pg.ensure_database("agentry").await.unwrap();
        pg.ensure_database("agentry").await.unwrap(); // idempotent
        let pool = sqlx::PgPool::connect(&pg.url("agentry")).await.unwrap();
        pool.close().await;

        // Starting again while it runs adopts the running server.
        let again = EmbeddedPostgres::start(&data, port).await.unwrap();
        assert!(again.was_already_running());
        assert_eq!(again.port(), port);
        assert_eq!(again.pid(), pg.pid());
        drop(again);

        pg.stop().await.unwrap();
        assert!(!data.join("postmaster.pid").exists());

        // A fresh start on the same directory sees the data.
        let pg = EmbeddedPostgres::start(&data, port).await.unwrap();
        assert!(!pg.was_already_running());
        let pool = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
        let id: i32 = sqlx::query_scalar("SELECT id FROM survives_restart")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(id, 7);
        pool.close().await;
        pg.stop().await.unwrap();
    }

    #[tokio::test]
    async fn reports_port_in_use_and_foreign_data_dir_in_one_line() {
        if EmbeddedPostgres::find_binaries().is_none() {
            eprintln!("skipping: PostgreSQL server programs are not installed");
            return;
        }
        let tmp = TempDir::new("errors");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = EmbeddedPostgres::start(&tmp.path.join("data"), port)
            .await
            .unwrap_err();
        assert!(matches!(err, EmbeddedPostgresError::PortInUse { .. }), "{err}");
        drop(listener);

        let junk = tmp.path.join("junk");
        std::fs::create_dir_all(&junk).unwrap();
        std::fs::write(junk.join("file"), "x").unwrap();
        let err = EmbeddedPostgres::start(&junk, free_port()).await.unwrap_err();
        let line = err.to_string();
        assert!(matches!(err, EmbeddedPostgresError::DataDir { .. }), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
