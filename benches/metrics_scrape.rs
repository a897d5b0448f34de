//! Benchmark of a `/metrics` scrape with 1,000 jobs, printing figures (no assertions): the
//! CPU time of one scrape's work in the daemon (the job states copied out of the loop, as
//! `opsd status` gets them, and rendered with the sinks' counters), per scrape, over rounds.
//! Three cases, as a job's series are re-written only when its figures changed: no job
//! changed since the last scrape, a quarter of them changed (1,000 jobs every minute scraped
//! every 15 s), and every job changed (the worst case).
//! The machine's noise is measured in the same run: a fixed reference workload timed in each
//! round, whose spread across rounds says how much of the scrape's spread is the machine.
//!
//! `cargo bench --bench metrics_scrape` (target: under 1 ms of CPU per scrape).

// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;

use chrono::{TimeDelta, Utc};
use nix::time::{clock_gettime, ClockId};
use opsd::alert::SinkStats;
use opsd::jobs::Outcome;
use opsd::metrics::{Metrics, Snapshot};
use opsd::scheduler::{JobStatus, LastRun, RunCounts};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

/// Jobs in the snapshot.
const JOBS: usize = 1_000;
/// Rounds measured, and scrapes per round.
const ROUNDS: usize = 20;
const PER_ROUND: usize = 25;

/// This thread's CPU time so far.
fn cpu() -> Duration {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// 1,000 jobs that have all run, with a last run, a last success and a next run.
fn jobs() -> Vec<JobStatus> {
    let now = Utc::now();
    (0..JOBS)
        .map(|i| JobStatus {
            name: format!("job-{i:04}"),
            job_type: "command".into(),
            schedule: Some("@every 1m".into()),
            timezone: Some("UTC".into()),
            enabled: true,
            next: Some(now + TimeDelta::seconds(60)),
            last: Some(LastRun {
                run_id: format!("{i:012x}"),
                started: now,
                duration_ms: 1234,
                outcome: Outcome::Success,
                detail: None,
                output: vec!["done".into()],
            }),
            last_success: Some(now),
            runs: RunCounts {
                success: 1000 + i as u64,
                failed: 3,
                ..RunCounts::default()
            },
            running: 0,
            broken: None,
            live: None,
        })
        .collect()
}

/// The reference workload: a fixed amount of CPU-bound work.
fn reference() -> u64 {
    let mut v: Vec<u64> = (0..20_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Min, median and max of `d` ([`stats::spread`]; zero if empty).
fn spread(d: Vec<Duration>) -> (Duration, Duration, Duration) {
    let s = stats::spread(d).unwrap_or_default();
    (s.min, s.median, s.max)
}

/// Which jobs change before each scrape: none, one in `n`, or all.
#[derive(Clone, Copy)]
enum Changed {
    None,
    OneIn(usize),
}

/// CPU per scrape of `metrics` over `jobs` with `changed` jobs changed before each, per round.
/// The changes are made to `jobs` itself, so a job changed before one scrape stays as it is
/// for the next (changing a copy made every job changed last time look changed again, and
/// "one in four" measured one in two).
fn measure(
    metrics: &Metrics,
    jobs: &mut [JobStatus],
    sinks: &BTreeMap<String, SinkStats>,
    changed: Changed,
    refs: &mut Vec<Duration>,
) -> Vec<Duration> {
    let mut scrapes = Vec::new();
    let mut n = 0u64;
    for _ in 0..ROUNDS {
        let start = cpu();
        for _ in 0..PER_ROUND {
            n += 1;
            if let Changed::OneIn(every) = changed {
                let phase = n as usize % every;
                for job in jobs.iter_mut().skip(phase).step_by(every) {
                    job.runs.success += 1;
                }
            }
            let snapshot = Snapshot {
                jobs: black_box(&*jobs).to_vec(),
                sinks: sinks.clone(),
            };
            black_box(metrics.render(snapshot));
        }
        scrapes.push((cpu() - start) / PER_ROUND as u32);
        let start = cpu();
        black_box(reference());
        refs.push(cpu() - start);
    }
    scrapes
}

fn main() {
    let mut jobs = jobs();
    let sinks: BTreeMap<String, SinkStats> =
        [("ops-webhook".to_string(), SinkStats::default())].into();
    let metrics = Metrics::new(Utc::now());
    let body = metrics.render(Snapshot {
        jobs: jobs.clone(),
        sinks: sinks.clone(),
    });
    let mut refs = Vec::new();
    println!(
        "scrape with {JOBS} jobs ({} series, {} KiB), CPU per scrape (target < 1 ms):",
        body.lines().filter(|l| !l.starts_with('#')).count(),
        body.len() / 1024,
    );
    for (what, changed) in [
        ("no job changed", Changed::None),
        ("1 job in 4 changed", Changed::OneIn(4)),
        ("every job changed", Changed::OneIn(1)),
    ] {
        let (min, median, max) = spread(measure(&metrics, &mut jobs, &sinks, changed, &mut refs));
        println!(
            "  {what}: min {:.3} ms, median {:.3} ms, max {:.3} ms",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    let (rmin, rmedian, rmax) = spread(refs);
    println!(
        "machine noise (reference workload, same rounds): min {:.3} ms, median {:.3} ms, max {:.3} ms ({:+.0} % max over median)",
        rmin.as_secs_f64() * 1e3,
        rmedian.as_secs_f64() * 1e3,
        rmax.as_secs_f64() * 1e3,
        (rmax.as_secs_f64() / rmedian.as_secs_f64() - 1.0) * 100.0
    );
}
