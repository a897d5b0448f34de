//! The real `opsd` binary against its own clock: schedules it cannot compute are refused by
//! `opsd check` with their location, and wall-clock steps (made by libfaketime, Debian
//! `faketime`, on the daemon alone: the machine's clock is never touched) follow cron's rule.
//!
//! libfaketime reads the offset from a file at every call (`FAKETIME_TIMESTAMP_FILE`,
//! `FAKETIME_NO_CACHE=1`), so a test steps the daemon's wall clock while it runs; the
//! monotonic clock stays real (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as it does on a real step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

/// Where Debian installs the thread-safe libfaketime.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

fn libfaketime() -> &'static str {
    LIBFAKETIME
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("libfaketime not found (looked in {LIBFAKETIME:?}); install it: apt-get install faketime")
        })
}

/// A daemon whose wall clock is `offset` (libfaketime syntax: "+0", "-30", "+1h") away from
/// the machine's, killed on drop.
struct FakeClockDaemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl FakeClockDaemon {
    fn start(config: &str) -> FakeClockDaemon {
        let lib = libfaketime();
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("jobs.toml"), config).expect("write jobs.toml");
        let mut d = FakeClockDaemon { child: None, dir };
        d.set_offset("+0");
        let child = Command::new(crate::util::OPSD)
            .args(["run", "--log-format", "text", "--config"])
            .arg(d.path("jobs.toml"))
            .arg("--state-dir")
            .arg(d.path("state"))
            .arg("--socket")
            .arg(d.path("opsd.sock"))
            .env("RUST_LOG", "info")
            .env("LD_PRELOAD", lib)
            .env("FAKETIME_TIMESTAMP_FILE", d.path("faketime"))
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.path("log")).expect("log file"))
            .spawn()
            .expect("start opsd");
        d.child = Some(child);
        d.wait_for(
            Duration::from_secs(15),
            || d.path("opsd.sock").exists(),
            "control socket",
        );
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Steps the daemon's wall clock to `offset` from the machine's (written whole, by rename).
    fn set_offset(&self, offset: &str) {
        let tmp = self.path("faketime.new");
        fs::write(&tmp, format!("{offset}\n")).expect("write offset");
        fs::rename(&tmp, self.path("faketime")).expect("install offset");
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    fn wait_for(&self, within: Duration, cond: impl Fn() -> bool, what: &str) {
        assert!(
            crate::util::poll_until(within, cond),
            "timed out waiting for {what}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for FakeClockDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path).unwrap_or_default().lines().count()
}

fn job(name: &str, schedule: &str, out: &Path) -> String {
    format!(
        "[jobs.{name}]\ntype = \"command\"\nschedule = \"{schedule}\"\ncommand = \"echo run >> {}\"\ntimezone = \"UTC\"\n",
        out.display()
    )
}

#[test]
fn intervals_too_long_to_schedule_fail_check_with_their_location() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("jobs.toml");
    for every in ["2305843009213693952s", "999999999999h", "9223372036854775s"] {
        fs::write(
            &cfg,
            format!(
                "[jobs.x]\ntype = \"command\"\nschedule = \"@every {every}\"\ncommand = \"true\"\n"
            ),
        )
        .expect("write jobs.toml");
        let out = Command::new(crate::util::OPSD)
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .expect("run opsd check");
        let err = String::from_utf8_lossy(&out.stderr);
        // 2, as for every invalid file (a panic was 101).
        assert_eq!(out.status.code(), Some(2), "@every {every}: {err}");
        assert!(
            err.contains("jobs.toml:3:12: `jobs.x.schedule`") && err.contains("longer than"),
            "@every {every}: {err}"
        );
        assert!(!err.contains("panicked"), "@every {every}: {err}");
    }
}

#[test]
fn a_backward_clock_step_does_not_silence_a_frequent_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ticks = dir.path().join("ticks");
    let d = FakeClockDaemon::start(&job("tick", "@every 1s", &ticks));
    d.wait_for(
        Duration::from_secs(15),
        || count_lines(&ticks) >= 2,
        "two ticks",
    );
    d.set_offset("-60");
    let before = count_lines(&ticks);
    // Before the fix the job was silent for the whole minute the clock went back.
    d.wait_for(
        Duration::from_secs(8),
        || count_lines(&ticks) >= before + 3,
        "three ticks after the clock went back a minute",
    );
    let log = d.log();
    assert!(log.contains("wall clock stepped back"), "{log}");
    assert!(!log.contains("overloaded"), "a step is not overload: {log}");
}

#[test]
fn a_forward_clock_step_runs_a_skipped_fixed_time_slot_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixed = dir.path().join("fixed");
    let ticks = dir.path().join("ticks");
    // A fixed time 30 minutes from now (UTC), which the one-hour step jumps over.
    let at = chrono::Utc::now() + chrono::TimeDelta::minutes(30);
    let schedule = at.format("%S %M %H * * *").to_string();
    let config = job("fixed", &schedule, &fixed) + &job("tick", "@every 1s", &ticks);
    let d = FakeClockDaemon::start(&config);
    d.wait_for(
        Duration::from_secs(15),
        || count_lines(&ticks) >= 1,
        "a tick",
    );
    d.set_offset("+1h");
    d.wait_for(
        Duration::from_secs(8),
        || count_lines(&fixed) >= 1,
        "the skipped fixed-time slot to run",
    );
    let before = count_lines(&ticks);
    d.wait_for(
        Duration::from_secs(8),
        || count_lines(&ticks) >= before + 2,
        "the frequent job to go on",
    );
    assert_eq!(count_lines(&fixed), 1, "the skipped slot runs once");
    let log = d.log();
    assert!(log.contains("wall clock stepped forward"), "{log}");
}

#[test]
fn a_stalled_daemon_reports_overload_not_a_clock_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ticks = dir.path().join("ticks");
    let d = FakeClockDaemon::start(&job("tick", "@every 1s", &ticks));
    d.wait_for(
        Duration::from_secs(15),
        || count_lines(&ticks) >= 2,
        "two ticks",
    );
    let pid = d.child.as_ref().expect("running").id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    // The fault itself: the daemon gets no CPU for 3 s, while both of its clocks go on, as
    // under heavy load. (Not a wait for a condition, so a fixed duration.)
    signal("-STOP");
    sleep(Duration::from_secs(3));
    signal("-CONT");
    d.wait_for(
        Duration::from_secs(8),
        || d.log().contains("scheduler overloaded"),
        "the overload report",
    );
    let before = count_lines(&ticks);
    d.wait_for(
        Duration::from_secs(8),
        || count_lines(&ticks) >= before + 2,
        "the job to go on after the stall",
    );
    let log = d.log();
    assert!(
        !log.contains("clock step") && !log.contains("wall clock stepped"),
        "a stall is not a clock step: {log}"
    );
    // The slots the stall missed are coalesced into one run and reported in one line for the
    // burst (before, each was fired at once, one run or one skip line each).
    let missed: Vec<&str> = log.lines().filter(|l| l.contains("were missed")).collect();
    assert_eq!(missed.len(), 1, "one line for the burst: {log}");
    assert!(
        missed[0].contains("are skipped (catch_up = \"skip\")"),
        "{log}"
    );
}
