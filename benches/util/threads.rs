//! Wake-ups (context switches) and CPU time of every thread of a process, read from /proc and
//! added up thread by thread across samples. Why per thread: summing the threads alive at two
//! instants and subtracting undercounts (and can go negative) when a thread exits in between,
//! as tokio's blocking-pool threads do; here an exiting thread loses at most what it did since
//! the last sample, and a thread born in the window counts from zero. Reading /proc wakes
//! nothing in the process measured.

use std::collections::HashMap;
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often [`Tally::over`] samples, bounding what an exiting thread can lose.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Running totals of a process's threads since the tally started.
pub struct Tally {
    /// The process measured.
    pid: u32,
    /// Each thread's (switches, CPU ns) at the last sample.
    last: HashMap<u32, (u64, u64)>,
    /// Context switches (voluntary and not) since the start.
    pub switches: u64,
    /// CPU nanoseconds since the start.
    pub cpu_ns: u64,
}

impl Tally {
    /// A tally of `pid` from now: its threads' counts so far are the baseline.
    pub fn start(pid: u32) -> Tally {
        Tally {
            pid,
            last: read(pid),
            switches: 0,
            cpu_ns: 0,
        }
    }

    /// Adds what each thread did since the last sample (a new thread: all it did).
    pub fn sample(&mut self) {
        let now = read(self.pid);
        for (tid, &(sw, cpu)) in &now {
            let (sw0, cpu0) = self.last.get(tid).copied().unwrap_or((0, 0));
            self.switches += sw.saturating_sub(sw0);
            self.cpu_ns += cpu.saturating_sub(cpu0);
        }
        self.last = now;
    }

    /// The totals of `pid` over `window`, sampled every [`SAMPLE_EVERY`].
    pub fn over(pid: u32, window: Duration) -> Tally {
        let mut t = Tally::start(pid);
        let end = Instant::now() + window;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            sleep(left.min(SAMPLE_EVERY));
            t.sample();
        }
        t
    }
}

/// Each thread's (context switches, CPU ns) now; empty once the process is gone.
fn read(pid: u32) -> HashMap<u32, (u64, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum();
        let schedstat = fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let cpu = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.insert(tid, (switches, cpu));
    }
    out
}
