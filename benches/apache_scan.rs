//! Benchmark of the Apache error-log watch, printing figures (no assertions):
//! 1. memory while following 100 files: growth of this process's resident set (VmRSS) from just
//!    before the watcher is created to after 20 polls, each appending one line to every file;
//! 2. latency from a line appended to its alert record reaching a webhook sink, through the path
//!    the daemon uses (`jobs::apache::run`: watch → rules → alert dispatcher → webhook), with the
//!    default 200 ms poll interval, about 1,000 samples;
//! 3. throughput of read + parse + rule matching over a synthetic error log, pinned to one core
//!    (CPU 0, with `taskset`), beside `taskset -c 0 grep -c -E` with the same patterns on the
//!    same file.
//!
//! `OPSD_BENCH_MB` sets the log size (default 1024, the issue's figure).

// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;

use opsd::apache::follow::{FollowedFile, Start};
use opsd::apache::rules::{builtin_rules, Dedup, Rule, RuleSet};
use opsd::apache::watch::{WatchConfig, Watcher};
use opsd::jobs::{JobType, RunContext};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Latency samples.
const SAMPLES: usize = 1000;

/// The built-in patterns in POSIX ERE, for grep.
const GREP_PATTERNS: &[&str] = &[
    r"AH0005[12]: .*exit signal (Segmentation fault|Bus error|Abort(ed)?) ",
    r"AH00060: |AH00050: .*Apache is exiting",
    r"AH00484: |AH00161: |AH00286: ",
    r"AH03490: |AH00288: ",
    r"\[php[0-9]*:(error|crit)\].*PHP Fatal error:",
    r"zend_mm_heap corrupted",
    r"AH00072: |AH00015: |AH00016: ",
];

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn stamp(i: u64) -> String {
    format!(
        "[Wed Nov 25 {:02}:{:02}:{:02}.{:06} 2026]",
        (i / 3_600_000) % 24,
        (i / 60_000) % 60,
        (i / 1000) % 60,
        (i * 37) % 1_000_000
    )
}

/// Writes about `mb` MiB of realistic error-log lines; one line in 20,000 matches a rule.
fn generate(path: &Path, mb: u64) -> u64 {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut i = 0u64;
    let mut matching = 0u64;
    while written < mb << 20 {
        i += 1;
        let ts = stamp(i);
        let pid = 1000 + i % 5000;
        let line = match i % 20_000 {
            0 => {
                matching += 1;
                format!("{ts} [core:notice] [pid 900:tid 900] AH00052: child pid {pid} exit signal Segmentation fault (11)\n")
            }
            10_000 => {
                matching += 1;
                format!("{ts} [php:error] [pid {pid}:tid {pid}] [client 10.1.2.3:{pid}] PHP Fatal error:  Uncaught Error: Call to undefined function f{i}() in /srv/www/app/x{}.php:{}\n", i % 7, i % 300)
            }
            n if n % 5 == 0 => format!("{ts} [php:warn] [pid {pid}:tid {pid}] [client 10.1.2.3:{pid}] PHP Warning:  Undefined variable $x in /srv/www/app/index.php on line {}, referer: https://example.com/page/{i}\n", i % 400),
            n if n % 5 == 1 => format!("{ts} [ssl:info] [pid {pid}:tid {pid}] [client 10.9.8.7:{pid}] AH01964: Connection to child {} established (server www.example.com:443)\n", i % 64),
            n if n % 5 == 2 => format!("{ts} [authz_core:error] [pid {pid}:tid {pid}] [client 192.0.2.{}:{pid}] AH01630: client denied by server configuration: /srv/www/private/{i}\n", i % 250),
            n if n % 5 == 3 => format!("{ts} [proxy_fcgi:error] [pid {pid}:tid {pid}] [client 198.51.100.4:{pid}] AH01071: Got error 'Primary script unknown'\n"),
            _ => format!("{ts} [core:info] [pid {pid}:tid {pid}] [client 203.0.113.9:{pid}] AH00128: File does not exist: /srv/www/html/missing/{i}.png\n"),
        };
        w.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
    }
    w.flush().unwrap();
    matching
}

fn memory_100_files(dir: &Path) {
    let logs = dir.join("many");
    std::fs::create_dir(&logs).unwrap();
    for i in 0..100 {
        std::fs::write(
            logs.join(format!("site{i}-error.log")),
            stamp(i) + " [core:notice] start\n",
        )
        .unwrap();
    }
    let before = rss_kib();
    let mut cfg = WatchConfig::new(
        "bench",
        vec![format!("{}/*-error.log", logs.display())],
        builtin_rules(),
    );
    cfg.from_beginning = true;
    let mut w = Watcher::new(cfg, dir.join("many.json")).unwrap();
    let mut files: Vec<_> = (0..100)
        .map(|i| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(logs.join(format!("site{i}-error.log")))
                .unwrap()
        })
        .collect();
    let mut events = 0;
    for round in 0..20u64 {
        for f in &mut files {
            let line = stamp(round) + " [core:info] [pid 1:tid 1] [client 203.0.113.9:1] AH00128: File does not exist: /x\n";
            f.write_all(line.as_bytes()).unwrap();
        }
        events += w.poll().unwrap().len();
        w.save().unwrap();
    }
    let after = rss_kib();
    println!(
        "memory: following {} files (20 polls, one line appended to each file per poll): process VmRSS {} KiB before the watcher, {} KiB after, growth {} KiB ({} events)",
        w.followed().count(),
        before,
        after,
        after.saturating_sub(before),
        events
    );
}

/// Accepts webhook POSTs on `listener`, sending each body's `dedup_key` and arrival time.
fn webhook(listener: TcpListener, tx: mpsc::Sender<(String, Instant)>) {
    for sock in listener.incoming().flatten() {
        let mut r = BufReader::new(&sock);
        let mut length = 0usize;
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0u8; length];
        if r.read_exact(&mut body).is_err() {
            continue;
        }
        let at = Instant::now();
        let _ =
            (&sock).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(k) = v["dedup_key"].as_str() {
            let _ = tx.send((k.to_string(), at));
        }
    }
}

fn latency(dir: &Path) {
    let path = dir.join("latency-error.log");
    std::fs::write(&path, b"").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, arrivals) = mpsc::channel();
    std::thread::spawn(move || webhook(listener, tx));
    // A job as an operator would write it: one line, one alert (keyed by the child pid).
    let text = format!(
        "[jobs.lat]\ntype = \"apache_log\"\npaths = [{:?}]\nalert = [\"hook\"]\n\
         apache_bin = \"/nonexistent/apachectl\"\ndisable_rules = [\"child_crash\"]\n\
         [[jobs.lat.rules]]\nid = \"crash\"\nregex = 'AH00052: child pid (\\d+) exit signal'\n\
         severity = \"high\"\ndedup = \"$1\"\ncooldown = \"1ms\"\n\
         [alerts.hook]\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\n",
        path.display().to_string()
    );
    let cfg = opsd::config::parse(&dir.join("jobs.toml"), &text).unwrap();
    let JobType::ApacheLog(spec) = cfg.jobs["lat"].spec.clone() else {
        panic!("not an apache_log job")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let ctx = RunContext {
        job: "lat".into(),
        run_id: "bench".into(),
        cancel: cancel.clone(),
        state_dir: dir.join("state"),
        dry_run: false,
        foreground: false,
        kill_grace: Duration::from_secs(1),
        alerts: rt.block_on(async {
            opsd::alert::Dispatcher::new(&cfg.alerts, Default::default()).unwrap()
        }),
        alert_to: vec!["hook".to_string()].into(),
        live: Default::default(),
        fencing_token: None,
    };
    let job = rt.spawn(async move { opsd::jobs::apache::run(&spec, &ctx).await });
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let mut sent = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        std::thread::sleep(Duration::from_millis(20 + fastrand::u64(..40)));
        let line = format!("{} [core:notice] [pid 9:tid 9] AH00052: child pid {n} exit signal Segmentation fault (11)\n", stamp(n as u64));
        sent.push(Instant::now());
        f.write_all(line.as_bytes()).unwrap();
    }
    let mut got = vec![None; SAMPLES];
    for _ in 0..SAMPLES {
        let (key, at) = arrivals
            .recv_timeout(Duration::from_secs(30))
            .expect("an alert never reached the webhook");
        let n: usize = key.parse().unwrap();
        got[n] = Some(at);
    }
    cancel.cancel();
    rt.block_on(job).unwrap();
    let lat: Vec<Duration> = sent.iter().zip(got).map(|(s, g)| g.unwrap() - *s).collect();
    let lat = stats::sorted(lat);
    let pct = |p: f64| stats::percentile(&lat, p).unwrap_or_default();
    println!(
        "latency: line appended -> alert record POSTed to a webhook (jobs::apache::run, dispatcher, HTTP on 127.0.0.1), {} samples, poll 200 ms: p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

/// Pins this thread (the process's main thread) to CPU 0 with `taskset`.
fn pin_to_cpu0() {
    let status = Command::new("taskset")
        .args(["-c", "-p", "0", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset (util-linux) is needed to pin the throughput run to one core");
    assert!(status.success(), "taskset failed: {status}");
}

fn throughput(dir: &Path, mb: u64) {
    let path = dir.join("big-error.log");
    let t = Instant::now();
    let expected = generate(&path, mb);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "throughput: generated {:.0} MiB ({expected} matching lines) in {:?}",
        size as f64 / 1048576.0,
        t.elapsed()
    );

    let mut args = vec!["-c".to_string(), "-E".to_string()];
    for p in GREP_PATTERNS {
        args.push("-e".into());
        args.push(p.to_string());
    }
    args.push(path.display().to_string());
    // Warm the page cache for both.
    let _ = Command::new("cat")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status();
    pin_to_cpu0();
    let t = Instant::now();
    let out = Command::new("taskset")
        .args(["-c", "0", "grep"])
        .args(&args)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let grep_time = t.elapsed();
    let grep_count = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let mut rules: Vec<Rule> = builtin_rules();
    for r in &mut rules {
        r.cooldown = Duration::ZERO;
        r.escalate = None;
        r.dedup = Dedup::Rule;
    }
    let mut set = RuleSet::new(rules).unwrap();
    let t = Instant::now();
    let mut f = FollowedFile::open(&path, Start::Beginning).unwrap();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut matched = 0usize;
    f.read_new(&mut buf, &mut |p: &Path, _, chunk: &[u8]| {
        set.scan(chunk, p, &mut events);
        matched += events.len();
        events.clear();
    })
    .unwrap();
    let ours = t.elapsed();
    let mibs = |d: Duration| size as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "throughput (one core, CPU 0): opsd read+parse+match {:.0} MiB/s ({matched} matches, {:?}); grep -c -E {:.0} MiB/s ({grep_count} lines, {:?}); opsd/grep = {:.2}",
        mibs(ours),
        ours,
        mibs(grep_time),
        grep_time,
        grep_time.as_secs_f64() / ours.as_secs_f64()
    );
}

fn main() {
    let mb: u64 = std::env::var("OPSD_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    memory_100_files(dir.path());
    latency(dir.path());
    throughput(dir.path(), mb);
}
