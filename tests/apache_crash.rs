//! The real `opsd` binary watching a real Apache: a child killed with SIGSEGV is reported as a
//! `child_crash` event carrying Apache's own AH00052 line.

mod apache_support;

use apache_support::{segfault, Apache};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The opsd process, killed on drop when a test fails half-way.
struct Opsd(Child);

impl Drop for Opsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a stderr line containing `want`, failing after a generous deadline.
fn wait_for(lines: &mpsc::Receiver<String>, want: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(want) => return line,
            Ok(_) => {}
            Err(e) => panic!("opsd logged no line containing {want:?} ({e})"),
        }
    }
}

#[test]
fn segfaulting_child_is_reported_with_the_real_line() {
    let apache = Apache::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.apache-errors]\ntype = \"apache_log\"\npaths = [{:?}]\nalert = []\n",
            apache.dir.path().join("*error.log").display().to_string()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .args(["--log-format", "json", "run-job", "apache-errors"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let opsd = Opsd(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_for(&lines, "following");

    let victim = apache.children()[0];
    segfault(victim);
    let want = format!("AH00052: child pid {victim} exit signal Segmentation fault (11)");
    let line = wait_for(&lines, "child_crash");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "ERROR", "{line}");
    let text = event.to_string();
    assert!(text.contains(&want), "the event lacks {want:?}: {line}");
    assert!(text.contains("\"high\""), "severity is not high: {line}");
    assert!(text.contains("apache-errors"), "no job field: {line}");

    // Ctrl-C stops the watch cleanly and leaves a checkpoint.
    let mut opsd = opsd;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(opsd.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = opsd.0.wait().unwrap();
    assert!(status.success(), "opsd exited with {status}");
    let cp = std::fs::read_to_string(state.join("apache/apache-errors.json")).unwrap();
    assert!(cp.contains("error.log"), "{cp}");
}
