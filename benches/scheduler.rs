//! Benchmark of the scheduler, printing figures (no assertions). It runs the real `opsd` binary
//! on generated job files and reads its JSON log and `/proc`:
//! 1. how late runs start after their scheduled instant (p50 / p99 / max) with 1, 100 and
//!    1,000 `@every 1s` command jobs: the scheduler's part, from each "run started" event's
//!    `slot` and timestamp, and the whole way to a running process, from the time the job's
//!    own `date +%s.%N` prints (fork/exec of many processes at once on few cores shows there);
//! 2. the daemon's resident memory with 1,000 jobs (in that same run, every job firing);
//! 3. idle wake-ups per second, CPU time and RSS with one daily job, and RSS with 1,000;
//! 4. for scale, how late the machine itself wakes a plain thread sleeping to an instant
//!    (virtual machines add milliseconds now and then, and every figure above includes them).
//!
//! 5. spawn throughput with 1,000 `@every 1s` jobs (`OPSD_BENCH_SPAWN_JOBS`) against the
//!    machine's spawn ceiling, measured interleaved (ceiling, opsd, ceiling, ...; see
//!    [`spawn_rate`]), so that load from elsewhere on a shared machine cancels out of the
//!    ratio; the ratio is to what could run,
//!    the ceiling or, on a machine that starts more than 1,000 pairs a second, the 1,000 runs a
//!    second the jobs ask for.
//!
//! Every job runs the shell line `date +%s.%N` (`/bin/sh -c`: the `sh` + `date` pair of issue
//! 15). Each lateness row is measured between two probes of the machine alone, in the same run
//! (before the daemon starts and after it stops, as long as the row up to 10 s each), and
//! printed with the row's ratio to them, so a figure from a noisy machine can be read: its
//! timer noise (a plain thread sleeping to 10 ms slots, as in 4.: p50/p99/max) and its spawn
//! ceiling (a loop process posix_spawning the same `sh -c` line in a job's clean environment
//! and reaping it, with as many in flight as did best when tried at the start; see
//! [`ceiling_loop`]), and the load average after each probe.
//!
//! `OPSD_BENCH_SECS` sets how long each part measures (default 30); `OPSD_BENCH_PAIRS` and
//! `OPSD_BENCH_WINDOW` the spawn part's opsd windows (default 5 of 5 s), and
//! `OPSD_BENCH_SPAWN_JOBS` its job count (default 1,000; more than the machine's ceiling per
//! second saturates it, for the ratio to the ceiling itself). Arguments name the
//! parts to run (`lateness`, `spawn`, `idle`, `noise`; default all):
//! `cargo bench --bench scheduler -- spawn`.

// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;
#[path = "util/threads.rs"]
mod threads;

use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Runs before this long after start are not counted (process start-up, first timers).
const WARM_UP: Duration = Duration::from_secs(3);

/// A daemon started on a generated job file, with its JSON log in `dir/log`.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, jobs_toml: &str) -> Daemon {
        fs::create_dir_all(dir).expect("create bench dir");
        fs::write(dir.join("jobs.toml"), jobs_toml).expect("write jobs.toml");
        let log = fs::File::create(dir.join("log")).expect("create log");
        let child = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(["run", "--log-format", "json", "--config"])
            .arg(dir.join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(dir.join("opsd.sock"))
            .env("RUST_LOG", "info")
            // Runs get opsd's default LANG, as under a systemd with no locale configured.
            .env_remove("LANG")
            .env_remove("LC_ALL")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start opsd (cargo bench builds it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.join("opsd.sock").exists() {
            assert!(Instant::now() < deadline, "opsd did not start");
            sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for a clean exit; returns the JSON log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let _ = self.child.wait();
        fs::read_to_string(self.dir.join("log")).expect("read log")
    }
}

/// A `kB` figure from `/proc/PID/status` (VmRSS, VmHWM).
fn status_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How late each scheduled run started, and how late its process printed the time, in
/// microseconds, for slots at or after `from`.
fn lateness_us(log: &str, from: DateTime<Utc>) -> (Vec<i64>, Vec<i64>) {
    let parse = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut slots = std::collections::HashMap::new();
    let mut started = Vec::new();
    let mut ran = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let run_id = v["run_id"].as_str().unwrap_or_default().to_string();
        // Messages start with the job's name: `job-17: run started`, `job-17: 1764576000.001`.
        let message = v["message"].as_str().unwrap_or_default();
        let text = message.split_once(": ").map_or(message, |(_, t)| t);
        if text == "run started" && v["trigger"] == "schedule" {
            let (Some(slot), Some(at)) = (parse(&v["slot"]), parse(&v["timestamp"])) else {
                continue;
            };
            if slot >= from {
                started.push((at - slot).num_microseconds().unwrap_or(i64::MAX));
                slots.insert(run_id, slot);
            }
        } else if v["stream"] == "stdout" {
            let printed = text.trim().parse::<f64>().ok();
            if let (Some(slot), Some(secs)) = (slots.get(&run_id), printed) {
                let slot_us = slot.timestamp_micros() as f64;
                ran.push((secs * 1e6 - slot_us) as i64);
            }
        }
    }
    (stats::sorted(started), stats::sorted(ran))
}

/// The `p` percentile of `sorted_us` (microseconds, ascending) in milliseconds; NaN if empty.
fn ms(sorted_us: &[i64], p: f64) -> f64 {
    stats::percentile(sorted_us, p).map_or(f64::NAN, |us| us as f64 / 1000.0)
}

/// A job file of `n` command jobs, all on `schedule` running `command` (a TOML array).
fn jobs_toml(n: usize, schedule: &str, command: &str) -> String {
    let mut toml = String::from("[defaults]\ntimezone = \"UTC\"\nshutdown_timeout = \"5s\"\n");
    for i in 0..n {
        let _ = write!(
            toml,
            "\n[jobs.job-{i:04}]\ntype = \"command\"\nschedule = \"{schedule}\"\ncommand = {command}\n"
        );
    }
    toml
}

/// What every benchmarked job runs, and the spawn ceiling loop too: a shell line, so each run
/// is the `sh` + `date` pair of issue 15 (dash forks `date`; it does not exec it).
const SHELL_LINE: &str = "date +%s.%N";

/// The machine's own figures over one probe, with no daemon running: how late a plain
/// thread wakes (timer noise) and how many `sh -c SHELL_LINE` pairs it starts per second.
struct Machine {
    /// Lateness of a thread sleeping to each 10 ms instant, microseconds, ascending.
    noise_us: Vec<i64>,
    /// The spawn ceiling: pairs started and reaped per second (see [`ceiling_loop`]).
    ceiling: f64,
    /// The 1-minute load average when the probe ended.
    load: f64,
}

impl Machine {
    /// Timer noise for `secs`, then the spawn ceiling for `secs` with `in_flight` in flight.
    fn probe(secs: Duration, in_flight: usize) -> Machine {
        let noise_us = timer_lateness_us(secs);
        let ceiling = spawn_ceiling_with(secs, in_flight);
        Machine {
            noise_us,
            ceiling,
            load: load_average(),
        }
    }

    /// Timer noise p50 / p99 / max in milliseconds, as `a/b/c`.
    fn noise(&self) -> String {
        let n = &self.noise_us;
        format!("{:.3}/{:.3}/{:.3}", ms(n, 0.50), ms(n, 0.99), ms(n, 1.0))
    }
}

/// The 1-minute load average (`/proc/loadavg`), NaN if unreadable.
fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// N `@every 1s` jobs for `secs`, between two probes of the machine alone ([`Machine`], each
/// `secs` up to 10 s, `in_flight` for the ceiling): lateness percentiles, runs counted, RSS and
/// CPU, and their ratios to the machine's timer noise and spawn ceiling.
fn lateness(root: &Path, n: usize, secs: Duration, in_flight: usize) {
    let probe = secs.min(Duration::from_secs(10));
    let before = Machine::probe(probe, in_flight);
    let toml = jobs_toml(n, "@every 1s", &format!("{SHELL_LINE:?}"));
    let started = Utc::now();
    let d = Daemon::start(&root.join(format!("lateness-{n}")), &toml);
    sleep(WARM_UP);
    let cpu_ns = threads::Tally::over(d.pid(), secs).cpu_ns;
    let rss = status_kib(d.pid(), "VmRSS:");
    let hwm = status_kib(d.pid(), "VmHWM:");
    let from = started + chrono::Duration::from_std(WARM_UP).unwrap_or_default();
    let log = d.stop();
    let after = Machine::probe(probe, in_flight);
    let (late, ran) = lateness_us(&log, from);
    println!(
        "{n:>5} jobs  {:>6} runs  started late p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms  \
         | process ran p50 {:>7.3} ms  p99 {:>8.3} ms  | daemon CPU {:>5.1}%  RSS {:>5.1} MB (peak {:.1} MB)",
        late.len(),
        ms(&late, 0.50),
        ms(&late, 0.99),
        ms(&late, 1.0),
        ms(&ran, 0.50),
        ms(&ran, 0.99),
        cpu_ns as f64 / secs.as_nanos() as f64 * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    let noise = stats::sorted([&before.noise_us[..], &after.noise_us[..]].concat());
    let ceiling = (before.ceiling + after.ceiling) / 2.0;
    let runs_per_s = ran.len() as f64 / secs.as_secs_f64();
    println!(
        "       machine before / after: timer noise {} / {} ms, spawn ceiling {:.0} / {:.0} \
         sh+date/s, load {:.2} / {:.2}  | started p99 / noise p99 {:.2}  | processes \
         {runs_per_s:.0}/s = {:.1} % of the ceiling",
        before.noise(),
        after.noise(),
        before.ceiling,
        after.ceiling,
        before.load,
        after.load,
        ms(&late, 0.99) / ms(&noise, 0.99),
        runs_per_s / ceiling * 100.0,
    );
}

/// The argument this bench runs itself with to be a spawn ceiling loop: a process of its own,
/// so that it can wait for any child (`waitpid(-1)`) and reap only its own.
const CEILING_ARG: &str = "__spawn-ceiling";
/// How many ceiling loops may have in flight, tried in turn; the best is the ceiling.
const IN_FLIGHT: [usize; 4] = [2, 8, 32, 128];

/// How many `sh -c SHELL_LINE` pairs the machine starts and reaps per second over `secs`,
/// `in_flight` at a time: a separate loop process (see [`ceiling_loop`]).
fn spawn_ceiling_with(secs: Duration, in_flight: usize) -> f64 {
    let out = Command::new(std::env::current_exe().expect("the bench's own path"))
        .args([
            CEILING_ARG,
            &in_flight.to_string(),
            &secs.as_millis().to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the spawn ceiling loop");
    let done: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    done / secs.as_secs_f64()
}

/// Which of [`IN_FLIGHT`] gives the spawn ceiling loop its best rate, each tried for `each`:
/// (how many in flight, the pairs per second of each try).
fn best_in_flight(each: Duration) -> (usize, Vec<(usize, f64)>) {
    let tries: Vec<(usize, f64)> = IN_FLIGHT
        .iter()
        .map(|&k| (k, spawn_ceiling_with(each, k)))
        .collect();
    let best = tries
        .iter()
        .fold((1, 0.0), |a, &b| if b.1 > a.1 { b } else { a });
    (best.0, tries)
}

/// The spawn ceiling loop (this bench run with [`CEILING_ARG`] IN_FLIGHT MILLIS): keeps
/// `in_flight` `/bin/sh -c SHELL_LINE` running, each started by std's `Command` (posix_spawn,
/// as opsd starts a run: own process group, stdin from /dev/null) in the clean environment a
/// job gets (PATH, LANG, TZ), and reaped by `waitpid(-1)`; prints how many ended with status
/// 0 before the time was up.
fn ceiling_loop(in_flight: usize, secs: Duration) {
    use nix::sys::wait::{waitpid, WaitStatus};
    let end = Instant::now() + secs;
    let (mut live, mut done) = (0usize, 0u64);
    loop {
        while live < in_flight && Instant::now() < end {
            let spawned = Command::new("/bin/sh")
                .args(["-c", SHELL_LINE])
                .env_clear()
                .env("PATH", opsd::process::env::DEFAULT_PATH)
                .env("LANG", opsd::process::env::DEFAULT_LANG)
                .env("TZ", "UTC")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            match spawned {
                // Dropping a std Child neither kills nor waits: waitpid(-1) below reaps it.
                Ok(child) => drop(child),
                Err(e) => panic!("spawn /bin/sh: {e}"),
            }
            live += 1;
        }
        if live == 0 {
            break;
        }
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                live -= 1;
                done += u64::from(code == 0 && Instant::now() < end);
            }
            Ok(WaitStatus::Signaled(..)) => live -= 1,
            Ok(_) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
    }
    println!("{done}");
}

/// The daemon's children that have not ended yet (zombies it has not reaped do not count).
fn live_children(pid: u32) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| {
            let stat = fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            state.is_some_and(|s| s != 'Z')
        })
        .count()
}

/// Reloads the daemon with `jobs_toml` (`opsd reload`, which answers once it is applied);
/// with no jobs, then waits (at most 10 s) until the processes it had started have ended, so
/// that a ceiling window has the machine alone. A reload, not a SIGSTOP: a stopped daemon
/// would come back with every timer a few slots behind, and the catching up would be
/// counted in the next opsd window.
fn reload(d: &Daemon, jobs_toml: &str) {
    fs::write(d.dir.join("jobs.toml"), jobs_toml).expect("write jobs.toml");
    let ok = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .arg("reload")
        .arg("--socket")
        .arg(d.dir.join("opsd.sock"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "opsd reload failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_children(d.pid()) > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10));
    }
}

/// How long after the jobs are loaded again an opsd window starts (first slots, first runs).
const SETTLE: Duration = Duration::from_millis(1500);

/// Throughput of `n` `@every 1s` jobs running `sh -c SHELL_LINE` against the machine's spawn
/// ceiling, interleaved so that load from elsewhere cancels out: ceiling `window`, opsd
/// `window`, ceiling `window`, ... (`pairs` opsd windows, each between two ceiling windows,
/// during which the daemon runs with no jobs). Each pair's ratio is the opsd window's
/// processes run per second (counted by the time each process printed) over what could run:
/// the mean of the ceilings either side of it, or `n` per second when that is lower (`n`
/// one-second jobs ask for no more); the median of the ratios is the figure, printed with the
/// median ratio to the ceiling itself.
fn spawn_rate(root: &Path, n: usize, pairs: usize, window: Duration) {
    let toml = jobs_toml(n, "@every 1s", &format!("{SHELL_LINE:?}"));
    let none = jobs_toml(0, "", "");
    let d = Daemon::start(&root.join(format!("spawn-{n}")), &toml);
    sleep(WARM_UP);
    reload(&d, &none);
    let tries: Vec<(usize, f64)> = IN_FLIGHT
        .iter()
        .map(|&k| (k, spawn_ceiling_with(Duration::from_secs(2), k)))
        .collect();
    let in_flight = tries
        .iter()
        .fold((1, 0.0), |a, &b| if b.1 > a.1 { b } else { a })
        .0;
    let mut ceilings = vec![spawn_ceiling_with(window, in_flight)];
    let mut windows = Vec::new();
    for _ in 0..pairs {
        reload(&d, &toml);
        sleep(SETTLE);
        let t0 = Utc::now();
        let cpu_ns = threads::Tally::over(d.pid(), window).cpu_ns;
        let t1 = Utc::now();
        windows.push((t0, t1, cpu_ns));
        reload(&d, &none);
        ceilings.push(spawn_ceiling_with(window, in_flight));
    }
    let log = d.stop();
    let (ran, skipped) = printed_and_skipped(&log);
    println!(
        "spawn rate, {n} `@every 1s` jobs running sh -c {SHELL_LINE:?}, {} s windows; ceiling \
         loop tries (in flight: pairs/s) {}; uses {in_flight}",
        window.as_secs_f64(),
        tries
            .iter()
            .map(|(k, r)| format!("{k}: {r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut ratios = Vec::new();
    for (i, (t0, t1, cpu_ns)) in windows.iter().enumerate() {
        let secs = (*t1 - *t0).num_microseconds().unwrap_or(1) as f64 / 1e6;
        let runs = ran.iter().filter(|t| (*t0..*t1).contains(t)).count();
        let skips = skipped.iter().filter(|t| (*t0..*t1).contains(t)).count();
        let rate = runs as f64 / secs;
        let ceiling = (ceilings[i] + ceilings[i + 1]) / 2.0;
        // n one-second jobs cannot run more than n processes a second, however fast the
        // machine: what could run is the lower of the two.
        let possible = ceiling.min(n.max(1) as f64);
        let ratio = rate / possible * 100.0;
        ratios.push((ratio, rate / ceiling * 100.0));
        println!(
            "  pair {}: ceiling {:.0} / {:.0} pairs/s, opsd {rate:.0} processes/s = {ratio:.1} % \
             of the {possible:.0}/s that could run ({:.1} % of the ceiling) | daemon CPU {:.0} us \
             per run, {skips} runs skipped (overlap = skip)",
            i + 1,
            ceilings[i],
            ceilings[i + 1],
            rate / ceiling * 100.0,
            *cpu_ns as f64 / 1e3 / runs.max(1) as f64,
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        (at(v.len() / 2), at(0), at(v.len().saturating_sub(1)))
    };
    let (mid, low, high) = median(ratios.iter().map(|r| r.0).collect());
    let (raw, _, _) = median(ratios.iter().map(|r| r.1).collect());
    println!(
        "  ratio to what could run (the ceiling, or {n}/s when the ceiling is higher): median \
         {mid:.1} % (min {low:.1} %, max {high:.1} %, {} pairs); to the ceiling itself: median \
         {raw:.1} %",
        ratios.len(),
    );
}

/// The times the jobs' processes printed (their `date +%s.%N`), and the times runs were
/// skipped because the previous one was still going, from the daemon's JSON log.
fn printed_and_skipped(log: &str) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = v["message"].as_str().unwrap_or_default();
        let text = message.split_once(": ").map_or(message, |(_, t)| t);
        if v["stream"] == "stdout" {
            let printed = text.trim().parse::<f64>().ok();
            if let Some(t) = printed.and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64))
            {
                ran.push(t);
            }
        } else if v["outcome"] == "skipped" {
            let at = v["timestamp"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
            if let Some(t) = at {
                skipped.push(t.with_timezone(&Utc));
            }
        }
    }
    (ran, skipped)
}

/// `n` daily jobs, nothing due: wake-ups per second, CPU time and RSS over `secs`.
fn idle(root: &Path, n: usize, secs: Duration) {
    let toml = jobs_toml(n, "0 0 4 * * *", r#"["/bin/true"]"#);
    let d = Daemon::start(&root.join(format!("idle-{n}")), &toml);
    sleep(WARM_UP);
    let idle = threads::Tally::over(d.pid(), secs);
    let rss = status_kib(d.pid(), "VmRSS:");
    d.stop();
    println!(
        "idle, {n} daily job(s), {}s: {:.2} wake-ups/s, CPU {:.2} ms in all, RSS {:.1} MB",
        secs.as_secs(),
        idle.switches as f64 / secs.as_secs_f64(),
        idle.cpu_ns as f64 / 1e6,
        rss as f64 / 1024.0,
    );
}

/// How late a plain thread wakes when it sleeps to each 10 ms instant of the wall clock, for
/// `secs`: the machine's own timer noise.
fn timer_noise(secs: Duration) {
    let late = timer_lateness_us(secs);
    println!(
        "machine timer noise, a thread sleeping to each 10 ms instant for {}s: p50 {:.3} ms  \
         p99 {:.3} ms  max {:.3} ms",
        secs.as_secs(),
        ms(&late, 0.50),
        ms(&late, 0.99),
        ms(&late, 1.0),
    );
}

/// The lateness of a thread sleeping to each 10 ms instant of the wall clock for `secs`, in
/// microseconds, sorted.
fn timer_lateness_us(secs: Duration) -> Vec<i64> {
    let end = Instant::now() + secs;
    let mut late = Vec::new();
    while Instant::now() < end {
        let now = Utc::now();
        let instant =
            DateTime::from_timestamp_millis((now.timestamp_millis() / 10 + 1) * 10).unwrap_or(now);
        sleep((instant - now).to_std().unwrap_or_default());
        late.push(
            (Utc::now() - instant)
                .num_microseconds()
                .unwrap_or(i64::MAX),
        );
    }
    stats::sorted(late)
}

/// A whole number from the environment variable `name`, or `default`.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CEILING_ARG) {
        let in_flight = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
        let millis = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1000);
        ceiling_loop(in_flight, Duration::from_millis(millis));
        return;
    }
    let secs = Duration::from_secs(
        std::env::var("OPSD_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let root = tempfile::tempdir().expect("temp dir");
    println!(
        "opsd scheduler, {} s per part, {} cores; lateness = \"run started\" timestamp - slot",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if run("lateness") {
        let (in_flight, tries) = best_in_flight(Duration::from_secs(2));
        println!(
            "lateness, `@every 1s` jobs running sh -c {SHELL_LINE:?}, each row between two probes \
             of the machine alone (before / after: timer noise p50/p99/max of a thread sleeping \
             to 10 ms instants, spawn ceiling, load); the ratios use both probes (the p99 of \
             their noise samples together, the mean of the two ceilings); ceiling loop tries \
             (in flight: pairs/s) {}; uses {in_flight}",
            tries
                .iter()
                .map(|(k, r)| format!("{k}: {r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for n in [1, 100, 1000] {
            lateness(root.path(), n, secs, in_flight);
        }
    }
    if run("spawn") {
        let pairs = env_number("OPSD_BENCH_PAIRS", 5);
        let window = Duration::from_secs(env_number("OPSD_BENCH_WINDOW", 5) as u64);
        let jobs = env_number("OPSD_BENCH_SPAWN_JOBS", 1000);
        spawn_rate(root.path(), jobs, pairs, window);
    }
    if run("idle") {
        for n in [1, 1000] {
            idle(root.path(), n, secs);
        }
    }
    if run("noise") {
        timer_noise(secs);
    }
}
