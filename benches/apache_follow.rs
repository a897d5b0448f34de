//! Benchmark of following Apache error logs in the real daemon (issue 15), printing figures (no
//! assertions), for `opsd` as built and, when `OPSD_BASELINE_BIN` names another build (say of
//! main before inotify), for that one too, in the same run:
//! 1. idle: 100 followed files, nothing written, 20 s: wake-ups per second (context switches
//!    of all threads, `/proc/PID/task/*/status`) and CPU;
//! 2. latency: a line appended → its alert POSTed to a webhook on 127.0.0.1, 200 samples, a
//!    line every 20–60 ms;
//! 3. load: 20,000 lines/s into one file for 10 s (one line in 100 alerts): lines read (from
//!    the run's final report), alerts received, CPU per line.
//!
//! The machine's own noise, measured in the same run: a plain thread sleeping to each 10 ms
//! instant (timer lateness), and the CPU an idle process of this bench uses.
//!
//! `cargo test --release --bench apache_follow --no-run` builds it (or `cargo bench`), then run
//! the binary; `OPSD_BASELINE_BIN=/path/to/old/opsd` adds the comparison.

// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;
#[path = "util/threads.rs"]
mod threads;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A daemon following logs, started from a generated job file in its own directory.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path, jobs_toml: &str) -> Daemon {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("jobs.toml"), jobs_toml).unwrap();
        let child = Command::new(bin)
            .args(["run", "--log-format", "text", "--config"])
            .arg(dir.join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(dir.join("opsd.sock"))
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("start opsd");
        let d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.log().contains("watching Apache error logs") {
            assert!(
                Instant::now() < deadline,
                "opsd did not start:\n{}",
                d.log()
            );
            sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGTERM, then waits; returns the log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self.log()
    }
}

fn line(n: u64, alert: bool) -> String {
    if alert {
        format!("[Wed Nov 25 10:00:00.000000 2026] [core:notice] [pid 9:tid 9] AH00052: child pid {n} exit signal Segmentation fault (11)\n")
    } else {
        format!("[Wed Nov 25 10:00:00.000000 2026] [core:info] [pid 9:tid 9] [client 203.0.113.9:{n}] AH00128: File does not exist: /srv/www/html/missing/{n}.png\n")
    }
}

/// A job following `glob`, alerting child crashes (keyed by pid) to a webhook at `addr`.
fn job(glob: &str, addr: Option<std::net::SocketAddr>) -> String {
    let hook = addr.map_or(String::new(), |a| {
        format!("[alerts.hook]\ntype = \"webhook\"\nurl = \"http://{a}/hook\"\n")
    });
    format!(
        "[jobs.lat]\ntype = \"apache_log\"\npaths = [{glob:?}]\n{}\
         apache_bin = \"/nonexistent/apachectl\"\ndisable_rules = [\"child_crash\"]\n\
         [[jobs.lat.rules]]\nid = \"crash\"\nregex = 'AH00052: child pid (\\d+) exit signal'\n\
         severity = \"high\"\ndedup = \"$1\"\ncooldown = \"1ms\"\n{hook}",
        if addr.is_some() {
            "alert = [\"hook\"]\n"
        } else {
            ""
        }
    )
}

/// Accepts webhook POSTs, sending each body's `dedup_key` and arrival time.
fn webhook(listener: TcpListener, tx: mpsc::Sender<(u64, Instant)>) {
    for sock in listener.incoming().flatten() {
        let mut r = BufReader::new(&sock);
        let mut length = 0usize;
        let mut l = String::new();
        while r.read_line(&mut l).unwrap_or(0) > 0 && l != "\r\n" {
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            l.clear();
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).is_err() {
            continue;
        }
        let at = Instant::now();
        let _ =
            (&sock).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(k) = v["dedup_key"].as_str().and_then(|k| k.parse().ok()) {
            let _ = tx.send((k, at));
        }
    }
}

/// The `p` percentile of ascending `sorted` ([`stats::percentile`]); NaN if empty.
fn pct(sorted: &[f64], p: f64) -> f64 {
    stats::percentile(sorted, p).unwrap_or(f64::NAN)
}

fn idle(name: &str, bin: &Path, dir: &Path) {
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).unwrap();
    for i in 0..100 {
        fs::write(logs.join(format!("site{i}-error.log")), line(i, false)).unwrap();
    }
    let d = Daemon::start(
        bin,
        &dir.join("d"),
        &job(&format!("{}/*-error.log", logs.display()), None),
    );
    sleep(Duration::from_secs(3));
    let pid = d.child.id();
    let idle = threads::Tally::over(pid, Duration::from_secs(20));
    d.stop();
    println!(
        "{name}: idle, 100 followed files, 20 s: {:.2} wake-ups/s, CPU {:.1} ms",
        idle.switches as f64 / 20.0,
        idle.cpu_ns as f64 / 1e6
    );
}

fn latency(name: &str, bin: &Path, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("latency-error.log");
    fs::write(&path, b"").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, arrivals) = mpsc::channel();
    std::thread::spawn(move || webhook(listener, tx));
    let d = Daemon::start(
        bin,
        &dir.join("d"),
        &job(&path.display().to_string(), Some(addr)),
    );
    sleep(Duration::from_millis(500));
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    const N: usize = 200;
    let mut sent = Vec::with_capacity(N);
    for n in 0..N {
        sleep(Duration::from_millis(20 + fastrand::u64(..40)));
        sent.push(Instant::now());
        f.write_all(line(n as u64, true).as_bytes()).unwrap();
    }
    let mut got = vec![None; N];
    for _ in 0..N {
        let (k, at) = arrivals
            .recv_timeout(Duration::from_secs(30))
            .expect("an alert never came");
        got[k as usize] = Some(at);
    }
    d.stop();
    let mut ms: Vec<f64> = sent
        .iter()
        .zip(got)
        .map(|(s, g)| (g.unwrap() - *s).as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: line appended -> webhook POST, {N} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0)
    );
}

fn load(name: &str, bin: &Path, dir: &Path) {
    const RATE: u64 = 20_000;
    const SECS: u64 = 10;
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("load-error.log");
    fs::write(&path, b"").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, arrivals) = mpsc::channel();
    std::thread::spawn(move || webhook(listener, tx));
    let d = Daemon::start(
        bin,
        &dir.join("d"),
        &job(&path.display().to_string(), Some(addr)),
    );
    let pid = d.child.id();
    let mut load = threads::Tally::start(pid);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while n < RATE * SECS {
        let due = start + Duration::from_micros(n * 1_000_000 / RATE);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            sleep(w);
        }
        // Ten lines per write, as Apache's buffered error log would not; each its own write
        // would measure the writer more than the reader.
        let mut chunk = String::new();
        for k in n..n + 10 {
            chunk.push_str(&line(k, k % 100 == 0));
        }
        f.write_all(chunk.as_bytes()).unwrap();
        n += 10;
        if n % 2_000 == 0 {
            // Every 0.1 s, so a pool thread that exits mid-run keeps its CPU in the figure.
            load.sample();
        }
    }
    let alerts = RATE * SECS / 100;
    let mut got = std::collections::BTreeSet::new();
    while got.len() < alerts as usize {
        match arrivals.recv_timeout(Duration::from_secs(20)) {
            Ok((k, _)) => {
                got.insert(k);
            }
            Err(_) => break,
        }
    }
    load.sample();
    let log = d.stop();
    let read = log
        .lines()
        .find_map(|l| l.split("stopped after ").nth(1))
        .and_then(|r| r.split(' ').next())
        .unwrap_or("?")
        .to_string();
    println!(
        "{name}: {RATE} lines/s for {SECS} s into one file: {n} written, {read} read, {}/{alerts} alerts received; CPU {:.0} ms, {:.2} µs per line",
        got.len(),
        load.cpu_ns as f64 / 1e6,
        load.cpu_ns as f64 / 1e3 / n as f64
    );
}

/// How late a plain thread wakes sleeping to each 10 ms instant, for 5 s.
fn timer_noise() {
    let end = Instant::now() + Duration::from_secs(5);
    let mut late = Vec::new();
    let origin = Instant::now();
    let mut slot = 1u32;
    while Instant::now() < end {
        let at = origin + Duration::from_millis(10) * slot;
        if let Some(w) = at.checked_duration_since(Instant::now()) {
            sleep(w);
        }
        late.push(Instant::now().duration_since(at).as_secs_f64() * 1e3);
        slot += 1;
    }
    late.sort_by(f64::total_cmp);
    println!(
        "machine noise: a thread sleeping to 10 ms slots for 5 s is late p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(&late, 0.5),
        pct(&late, 0.99),
        pct(&late, 1.0)
    );
}

fn main() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_opsd"));
    let mut bins = vec![("opsd (this build)", ours)];
    match std::env::var_os("OPSD_BASELINE_BIN") {
        Some(b) => bins.insert(0, ("baseline (OPSD_BASELINE_BIN)", PathBuf::from(b))),
        None => println!("OPSD_BASELINE_BIN unset: no baseline figures"),
    }
    let root = tempfile::tempdir().unwrap();
    timer_noise();
    for (i, (name, bin)) in bins.iter().enumerate() {
        let dir = root.path().join(i.to_string());
        idle(name, bin, &dir.join("idle"));
        latency(name, bin, &dir.join("latency"));
        load(name, bin, &dir.join("load"));
    }
    timer_noise();
}
