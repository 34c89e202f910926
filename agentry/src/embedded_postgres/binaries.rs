//! Finding `initdb`, `pg_ctl` and `postgres`, and telling which major version they are.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::EmbeddedPostgresError;
use super::runner::Runner;

/// Programs that must all live in one directory for the cluster to be managed.
pub(super) const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// Where Debian/Ubuntu install one directory per major version.
pub(super) const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

pub(super) fn find_binaries_in(debian_root: &Path, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
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
pub(super) fn find_binaries_for_major(major: &str) -> Option<PathBuf> {
    let bin = Path::new(DEBIAN_PG_ROOT).join(major).join("bin");
    has_server_programs(&bin).then_some(bin)
}

pub(super) fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn has_server_programs(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|p| is_executable(&dir.join(p)))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Refuses a data directory written by another major version, whose files the installed
/// server cannot read.
pub(super) async fn check_server_version(
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

/// Major version from `postgres --version`, in the form `PG_VERSION` uses ("15", "9.6").
pub(super) fn server_major(version_output: &str) -> Option<String> {
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
