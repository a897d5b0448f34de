//! Benchmark of the Apache error-log watch, printing figures (no assertions):
//! 1. memory while following 100 files;
//! 2. latency from a line appended to its event being produced (poll interval 200 ms);
//! 3. throughput of read + parse + rule matching over a synthetic error log on one core, beside
//!    `grep -c -E` with the same patterns on the same file.
//!
//! `OPSD_BENCH_MB` sets the log size (default 200; the issue's figure is for 1024).

use opsd::apache::follow::{FollowedFile, Start};
use opsd::apache::rules::{builtin_rules, Dedup, LogEvent, Rule, RuleSet, Severity};
use opsd::apache::watch::{watch, WatchConfig, Watcher};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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

fn counting(pattern: &str) -> Rule {
    Rule {
        id: "n".into(),
        summary: String::new(),
        pattern: pattern.into(),
        severity: Severity::Info,
        count: 1,
        window: Duration::from_secs(1),
        cooldown: Duration::ZERO,
        dedup: Dedup::Template("$1".into()),
        escalate: None,
    }
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
        "memory: following {} files: RSS {} KiB before, {} KiB after ({} KiB for the watcher, {} events)",
        w.followed().count(),
        before,
        after,
        after.saturating_sub(before),
        events
    );
}

fn latency(dir: &Path) {
    let path = dir.join("latency-error.log");
    std::fs::write(&path, b"").unwrap();
    let rules = vec![counting(r"AH00052: child pid (\d+) exit signal")];
    let cfg = WatchConfig::new("bench", vec![path.display().to_string()], rules);
    let watcher = Watcher::new(cfg, dir.join("latency.json")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    const SAMPLES: usize = 150;
    let mut lat: Vec<Duration> = rt.block_on(async move {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<LogEvent>(1024);
        let task = tokio::spawn(watch(watcher, cancel.clone(), tx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let writer = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            let mut sent = Vec::new();
            for n in 0..SAMPLES {
                std::thread::sleep(Duration::from_millis(40 + fastrand::u64(..80)));
                let line = format!("{} [core:notice] [pid 9:tid 9] AH00052: child pid {n} exit signal Segmentation fault (11)\n", stamp(n as u64));
                sent.push(Instant::now());
                f.write_all(line.as_bytes()).unwrap();
            }
            sent
        });
        let mut got = vec![None; SAMPLES];
        for _ in 0..SAMPLES {
            let ev = rx.recv().await.unwrap();
            let n: usize = ev.dedup_key.unwrap().parse().unwrap();
            got[n] = Some(Instant::now());
        }
        let sent = writer.await.unwrap();
        cancel.cancel();
        task.await.unwrap().unwrap();
        sent.iter().zip(got).map(|(s, g)| g.unwrap() - *s).collect()
    });
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "latency: line appended -> event, {} samples, poll 200 ms: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat[lat.len() - 1]
    );
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
    let t = Instant::now();
    let out = Command::new("grep")
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
    f.read_new(&mut buf, &mut |p: &Path, chunk: &[u8]| {
        set.scan(chunk, p, &mut events);
        matched += events.len();
        events.clear();
    })
    .unwrap();
    let ours = t.elapsed();
    let mibs = |d: Duration| size as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "throughput: opsd read+parse+match {:.0} MiB/s ({matched} matches, {:?}); grep -c -E {:.0} MiB/s ({grep_count} lines, {:?}); opsd/grep = {:.2}",
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
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    memory_100_files(dir.path());
    latency(dir.path());
    throughput(dir.path(), mb);
}
