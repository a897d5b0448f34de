//! End-to-end tests of the `tls` job type on the real `opsd` binary: `opsd run-job` against real
//! `openssl s_server` processes on 127.0.0.1 with a certificate from a test CA made here by the
//! openssl CLI (passed as the job's `ca_file`), and `opsd check` on a broken tls job.
//!
//! Self-contained: the openssl helpers of `src/tls/tests.rs` are `#[cfg(test)]` in the library
//! and so not visible here; this file copies the minimum (one CA, one leaf, `s_server`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The install line a test prints when openssl is missing.
const INSTALL: &str = "install it with `apt-get install openssl` (.ci/setup)";

/// Runs `openssl` with `args` in `dir`; fails the test with the install line when it is missing.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a leaf it signed (`leaf.pem`, `leaf.key`) for localhost and
/// 127.0.0.1, valid 90 days, in `dir`.
fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "[leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write ext.cnf");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "3650"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=opsd e2e CA",
    ]);
    openssl(dir, &ca);
    let mut req = vec!["req", "-new", "-nodes"];
    req.extend(ec);
    req.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &req);
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
            "90",
            "-set_serial",
            "0x7001",
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
    /// Starts `openssl s_server` with the leaf of `dir` and `flags`, and waits until it accepts
    /// connections (another port is tried when the one picked was taken meanwhile).
    fn start(dir: &Path, flags: &[&str]) -> Server {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let log = dir.join(format!("s_server-{port}.log"));
            let child = Command::new("openssl")
                .arg("s_server")
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(dir.join("leaf.pem"))
                .arg("-key")
                .arg(dir.join("leaf.key"))
                .args(["-www", "-quiet"])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("s_server log"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"));
            let mut server = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    last_error = format!(
                        "s_server exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "s_server did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("s_server did not start: {last_error}");
    }

    /// The target as a job lists it.
    fn target(&self) -> String {
        format!("127.0.0.1:{} sni=localhost", self.port)
    }
}

/// Runs `opsd ARGS --config CONFIG` (for `run-job`, with text logs and a state directory
/// beside the config).
fn opsd(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsd"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    if args.first() == Some(&"run-job") {
        let state: PathBuf = config.with_file_name("state");
        cmd.args(["--log-format", "text", "--state-dir"]).arg(state);
    }
    cmd.output().expect("run opsd")
}

#[test]
fn run_job_passes_a_tls13_and_12_server_and_fails_a_tls12_only_one_with_the_table() {
    let dir = tempfile::tempdir().expect("temporary directory");
    make_pki(dir.path());
    let modern = Server::start(dir.path(), &[]);
    let old = Server::start(dir.path(), &["-tls1_2"]);
    let ca = dir.path().join("ca.pem");
    let config = dir.path().join("jobs.toml");
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(
        &config,
        format!(
            "[alerts.capture]\ntype = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n\n\
             [jobs.modern]\ntype = \"tls\"\nschedule = \"0 0 9 * * *\"\ntargets = [\"{}\"]\n\
             ca_file = \"{}\"\nprobe_timeout = \"20s\"\n\n\
             [jobs.mixed]\ntype = \"tls\"\nschedule = \"0 0 9 * * *\"\ntargets = [\"{}\", \"{}\"]\n\
             expect = {{ tls13 = true, tls12 = true, legacy = false }}\nwarn_days = 21\n\
             ca_file = \"{}\"\nprobe_timeout = \"20s\"\nalert = [\"capture\"]\n",
            alerts.display(),
            alerts.display(),
            modern.target(),
            ca.display(),
            modern.target(),
            old.target(),
            ca.display()
        ),
    )
    .expect("write jobs.toml");

    let out = opsd(&["run-job", "modern"], &config);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a heading and one row:\n{stdout}");
    assert!(
        lines[0].starts_with("TARGET") && lines[0].ends_with("VERDICT"),
        "{stdout}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // TARGET (two words: address and sni=), 1.3, 1.2, 1.1, 1.0, CIPHER, DAYS, ISSUER..., VERDICT
    assert_eq!(
        &row[..6],
        [
            &format!("127.0.0.1:{}", modern.port),
            "sni=localhost",
            "yes",
            "yes",
            "no",
            "no"
        ],
        "{stdout}"
    );
    assert!(row[6].starts_with("TLS13_"), "{stdout}");
    assert!(matches!(row[7], "89" | "90"), "days left: {stdout}");
    assert!(
        lines[1].contains("opsd e2e CA") && lines[1].ends_with("ok"),
        "{stdout}"
    );
    assert!(stderr.contains("modern: success"), "{stderr}");
    assert!(stderr.contains("1 target pass"), "{stderr}");
    assert!(
        stderr.contains(&format!("modern: tls {}: ok", modern.target())),
        "one event per target: {stderr}"
    );

    let out = opsd(&["run-job", "mixed"], &config);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let old_row = stdout
        .lines()
        .find(|l| l.starts_with(&old.target()))
        .unwrap_or_else(|| panic!("no row for {}:\n{stdout}", old.target()));
    assert!(old_row.contains("  no   yes  no   no"), "{stdout}");
    assert!(old_row.ends_with("TLS 1.3 not offered"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "mixed: failed: 1 of 2 targets failed: {} (TLS 1.3 not offered)",
            old.target()
        )),
        "{stderr}"
    );
    let event = stderr
        .lines()
        .find(|l| l.contains(&format!("mixed: tls {}: TLS 1.3 not offered", old.target())))
        .unwrap_or_else(|| panic!("no event for the failing target:\n{stderr}"));
    assert!(
        event.contains("ERROR")
            && event.contains("rule=\"tls_version\"")
            && event.contains(&format!("target=\"{}\"", old.target())),
        "{event}"
    );
    // One alert for the failing target (run-job waits for the sinks before it exits), beside
    // the run's own `run_failed`.
    let sent = std::fs::read_to_string(&alerts).unwrap_or_default();
    let rules: Vec<(String, String, String)> = sent
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("an alert is JSON");
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (field("rule"), field("severity"), field("summary"))
        })
        .collect();
    let tls_alerts: Vec<_> = rules
        .iter()
        .filter(|(r, _, _)| r.starts_with("tls_"))
        .collect();
    assert_eq!(
        tls_alerts,
        [&(
            "tls_version".to_string(),
            "high".to_string(),
            format!("{}: TLS 1.3 not offered", old.target())
        )],
        "{sent}"
    );
    assert!(rules.iter().any(|(r, _, _)| r == "run_failed"), "{sent}");
}

#[test]
fn check_locates_each_error_of_a_broken_tls_job() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        "[jobs.sites]\ntype = \"tls\"\nschedule = \"@daily\"\n\
         targets = [\"www.example.com:443\", \"www.example.com\"]\n\
         expect = { tls13 = true, tls14 = true }\nwarn_days = 0\n",
    )
    .expect("write jobs.toml");
    let out = opsd(&["check"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let file = config.display().to_string();
    for located in [
        format!("{file}:4:35: `jobs.sites.targets`: target \"www.example.com\" has no port"),
        format!("{file}:5:26: `jobs.sites.expect.tls14`: unknown key in expect (known: tls13, tls12, legacy); did you mean `tls12`?"),
        format!("{file}:6:13: `jobs.sites.warn_days`: warn_days must be"),
    ] {
        assert!(stderr.contains(&located), "{located:?} not in:\n{stderr}");
    }
}
