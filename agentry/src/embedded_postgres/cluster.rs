//! Bringing a cluster up: adopting a server left running by an earlier start, or `initdb`
//! (first time) and `pg_ctl start`; then waiting until it accepts TCP connections.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::binaries::check_server_version;
use super::error::io_err;
use super::quoting::shell_quote;
use super::runner::Runner;
use super::service_user::{check_owner, check_reachable_by};
use super::{EmbeddedPostgres, EmbeddedPostgresError, SUPERUSER};

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

/// [`EmbeddedPostgres::start`]: reuse a running server, else initialise (first time) and start.
pub(super) async fn start(data_dir: &Path, port: u16) -> Result<EmbeddedPostgres, EmbeddedPostgresError> {
    let data_dir = std::path::absolute(data_dir).map_err(io_err(format!(
        "cannot resolve PostgreSQL data directory {}",
        data_dir.display()
    )))?;
    let log_file = data_dir.join(LOG_FILE_NAME);
    let socket_path = data_dir.join(SOCKET_DIR_NAME);
    let existing_version = read_pg_version(&data_dir);
    let runner = Runner::locate(existing_version.as_deref())?;

    if let Some(major) = existing_version.as_deref() {
        check_server_version(&runner, &data_dir, major).await?;
        check_owner(&runner, &data_dir)?;
        if let Some((pid, port)) = running_server(&runner, &data_dir, port).await? {
            let adopted = EmbeddedPostgres {
                data_dir,
                port,
                socket_dir: socket_path.is_dir().then_some(socket_path),
                log_file,
                pid: Some(pid),
                reused: true,
                runner,
            };
            return adopted.once_reachable().await;
        }
    }

    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(EmbeddedPostgresError::PortInUse { port });
    }
    create_data_dir(&runner, &data_dir)?;
    if existing_version.is_none() {
        init_cluster(&runner, &data_dir).await?;
    }
    let socket_dir = prepare_socket_dir(&runner, socket_path)?;
    create_log_file(&runner, &log_file)?;
    pg_ctl_start(&runner, &data_dir, &log_file, socket_dir.as_deref(), port).await?;

    let pid = read_pid_file(&data_dir).map(|p| p.pid);
    let started = EmbeddedPostgres {
        data_dir,
        port,
        socket_dir,
        log_file,
        pid,
        reused: false,
        runner,
    };
    started.once_reachable().await
}

impl EmbeddedPostgres {
    /// Hands the handle out once 127.0.0.1:`port` accepts connections (`pg_ctl` saying the
    /// server is up is not enough), logging where the cluster lives.
    async fn once_reachable(self) -> Result<Self, EmbeddedPostgresError> {
        if !wait_for_tcp(self.port).await {
            return Err(EmbeddedPostgresError::NotReachable {
                data_dir: self.data_dir,
                port: self.port,
                log: self.log_file,
            });
        }
        let what = if self.reused {
            "reusing private PostgreSQL cluster already running from an earlier start"
        } else {
            "started private PostgreSQL cluster (DATABASE_URL not set)"
        };
        tracing::info!(
            data_dir = %self.data_dir.display(),
            port = self.port,
            pid = self.pid,
            log = %self.log_file.display(),
            "{what}"
        );
        Ok(self)
    }
}

/// Creates the data directory (if missing) where the server's user can reach it.
fn create_data_dir(runner: &Runner, data_dir: &Path) -> Result<(), EmbeddedPostgresError> {
    // Checked before creating anything (so an unusable path leaves no litter) and again
    // after (directories we just created follow the umask).
    if let Some(user) = &runner.run_as {
        check_reachable_by(data_dir, user)?;
    }
    std::fs::create_dir_all(data_dir).map_err(io_err(format!(
        "cannot create PostgreSQL data directory {}",
        data_dir.display()
    )))?;
    if let Some(user) = &runner.run_as {
        check_reachable_by(data_dir, user)?;
    }
    Ok(())
}

/// Runs `initdb` in a data directory that holds no cluster yet; refuses one that holds
/// anything else.
async fn init_cluster(runner: &Runner, data_dir: &Path) -> Result<(), EmbeddedPostgresError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) => {
            // Most likely a cluster owned by another user: say whose, and the fix.
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                check_owner(runner, data_dir)?;
            }
            return Err(io_err(format!("cannot read {}", data_dir.display()))(e));
        }
    };
    let non_empty = entries.into_iter().next().is_some();
    if non_empty {
        return Err(EmbeddedPostgresError::DataDir {
            path: data_dir.to_path_buf(),
            reason: "exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION); \
                     empty it or choose another data directory"
                .into(),
        });
    }
    runner.chown(data_dir)?;
    tracing::info!(
        data_dir = %data_dir.display(),
        bin_dir = %runner.bin_dir.display(),
        "initialising a new private PostgreSQL cluster"
    );
    let mut cmd = runner.command("initdb");
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]);
    runner.run(cmd, "initdb", None).await?;
    Ok(())
}

/// The private socket directory, or `None` (TCP only) when its path is too long for a socket.
fn prepare_socket_dir(
    runner: &Runner,
    socket_path: PathBuf,
) -> Result<Option<PathBuf>, EmbeddedPostgresError> {
    if socket_path.join(".s.PGSQL.65535").as_os_str().len() > MAX_SOCKET_PATH {
        tracing::warn!(
            path = %socket_path.display(),
            "data directory path too long for a unix socket; private PostgreSQL listens on TCP only"
        );
        return Ok(None);
    }
    if !socket_path.is_dir() {
        std::fs::create_dir(&socket_path).map_err(io_err(format!(
            "cannot create socket directory {}",
            socket_path.display()
        )))?;
    }
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("cannot chmod {}", socket_path.display())))?;
    runner.chown(&socket_path)?;
    Ok(Some(socket_path))
}

/// Creates the server log (if missing) so it belongs to the server's user.
fn create_log_file(runner: &Runner, log_file: &Path) -> Result<(), EmbeddedPostgresError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(io_err(format!("cannot create {}", log_file.display())))?;
    runner.chown(log_file)
}

/// `pg_ctl start -w` on 127.0.0.1:`port` only, with the private socket directory (if any).
async fn pg_ctl_start(
    runner: &Runner,
    data_dir: &Path,
    log_file: &Path,
    socket_dir: Option<&Path>,
    port: u16,
) -> Result<(), EmbeddedPostgresError> {
    let socket_opt = socket_dir
        .map(|p| shell_quote(&p.to_string_lossy()))
        .unwrap_or_else(|| "''".into());
    let server_opts = format!("-p {port} -k {socket_opt} -c listen_addresses=127.0.0.1");
    let mut cmd = runner.command("pg_ctl");
    cmd.arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(log_file)
        .arg("-o")
        .arg(server_opts)
        .args(["-w", "-t", &START_TIMEOUT_SECS.to_string(), "start"]);
    runner.run(cmd, "pg_ctl start", Some(log_file)).await?;
    Ok(())
}

/// If a server from an earlier start is alive in `data_dir`, its pid and actual port.
async fn running_server(
    runner: &Runner,
    data_dir: &Path,
    requested_port: u16,
) -> Result<Option<(u32, u16)>, EmbeddedPostgresError> {
    let Some(pid_file) = read_pid_file(data_dir) else {
        return Ok(None);
    };
    // `pg_ctl status` checks the pid is alive (kill 0) as the service user, so a stale
    // pid file whose pid was recycled by another user's process does not count.
    let mut cmd = runner.command("pg_ctl");
    cmd.arg("status").arg("-D").arg(data_dir);
    let status = cmd.output().await.map_err(io_err(format!(
        "cannot run {}",
        runner.bin_dir.join("pg_ctl").display()
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

/// Contents of `PG_VERSION` (e.g. "15"), present once `initdb` has run.
fn read_pg_version(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("PG_VERSION")).ok()?;
    let version = text.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

/// What `postmaster.pid` says about a running server.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PidFile {
    pub(super) pid: u32,
    pub(super) port: Option<u16>,
}

pub(super) fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    parse_pid_file(&std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?)
}

/// Line 1 is the pid, line 4 the port (see PostgreSQL's `pidfile.h`).
pub(super) fn parse_pid_file(text: &str) -> Option<PidFile> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let port = lines.nth(2).and_then(|l| l.trim().parse().ok());
    Some(PidFile { pid, port })
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
