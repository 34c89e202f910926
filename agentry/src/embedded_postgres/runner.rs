//! Running the server programs from one directory, as the right user, and turning a failed
//! run into one line.

use std::fmt::Write as _;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::process::Command;

use super::binaries::find_binaries_for_major;
use super::error::{io_err, not_installed};
use super::service_user::{ServiceUser, current_euid, service_user_from_passwd};
use super::{EmbeddedPostgres, EmbeddedPostgresError};

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

/// Runs the server programs from one directory, as the right user.
#[derive(Debug, Clone)]
pub(super) struct Runner {
    pub(super) bin_dir: PathBuf,
    /// `Some` when this process is root: run as this user instead.
    pub(super) run_as: Option<ServiceUser>,
}

impl Runner {
    /// The server programs of `existing_major` (the version that created the data directory)
    /// if installed, else the newest found; run as the service user when this process is root.
    pub(super) fn locate(existing_major: Option<&str>) -> Result<Self, EmbeddedPostgresError> {
        let bin_dir = existing_major
            .and_then(find_binaries_for_major)
            .or_else(EmbeddedPostgres::find_binaries)
            .ok_or_else(not_installed)?;
        let run_as = if current_euid() == Some(0) {
            Some(service_user_from_passwd()?)
        } else {
            None
        };
        Ok(Self { bin_dir, run_as })
    }

    pub(super) fn command(&self, program: &str) -> Command {
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
    pub(super) async fn run(
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
    pub(super) fn chown(&self, path: &Path) -> Result<(), EmbeddedPostgresError> {
        match &self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io_err(
                format!("cannot give {} to the `{}` user", path.display(), user.name),
            )),
            None => Ok(()),
        }
    }
}

/// Last `n` non-blank lines of `text`, joined on one line.
pub(super) fn tail_lines(text: &str, n: usize) -> String {
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
