//! Postgres backends frozen with SIGSTOP, as a paused VM or a host gone without a reset would
//! leave them: the test's server runs on this machine, so its backends are processes here.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// How long a watchdog waits before it wakes a frozen backend itself: should the test process
/// be killed before its drop runs, no backend stays frozen (holding its transaction, and every
/// `CREATE DATABASE` of the other tests, which waits for it) for longer.
const WATCHDOG_SECONDS: u32 = 60;

/// Backends frozen with SIGSTOP, woken with SIGCONT when dropped (also when the test fails).
#[derive(Debug)]
pub struct FrozenBackends(Vec<i32>);

impl FrozenBackends {
    /// Freezes `pids`, each checked first to be a local `postgres` process, so that a server
    /// elsewhere never gets an unrelated local process stopped.
    pub fn freeze(pids: Vec<i32>) -> Self {
        for pid in &pids {
            let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            assert_eq!(
                command.trim(),
                "postgres",
                "backend {pid} is a local postgres process"
            );
        }
        let frozen = Self(pids);
        for pid in &frozen.0 {
            let watchdog = format!("(sleep {WATCHDOG_SECONDS}; kill -CONT {pid}) >/dev/null 2>&1 &");
            let started = Command::new("sh")
                .args(["-c", &watchdog])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // A group of its own: a test runner ending the test's group spares it.
                .process_group(0)
                .status()
                .expect("sh runs");
            assert!(started.success(), "the watchdog of backend {pid} started");
            assert!(signal("STOP", *pid), "kill -STOP {pid}");
        }
        frozen
    }

    /// The frozen backends' process ids.
    pub fn pids(&self) -> &[i32] {
        &self.0
    }
}

impl Drop for FrozenBackends {
    fn drop(&mut self) {
        for pid in &self.0 {
            // No panic here: this also runs while a failed test unwinds.
            if !signal("CONT", *pid) {
                eprintln!("could not wake backend {pid} with SIGCONT");
            }
        }
    }
}

/// `kill -<name> <pid>`; whether it succeeded.
fn signal(name: &str, pid: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}
