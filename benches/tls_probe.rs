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

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// openssl s_server processes.
const SERVERS: usize = 10;
/// SNI names per server.
const NAMES: usize = 10;

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`ca.pem`) and a leaf for `*.bench.test` (`leaf.pem`, `leaf.key`) in `dir`.
fn pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "30", "-subj", "/CN=bench CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut req = vec!["req", "-new", "-subj", "/CN=bench leaf"];
    req.extend(ec);
    req.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(dir, &req);
    fs::write(
        dir.join("ext.cnf"),
        "[leaf]\nsubjectAltName = DNS:*.bench.test\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-days",
            "30",
            "-set_serial",
            "7",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
            "-out",
            "leaf.pem",
        ],
    );
}

/// An `openssl s_server` on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("leaf.pem"))
            .arg("-key")
            .arg(dir.join("leaf.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not listen");
            sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }
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

/// Median, min and max.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn main() {
    let runs: usize = std::env::var("OPSD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    pki(d);
    let servers: Vec<Server> = (0..SERVERS).map(|_| Server::start(d)).collect();
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
    let (one_wall, one_min, one_max) = spread(one.iter().map(|r| r.0).collect());
    let (wall, min, max) = spread(hundred.iter().map(|r| r.0).collect());
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
