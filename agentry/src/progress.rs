//! Progress of a long command on stderr: done, rate and time left, on a line rewritten in place
//! on a terminal, a line every two seconds otherwise (logs, CI).

use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

/// How often progress is shown.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One long command's progress line.
pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: Option<u64>,
    started: Instant,
    last_shown: Instant,
    terminal: bool,
}

impl Progress {
    /// Progress of `label` counting `unit`, out of `total` when known.
    pub fn new(label: &'static str, unit: &'static str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            label,
            unit,
            total,
            started: now,
            last_shown: now,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `done` if the last line is old enough.
    pub fn show(&mut self, done: u64) {
        if self.last_shown.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_shown = Instant::now();
        let line = self.line(done);
        let mut stderr = std::io::stderr();
        let _ = if self.terminal {
            write!(stderr, "\r{line}")
        } else {
            writeln!(stderr, "{line}")
        };
    }

    /// Shows the last line.
    pub fn finish(&self, done: u64) {
        let line = self.line(done);
        let mut stderr = std::io::stderr();
        let _ = if self.terminal {
            writeln!(stderr, "\r{line}")
        } else {
            writeln!(stderr, "{line}")
        };
    }

    fn line(&self, done: u64) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / seconds;
        let unit = self.unit;
        match self.total {
            Some(total) => {
                let left = total.saturating_sub(done) as f64 / rate.max(1.0);
                format!(
                    "{}: {done}/{total} {unit}, {rate:.0} {unit}/s, {left:.0} s left",
                    self.label
                )
            }
            None => format!("{}: {done} {unit}, {rate:.0} {unit}/s", self.label),
        }
    }
}
