//! Benchmark of a `/metrics` scrape with 1,000 jobs, printing figures (no assertions): the
//! CPU time of one scrape's work in the daemon, per scrape, over rounds. A scrape is
//! `Metrics::scrape` as the HTTP server calls it: it asks a loop task for the jobs changed
//! since its last answer, the loop copies their figures out of the job states with
//! `Changes::since` (the daemon's loop calls the same, as `Scheduler::changes_since`), and the
//! metrics apply them to their kept copy and render the answer: the kept text of every job as
//! shared pieces, and the daemon's own families. Counted too: the list of the pieces' bytes
//! the server hands to its vectored socket writes (`Answer::parts`), and dropping the answer.
//! Both tasks run on this thread (a current-thread runtime), so its CPU time is the whole
//! scrape; the socket writes of the 2.5 MB answer (the kernel copying the pieces) are not
//! included, as the write of the joined answer was not before. The runs that change the jobs
//! between scrapes (`admit` and `finish` on their states, as a run does) are not counted.
//! Three cases, as a job is copied and its series re-written only when its figures changed:
//! no job changed since the last scrape, a quarter of them changed (1,000 jobs every minute
//! scraped every 15 s), and every job changed (the worst case).
//! The machine's noise is measured in the same run: a fixed reference workload timed in each
//! round, whose spread across rounds says how much of the scrape's spread is the machine.
//!
//! `cargo bench --bench metrics_scrape` (target: under 1 ms of CPU per scrape).

// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;

use chrono::Utc;
use nix::time::{clock_gettime, ClockId};
use opsd::alert::{Dispatcher, DispatcherOptions};
use opsd::config::{JobConfig, Overlap};
use opsd::control::{server::Envelope, Request, Response};
use opsd::jobs::{Outcome, RunReport};
use opsd::metrics::{Metrics, Source};
use opsd::scheduler::{Changes, Finished, JobState};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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

/// A job as the daemon's loop holds it: its configuration, its state, when it was armed.
type Job = (Arc<JobConfig>, JobState, u64);

/// 1,000 command jobs, each with a next run and one finished run.
fn jobs() -> Vec<Job> {
    let text: String = (0..JOBS)
        .map(|i| {
            format!("[jobs.job-{i:04}]\ntype = \"command\"\nschedule = \"@every 1m\"\ncommand = [\"true\"]\n")
        })
        .collect();
    let cfg = opsd::config::parse(std::path::Path::new("jobs.toml"), &text).expect("valid jobs");
    let jobs: Vec<Job> = cfg
        .jobs
        .values()
        .map(|j| (Arc::clone(j), JobState::default(), opsd::generation::next()))
        .collect();
    for (i, (_, state, _)) in jobs.iter().enumerate() {
        state.set_next(Some(Utc::now() + chrono::TimeDelta::seconds(60)));
        run(state, i as u64);
    }
    jobs
}

/// One run of the job of `state`, as the runner counts it: admitted, then finished.
fn run(state: &JobState, n: u64) {
    state.admit(Overlap::Skip);
    state.finish(&Finished {
        run_id: format!("{n:012x}").into(),
        started: Utc::now(),
        duration: Duration::from_millis(1234),
        report: RunReport {
            outcome: Outcome::Success,
            exit_code: Some(0),
            signal: None,
            detail: None,
            output: vec!["done".into()],
        },
    });
}

/// The daemon loop's part: answers each ask with the jobs changed since, from `jobs` (a set
/// that does not change after it was armed).
async fn answer(jobs: Arc<Vec<Job>>, mut requests: mpsc::Receiver<Envelope>) {
    let set_changed = jobs.iter().map(|(_, _, armed)| *armed).max().unwrap_or(0);
    while let Some((request, reply)) = requests.recv().await {
        if let Request::Changes { since } = request {
            let all = jobs.iter().map(|(c, s, a)| (&**c, s, *a));
            let changes = Changes::since(since, set_changed, all);
            let _ = reply.send(Response::Changes { changes });
        }
    }
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

/// CPU per scrape of `metrics` over `jobs` with `changed` jobs run before each, per round.
fn measure(
    rt: &tokio::runtime::Runtime,
    metrics: &Metrics,
    source: &Source,
    jobs: &[Job],
    changed: Changed,
    refs: &mut Vec<Duration>,
) -> Vec<Duration> {
    let mut scrapes = Vec::new();
    let mut n = 0u64;
    for _ in 0..ROUNDS {
        let mut spent = Duration::ZERO;
        for _ in 0..PER_ROUND {
            n += 1;
            if let Changed::OneIn(every) = changed {
                let phase = n as usize % every;
                for (_, state, _) in jobs.iter().skip(phase).step_by(every) {
                    run(state, n);
                }
            }
            let start = cpu();
            let answer = rt.block_on(metrics.scrape(source)).expect("an answer");
            black_box(answer.parts());
            drop(answer);
            spent += cpu() - start;
        }
        scrapes.push(spent / PER_ROUND as u32);
        let start = cpu();
        black_box(reference());
        refs.push(cpu() - start);
    }
    scrapes
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let jobs = Arc::new(jobs());
    let (to_loop, requests) = mpsc::channel(16);
    rt.spawn(answer(Arc::clone(&jobs), requests));
    let alerts = rt
        .block_on(async { Dispatcher::new(&BTreeMap::new(), DispatcherOptions::default()) })
        .expect("no sinks");
    let source = Source::new(to_loop, alerts);
    let metrics = Metrics::new(Utc::now());
    let body = rt
        .block_on(metrics.scrape(&source))
        .expect("an answer")
        .text();
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
        let (min, median, max) = spread(measure(&rt, &metrics, &source, &jobs, changed, &mut refs));
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
