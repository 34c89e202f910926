//! Who the server programs run as: root detection, the unprivileged `postgres` account from
//! `/etc/passwd`, and whether that account owns and can reach the data directory.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::EmbeddedPostgresError;
use super::error::io_err;
use super::runner::Runner;

/// The unprivileged account that runs the server when this process is root.
const SERVICE_USER: &str = "postgres";

/// The unprivileged account the server programs run as when this process is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServiceUser {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) home: PathBuf,
}

/// Effective uid, from `/proc/self/status` (no `libc`, and `unsafe` is forbidden here).
pub(super) fn current_euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_euid(&status)
}

pub(super) fn parse_euid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub(super) fn service_user_from_passwd() -> Result<ServiceUser, EmbeddedPostgresError> {
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
pub(super) fn parse_passwd(text: &str, name: &str) -> Option<ServiceUser> {
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

/// The server refuses a data directory it does not own; say so before it does, with a fix.
pub(super) fn check_owner(runner: &Runner, data_dir: &Path) -> Result<(), EmbeddedPostgresError> {
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
pub(super) fn check_reachable_by(data_dir: &Path, user: &ServiceUser) -> Result<(), EmbeddedPostgresError> {
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
