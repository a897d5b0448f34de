//! Benchmark of the tls job, printing figures (no assertions): `opsd run-job` on a job of 100
//! targets (wall time, time per target, peak RSS from `/usr/bin/time`), beside a job of one
//! target run several times, which is the machine's noise and the fixed cost of a run (process
//! start, the trust store, the log).
//!
//! The targets are 10 `openssl s_server` processes on loopback ports, each named by 10 SNI names
//! (`site-N.bench.test`, one wildcard certificate of a CA made here and passed as `ca_file`), so
//! 100 targets cost 10 processes, not 100. `s_server` answers one connection at a time, so this
//! is also a measure of the servers; every probe must pass for the figures to be printed.
//!
//! `cargo bench --bench tls_probe` (release) or, sharing the tests' debug build,
//! `cargo test --bench tls_probe` (what the README's figure used). `OPSD_BENCH_RUNS` sets how
//! many times the 100-target job runs (default 3; the one-target job runs twice as often).

// The tests' openssl scaffolding (the PKI and s_server); the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/util/openssl.rs"]
mod openssl;
// Each bench uses its part of the shared helpers.
#[allow(dead_code)]
#[path = "util/stats.rs"]
mod stats;

use openssl::Server;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// openssl s_server processes.
const SERVERS: usize = 10;
/// SNI names per server.
const NAMES: usize = 10;

/// A CA (`ca.pem`) and a leaf for `*.bench.test` (`leaf.pem`, `leaf.key`) in `dir`.
fn pki(dir: &Path) {
    openssl::ca(dir, "ca", "/CN=bench CA", "30");
    fs::write(
        dir.join("ext.cnf"),
        "[leaf]\nsubjectAltName = DNS:*.bench.test\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl::Cert {
        name: "leaf",
        subject: "/CN=bench leaf",
        key: &openssl::EC,
        issuer: "ca",
        days: "30",
        serial: "7",
        extensions: ("ext.cnf", "leaf"),
    }
    .make(dir);
}

/// An `openssl s_server` for the leaf of [`pki`] on a free loopback port.
fn server(dir: &Path) -> Server {
    Server::serve(&dir.join("leaf.pem"), &dir.join("leaf.key"), None, &[], dir)
}

/// One `opsd run-job JOB` under `/usr/bin/time`: (wall seconds, peak RSS in KiB).
fn run_job(dir: &Path, job: &str) -> (f64, u64) {
    let figures = dir.join("time.out");
    let out = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&figures)
        .args(["-f", "%e %M"])
        .arg(env!("CARGO_BIN_EXE_opsd"))
        .args(["run-job", job, "--log-format", "text", "--config"])
        .arg(dir.join("jobs.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time (apt-get install time)");
    assert!(
        out.status.success(),
        "{job} did not pass:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&figures).expect("time's figures");
    let mut words = text.split_whitespace();
    let wall = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(f64::NAN);
    let rss = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    (wall, rss)
}

fn main() {
    let runs: usize = std::env::var("OPSD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    pki(d);
    let servers: Vec<Server> = (0..SERVERS).map(|_| server(d)).collect();
    let targets: Vec<String> = servers
        .iter()
        .flat_map(|s| {
            (0..NAMES).map(move |n| format!("\"127.0.0.1:{} sni=site-{n}.bench.test\"", s.port))
        })
        .collect();
    let mut jobs = String::new();
    for (name, list) in [("hundred", &targets[..]), ("one", &targets[..1])] {
        let _ = write!(
            jobs,
            "[jobs.{name}]\ntype = \"tls\"\nschedule = \"@daily\"\ntargets = [{}]\n\
             ca_file = \"{}\"\nprobe_timeout = \"30s\"\n\n",
            list.join(", "),
            d.join("ca.pem").display()
        );
    }
    fs::write(d.join("jobs.toml"), jobs).expect("write jobs.toml");

    let one: Vec<(f64, u64)> = (0..2 * runs).map(|_| run_job(d, "one")).collect();
    let hundred: Vec<(f64, u64)> = (0..runs).map(|_| run_job(d, "hundred")).collect();
    let stats::Spread {
        min: one_min,
        median: one_wall,
        max: one_max,
    } = stats::spread(one.iter().map(|r| r.0).collect()).unwrap_or_default();
    let stats::Spread {
        min,
        median: wall,
        max,
    } = stats::spread(hundred.iter().map(|r| r.0).collect()).unwrap_or_default();
    let one_rss = one.iter().map(|r| r.1).max().unwrap_or(0);
    let rss = hundred.iter().map(|r| r.1).max().unwrap_or(0);
    println!(
        "tls probe, {} targets on {SERVERS} s_servers, concurrency 16 (default), {runs} runs:",
        targets.len()
    );
    println!(
        "  100 targets: wall {wall:.2} s (min {min:.2}, max {max:.2}), {:.1} ms per target \
         ({:.1} ms beyond the one-target run's), peak RSS {:.1} MB",
        wall * 1000.0 / 100.0,
        (wall - one_wall) * 1000.0 / 99.0,
        rss as f64 / 1024.0
    );
    println!(
        "  1 target (noise and fixed cost, {} runs): wall {one_wall:.2} s (min {one_min:.2}, \
         max {one_max:.2}), peak RSS {:.1} MB",
        2 * runs,
        one_rss as f64 / 1024.0
    );
    drop(servers);
}
