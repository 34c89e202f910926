//! What the machine did during a phase: how many of its cores were busy, and how much of that
//! was this bench process (the application, the clients, the fake servers), Postgres, the
//! kernel's interrupt handling (loopback TCP is mostly softirq, charged to no process), and
//! which other processes, from `/proc`. Benchmarks on a shared 2-core machine mean little
//! without it.

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// CPU counters at one moment.
pub struct CpuSnapshot {
    at: Instant,
    /// Every core's ticks (`/proc/stat`), busy and idle.
    total: u64,
    idle: u64,
    /// Interrupts and softirqs, all cores.
    interrupts: u64,
    /// Every process's `utime + stime` ticks, by pid, with its name. A process that exits
    /// during the phase (a short-lived Postgres backend, a compiler) takes its ticks with it.
    processes: HashMap<u32, (String, u64)>,
    load_average: String,
}

/// What a phase cost the machine, in cores.
#[derive(Clone)]
pub struct Usage {
    pub busy_cores: f64,
    pub cores: usize,
    pub own_cores: f64,
    /// The processes named `postgres` (the server and its backends).
    pub postgres_cores: f64,
    pub interrupt_cores: f64,
    /// The other processes that used the most, with their cores.
    pub others: Vec<(String, f64)>,
    pub load_before: String,
    pub load_after: String,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let (total, idle, interrupts) = machine_ticks();
        Self {
            at: Instant::now(),
            total,
            idle,
            interrupts,
            processes: processes(),
            load_average: load_average(),
        }
    }

    /// The usage from this snapshot until now.
    pub fn usage_until_now(&self) -> Usage {
        let now = Self::take();
        let seconds = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let total = now.total.saturating_sub(self.total).max(1) as f64;
        let share = |ticks: u64| ticks as f64 / total * cores as f64;
        let own_pid = std::process::id();
        let (mut own, mut postgres, mut others) = (0.0, 0.0, HashMap::<String, f64>::new());
        for (pid, (name, ticks)) in &now.processes {
            let before = self.processes.get(pid).map_or(0, |(_, ticks)| *ticks);
            let used = ticks.saturating_sub(before) as f64 / ticks_per_second() / seconds;
            match name.as_str() {
                _ if *pid == own_pid => own += used,
                "postgres" => postgres += used,
                _ => *others.entry(name.clone()).or_default() += used,
            }
        }
        let mut others: Vec<(String, f64)> = others.into_iter().filter(|(_, used)| *used >= 0.02).collect();
        others.sort_by(|a, b| b.1.total_cmp(&a.1));
        others.truncate(4);
        Usage {
            busy_cores: share(now.total - self.total) - share(now.idle.saturating_sub(self.idle)),
            cores,
            own_cores: own,
            postgres_cores: postgres,
            interrupt_cores: share(now.interrupts.saturating_sub(self.interrupts)),
            others,
            load_before: self.load_average.clone(),
            load_after: now.load_average,
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let others: Vec<String> = self
            .others
            .iter()
            .map(|(name, used)| format!("{name} {used:.2}"))
            .collect();
        write!(
            formatter,
            "{:.2} of {} cores busy (bench process {:.2}, Postgres {:.2}, interrupts {:.2}, others: {}); load average {} → {}",
            self.busy_cores,
            self.cores,
            self.own_cores,
            self.postgres_cores,
            self.interrupt_cores,
            if others.is_empty() {
                "none".to_owned()
            } else {
                others.join(", ")
            },
            self.load_before,
            self.load_after
        )
    }
}

/// The 1-minute load average now.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// All cores' ticks, the idle ones (idle + iowait), and the interrupts' (irq + softirq), from
/// the first line of `/proc/stat`.
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|field| field.parse().ok())
        .collect();
    let field = |index: usize| fields.get(index).copied().unwrap_or(0);
    (fields.iter().sum(), field(3) + field(4), field(5) + field(6))
}

/// `utime + stime` of `/proc/<pid>/stat`, and its command name.
fn stat_of(pid: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (before, after_name) = stat.rsplit_once(')')?;
    let name = before.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

/// Every process now, by pid.
fn processes() -> HashMap<u32, (String, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_of(&pid.to_string())?)))
        .collect()
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
