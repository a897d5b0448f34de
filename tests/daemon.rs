//! End-to-end tests of the real `opsd` binary on temporary configurations: second-precision
//! firing, reload (good and bad file), overlap, timeouts, shutdown, control socket.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A daemon started on a temporary config, killed on drop.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The cgroup the daemon was started in, when a test made one for it.
    cgroup: Option<PathBuf>,
}

impl Daemon {
    fn start(config: &str) -> Daemon {
        Self::start_with(config, &[])
    }

    /// Starts a daemon whose own environment also holds `envs`.
    fn start_with(config: &str, envs: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("jobs.toml"), config).unwrap();
        Self::start_in(dir, envs)
    }

    /// Starts a daemon on `dir`'s job file and state directory.
    fn start_in(dir: tempfile::TempDir, envs: &[(&str, &str)]) -> Daemon {
        Self::start_in_cgroup(dir, envs, None)
    }

    /// Starts a daemon on `dir`'s files, inside cgroup `cgroup` when given (joined between
    /// fork and exec, so the daemon starts there as under a unit with `Delegate=yes`).
    fn start_in_cgroup(
        dir: tempfile::TempDir,
        envs: &[(&str, &str)],
        cgroup: Option<&Path>,
    ) -> Daemon {
        let mut cmd = Command::new(crate::util::OPSD);
        // Kept open until the spawn below has returned.
        let procs = cgroup.map(|cg| {
            fs::OpenOptions::new()
                .write(true)
                .open(cg.join("cgroup.procs"))
                .unwrap()
        });
        if let Some(procs) = &procs {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let fd = procs.as_raw_fd();
            // SAFETY: only write(2), on a descriptor opened before the fork; "0" moves the
            // writing process.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::write(std::os::fd::BorrowedFd::borrow_raw(fd), b"0")
                        .map(drop)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let child = cmd
            .args(["run", "--log-format", "text", "--config"])
            .arg(dir.path().join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("opsd.sock"))
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join("log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        drop(procs);
        let d = Daemon {
            child: Some(child),
            dir,
            cgroup: cgroup.map(Path::to_path_buf),
        };
        d.wait_for(|| d.socket().exists(), "control socket");
        d
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("opsd.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn write_config(&self, text: &str) {
        fs::write(self.path("jobs.toml"), text).unwrap();
    }

    fn wait_for(&self, cond: impl Fn() -> bool, what: &str) {
        assert!(
            crate::util::poll_until(Duration::from_secs(15), cond),
            "timed out waiting for {what}; log:\n{}",
            self.log()
        );
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(crate::util::OPSD)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    /// Kills the daemon with SIGKILL, runs `between`, and starts another on the same files.
    fn kill_and_restart(mut self, between: impl FnOnce()) -> Daemon {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        between();
        let _ = fs::remove_file(self.socket());
        let dir = tempfile::TempDir::new().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        let cgroup = self.cgroup.take();
        Self::start_in_cgroup(old, &[], cgroup.as_deref())
    }

    /// Stops the daemon with SIGTERM (it must exit cleanly) and starts another on the same
    /// files, as `systemctl restart` does.
    fn restart(mut self) -> Daemon {
        let (status, log) = self.stop();
        assert!(status.success(), "{log}");
        let _ = fs::remove_file(self.socket());
        let dir = tempfile::TempDir::new().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        Self::start_in(old, &[])
    }

    /// Sends SIGTERM and returns the exit status.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        self.signal("-TERM");
        let status = self.child.take().unwrap().wait().unwrap();
        (status, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn job(name: &str, schedule: &str, command: &str, extra: &str) -> String {
    format!("[jobs.{name}]\ntype = \"command\"\nschedule = \"{schedule}\"\ncommand = {command:?}\n{extra}\n")
}

#[test]
fn every_second_job_fires_on_each_second() {
    let mut d = Daemon::start("");
    let out = d.path("ticks");
    d.write_config(&job(
        "tick",
        "@every 1s",
        &format!("date +%s.%N >> {}", out.display()),
        "",
    ));
    d.signal("-HUP");
    d.wait_for(|| lines(&out).len() >= 4, "four ticks");
    let (status, _) = d.stop();
    assert!(status.success());
    let ticks: Vec<f64> = lines(&out).iter().map(|l| l.parse().unwrap()).collect();
    let seconds: Vec<i64> = ticks.iter().map(|t| t.floor() as i64).collect();
    for w in seconds.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1,
            "one run per second, no second skipped or doubled: {ticks:?}"
        );
    }
}

#[test]
fn reload_adds_jobs_and_a_broken_file_keeps_the_old_ones() {
    let a = "a_marks";
    let cfg_a = |d: &Daemon| {
        job(
            "a",
            "@every 1s",
            &format!("echo a >> {}", d.path(a).display()),
            "",
        )
    };
    let mut d = Daemon::start("");
    d.write_config(&cfg_a(&d));
    d.signal("-HUP");
    d.wait_for(|| !lines(&d.path(a)).is_empty(), "job a");
    // Good file: job b appears.
    d.write_config(&format!(
        "{}{}",
        cfg_a(&d),
        job(
            "b",
            "@every 1s",
            &format!("echo b >> {}", d.path("b_marks").display()),
            ""
        )
    ));
    let out = d.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("added: b"));
    d.wait_for(
        || !lines(&d.path("b_marks")).is_empty(),
        "job b after reload",
    );
    // Broken file: rejected, and a keeps running.
    d.write_config(&format!("{}timout = \"4s\"\n", cfg_a(&d)));
    d.signal("-HUP");
    d.wait_for(
        || d.log().contains("reload rejected"),
        "the rejection in the log",
    );
    assert!(
        d.log()
            .contains("`jobs.a.timout`: unknown key for a command job; did you mean `timeout`?"),
        "{}",
        d.log()
    );
    let out = d.ctl(&["reload"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jobs.toml:6:1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = lines(&d.path(a)).len();
    d.wait_for(
        || lines(&d.path(a)).len() >= before + 2,
        "job a still firing after a bad reload",
    );
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn overlap_skip_does_not_start_a_second_run() {
    let mut d = Daemon::start("");
    let starts = d.path("starts");
    d.write_config(&job(
        "slow",
        "@every 1s",
        &format!("echo x >> {}; sleep 2.5", starts.display()),
        "",
    ));
    d.signal("-HUP");
    d.wait_for(
        || d.log().matches("skipping this run").count() >= 2,
        "two skipped slots",
    );
    let (status, log) = d.stop();
    assert!(status.success());
    let running_at_once = lines(&starts).len();
    assert!(
        running_at_once <= 2,
        "runs must not overlap: {running_at_once} starts\n{log}"
    );
    assert!(
        log.contains("outcome=\"skipped\"") || log.contains("outcome=skipped"),
        "{log}"
    );
}

/// Runs take turns to start their processes (8 per CPU, src/process/starts.rs); a run still
/// going gives its turn back shortly after its spawn, so twice as many long runs as there are
/// turns are all running at once, not a turn's worth at a time.
#[test]
fn more_long_runs_than_start_turns_all_run_at_once() {
    let turns = std::thread::available_parallelism().map_or(1, usize::from) * 8;
    let jobs = 2 * turns;
    let mut d = Daemon::start("");
    let starts = d.path("starts");
    let mut config = String::from("[defaults]\nshutdown_timeout = \"1s\"\n");
    config.extend((0..jobs).map(|i| {
        job(
            &format!("long-{i:03}"),
            "@every 1s",
            &format!("echo \"$OPSD_JOB\" >> {}; sleep 60", starts.display()),
            "",
        )
    }));
    d.write_config(&config);
    d.signal("-HUP");
    let started = || {
        let mut names = lines(&starts);
        names.sort();
        names.dedup();
        names.len()
    };
    d.wait_for(
        || started() == jobs,
        &format!("all {jobs} long runs running at once"),
    );
    d.stop();
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let mut d = Daemon::start("");
    let pidfile = d.path("grandchild.pid");
    d.write_config(&job(
        "hang",
        "@start",
        &format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display()),
        "timeout = \"1s\"\nkill_grace = \"500ms\"",
    ));
    d.signal("-HUP");
    d.wait_for(
        || d.log().contains("outcome=\"timed_out\""),
        "the timed_out event",
    );
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert!(
        !alive(&pid),
        "the background child {pid} outlived the timed-out run"
    );
    let (status, log) = d.stop();
    assert!(status.success());
    assert!(
        log.contains("ERROR") && log.contains("timed out after 1s"),
        "{log}"
    );
}

/// True while `pid` is a live (not zombie) process.
fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn a_background_child_holding_the_output_neither_outlives_nor_holds_the_run() {
    // The shell exits at once; its background child keeps stdout open for 300 s.
    let mut d = Daemon::start("");
    let pidfile = d.path("background.pid");
    d.write_config(&job(
        "bg",
        "@start",
        &format!(
            "sleep 300 & echo $! > {}; echo bg-started",
            pidfile.display()
        ),
        "timeout = \"30s\"\nkill_grace = \"500ms\"",
    ));
    let asked = Instant::now();
    d.signal("-HUP");
    d.wait_for(
        || d.log().contains("run finished: success"),
        "the run to end once the shell exited",
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the run waited for its background child's output to close"
    );
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert!(!alive(&pid), "the background child {pid} outlived its run");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("bg-started"),
        "output before the exit is logged:\n{log}"
    );
    assert!(
        log.contains("left processes running in its process group"),
        "the leftover is reported:\n{log}"
    );
}

#[test]
fn sigterm_waits_for_a_running_job() {
    let mut d = Daemon::start("");
    let marker = d.path("done");
    let started = d.path("started");
    d.write_config(&job(
        "work",
        "@start",
        &format!(
            "touch {}; sleep 1.5; touch {}",
            started.display(),
            marker.display()
        ),
        "",
    ));
    d.signal("-HUP");
    d.wait_for(|| started.exists(), "the job to start");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        marker.exists(),
        "shutdown must wait for the running job:\n{log}"
    );
    assert!(log.contains("waiting for running jobs"), "{log}");
}

#[test]
fn shutdown_timeout_stops_a_job_that_will_not_finish() {
    let mut d = Daemon::start("[defaults]\nshutdown_timeout = \"1s\"\n");
    let started = d.path("started");
    d.write_config(&format!(
        "[defaults]\nshutdown_timeout = \"1s\"\n{}",
        job(
            "forever",
            "@start",
            &format!("touch {}; sleep 300", started.display()),
            "kill_grace = \"500ms\""
        )
    ));
    d.signal("-HUP");
    d.wait_for(|| started.exists(), "the job to start");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("outcome=\"killed\""), "{log}");
    // The run says why it was killed, not just that it was.
    assert!(
        log.contains(
            "forever: run killed: opsd was stopping; the run outlived shutdown_timeout (1s)"
        ),
        "{log}"
    );
}

#[test]
fn status_and_trigger_through_the_socket() {
    let mut d = Daemon::start(&job(
        "daily",
        "0 0 4 * * *",
        "echo hello",
        "timezone = \"Asia/Seoul\"",
    ));
    let out = d.ctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("daily") && text.contains("0 0 4 * * * (Asia/Seoul)") && text.contains("KST"),
        "{text}"
    );
    let out = d.ctl(&["trigger", "daily"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("daily: success"));
    let out = d.ctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["last"]["outcome"], "success");
    let out = d.ctl(&["trigger", "daly"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean \"daily\"?"));
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn a_second_daemon_on_the_same_state_dir_or_socket_is_refused() {
    let mut d = Daemon::start("");
    let other = tempfile::tempdir().unwrap();
    let second = |state: &Path, socket: &Path| {
        Command::new(crate::util::OPSD)
            .args(["run", "--log-format", "text", "--config"])
            .arg(d.path("jobs.toml"))
            .arg("--state-dir")
            .arg(state)
            .arg("--socket")
            .arg(socket)
            .output()
            .unwrap()
    };
    let out = second(&d.path("state"), &other.path().join("opsd.sock"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("already running with the state directory")
            && err.contains(&format!("(pid {})", d.pid())),
        "{err}"
    );
    // Another state directory but the same socket: refused too (it would run every job a
    // second time, out of reach of status/trigger/reload), naming the first daemon's pid, and
    // the first daemon's socket is left in place.
    let out = second(&other.path().join("state"), &d.socket());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another opsd")
            && err.contains(&format!("(pid {})", d.pid()))
            && err.contains("refusing to start a second daemon"),
        "{err}"
    );
    assert!(
        d.ctl(&["status"]).status.success(),
        "the first daemon still answers"
    );
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn clear_message_when_the_daemon_is_not_running() {
    let out = Command::new(crate::util::OPSD)
        .args(["status", "--socket", "/nonexistent/opsd.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opsd is not running"));
}

#[test]
fn broken_config_at_first_start_exits_nonzero_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(&cfg, "[jobs.x]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = \"true\"\ntimezone = \"Mars/Base\"\n").unwrap();
    for sub in ["run", "check"] {
        let mut cmd = Command::new(crate::util::OPSD);
        cmd.args([sub, "--config"]).arg(&cfg);
        if sub == "run" {
            cmd.arg("--state-dir").arg(dir.path());
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{sub} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("jobs.toml:5:12: `jobs.x.timezone`: unknown time zone \"Mars/Base\""),
            "{sub}: {err}"
        );
        assert_eq!(
            err.matches("unknown time zone").count(),
            1,
            "{sub}: the error is said more than once:\n{err}"
        );
    }
}

#[test]
fn catch_up_runs_a_missed_slot_once_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    let cfg = job(
        "nightly",
        "0 0 3 * * *",
        &format!("echo ran >> {}", marks.display()),
        "catch_up = \"once\"\ntimezone = \"UTC\"",
    );
    let state = dir.path().join("state/schedule");
    fs::create_dir_all(&state).unwrap();
    // The daemon last saw this job three days ago: one slot (the latest) is owed.
    let three_days_ago = chrono::Utc::now() - chrono::Duration::days(3);
    fs::write(
        state.join("nightly.json"),
        format!("{{\"last_slot\":\"{}\"}}", three_days_ago.to_rfc3339()),
    )
    .unwrap();
    fs::write(dir.path().join("jobs.toml"), &cfg).unwrap();
    let mut d = Daemon::start_in(dir, &[]);
    // Catch-up runs are started before the daemon's loop: once one has finished, any other
    // would have started too (and shutdown waits for a started run).
    d.wait_for(
        || d.log().contains("nightly: run finished"),
        "the catch-up run to finish",
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert_eq!(lines(&marks).len(), 1, "exactly one catch-up run:\n{log}");
    assert_eq!(log.matches("nightly: run started").count(), 1, "{log}");
}

#[test]
fn check_piped_into_head_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(&cfg, job("tick", "@every 1s", "true", "")).unwrap();
    // Far more than a pipe holds, so opsd writes after head has gone.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} check --next 5000 --config {} | head -n 1",
            crate::util::OPSD,
            cfg.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK, 1 job(s)"));
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_job_sees_a_clean_environment_and_only_the_variables_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let config = format!(
        "[jobs.envjob]\ntype = \"command\"\nschedule = \"@start\"\ntimezone = \"Asia/Seoul\"\n\
         command = [\"/bin/sh\", \"-c\", \"env > {}\"]\npass_env = [\"HTTPS_PROXY\"]\n\
         env = {{ EXTRA = \"1\" }}\n",
        out.display()
    );
    let mut d = Daemon::start_with(
        &config,
        &[
            ("AWS_SECRET_ACCESS_KEY", "daemon-secret-value"),
            ("HTTPS_PROXY", "http://127.0.0.1:3128"),
        ],
    );
    d.wait_for(|| d.log().contains("run finished"), "the run to end");
    let env = fs::read_to_string(&out).unwrap();
    assert!(
        !env.contains("daemon-secret-value") && !env.contains("AWS_SECRET_ACCESS_KEY"),
        "the daemon's secret reached the job:\n{env}"
    );
    assert!(!env.contains("RUST_LOG="), "{env}");
    for want in [
        "HTTPS_PROXY=http://127.0.0.1:3128",
        "TZ=Asia/Seoul",
        "OPSD_JOB=envjob",
        "OPSD_RUN_ID=",
        "EXTRA=1",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "USER=root",
        "HOME=",
        "LANG=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "no {want} in:\n{env}"
        );
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_bad_pass_env_name_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.toml");
    fs::write(
        &path,
        "[jobs.a]\ntype = \"command\"\nschedule = \"@start\"\ncommand = [\"/bin/true\"]\npass_env = [\"A=B\"]\n",
    )
    .unwrap();
    let out = Command::new(crate::util::OPSD)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(":5:13: `jobs.a.pass_env`"), "{err}");
}

/// A user and a second group made for one test, removed on drop (the tests run as root).
struct TestUser {
    name: String,
    group: String,
}

impl TestUser {
    fn create() -> TestUser {
        let id = std::process::id();
        let (name, group) = (format!("opsdu{id}"), format!("opsdg{id}"));
        let run = |args: &[&str]| {
            let st = Command::new(args[0]).args(&args[1..]).status();
            assert!(
                st.is_ok_and(|s| s.success()),
                "{args:?} failed; install with: apt-get install -y passwd"
            );
        };
        run(&["groupadd", &group]);
        run(&["useradd", "-M", "-N", "-G", &group, &name]);
        TestUser { name, group }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

#[test]
fn a_user_job_gets_the_users_supplementary_groups() {
    let user = TestUser::create();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("groups");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        "[jobs.ids]\ntype = \"command\"\nschedule = \"@start\"\nuser = \"{}\"\n\
         command = [\"/bin/sh\", \"-c\", \"id -Gn > {}; id -un >> {}\"]\n",
        user.name,
        out.display(),
        out.display()
    );
    let mut d = Daemon::start(&config);
    d.wait_for(|| d.log().contains("run finished"), "the run to end");
    let ids = fs::read_to_string(&out).unwrap_or_default();
    assert!(
        ids.split_whitespace().any(|g| g == user.group),
        "the job lacks {}'s group {}: {ids:?}\n{}",
        user.name,
        user.group,
        d.log()
    );
    assert!(ids.lines().nth(1) == Some(user.name.as_str()), "{ids:?}");
    assert!(!ids.split_whitespace().any(|g| g == "root"), "{ids:?}");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

/// A shell line that daemonizes a `sleep 300` (new session, parent gone), writes its pid, and
/// waits until it has.
fn daemonize(pidfile: &Path) -> String {
    format!(
        "setsid sh -c 'sleep 300 & echo $! > {p}.tmp; mv {p}.tmp {p}' & \
         while [ ! -e {p} ]; do sleep 0.05; done",
        p = pidfile.display()
    )
}

/// Waits until `pidfile` names a process and returns it.
fn read_pid(d: &Daemon, pidfile: &Path) -> String {
    d.wait_for(|| pidfile.exists(), "the daemonized process's pid file");
    fs::read_to_string(pidfile).unwrap().trim().to_string()
}

#[test]
fn a_daemonizing_job_leaves_no_process_after_its_run() {
    let mut d = Daemon::start("");
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &daemonize(&pidfile),
        "kill_grace = \"500ms\"",
    ));
    d.signal("-HUP");
    d.wait_for(|| d.log().contains("run finished"), "the run to end");
    let pid = read_pid(&d, &pidfile);
    d.wait_for(|| !alive(&pid), "the escaped process to be stopped");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("left running outside its process group"),
        "{log}"
    );
}

#[test]
fn a_daemonizing_job_leaves_no_process_after_a_timeout() {
    let mut d = Daemon::start("");
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &format!("{}; sleep 300", daemonize(&pidfile)),
        "timeout = \"1s\"\nkill_grace = \"500ms\"",
    ));
    d.signal("-HUP");
    let pid = read_pid(&d, &pidfile);
    d.wait_for(
        || d.log().contains("outcome=\"timed_out\""),
        "the timed_out event",
    );
    d.wait_for(|| !alive(&pid), "the escaped process to be stopped");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn what_a_killed_daemons_run_left_is_stopped_at_the_next_start() {
    let d = Daemon::start("");
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &format!("{}; sleep 300", daemonize(&pidfile)),
        "",
    ));
    d.signal("-HUP");
    let pid = read_pid(&d, &pidfile);
    // The next daemon starts with no job, so only the killed one's run is left to stop.
    d.write_config("");
    let mut d = d.kill_and_restart(|| {
        assert!(alive(&pid), "the process should outlive the killed daemon");
    });
    d.wait_for(|| !alive(&pid), "the left-over process to be stopped");
    d.wait_for(
        || d.log().contains("ended without shutting down"),
        "the stop to be logged",
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

/// A cgroup (v2) made for one test, removed (with what is left in it) when dropped.
struct TestCgroup {
    dir: PathBuf,
}

static CGROUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl TestCgroup {
    /// A fresh cgroup below the cgroup2 mount's root (`/sys/fs/cgroup/unified` on a hybrid
    /// host, `/sys/fs/cgroup` on a pure v2 one), where a daemon started in it has a cgroup of
    /// its own, as under a unit with `Delegate=yes`.
    fn new() -> TestCgroup {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = mounts
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                right.starts_with("cgroup2 ").then(|| left.split(' ').nth(4))?
            })
            .expect("no cgroup2 file system mounted; these tests need the unified hierarchy (Linux cgroup v2)");
        let n = CGROUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = Path::new(mount).join(format!("opsd-test-{}-{n}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot create the test cgroup {} ({e}); these tests need root and a writable cgroup2 mount",
                dir.display()
            )
        });
        TestCgroup { dir }
    }

    /// Every pid in the cgroup and below.
    fn members(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            out.extend(procs.split_whitespace().map(str::to_string));
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }

    /// The names of the cgroups directly below.
    fn children(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&e.path());
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
        }
        remove(&self.dir);
    }
}

/// A shell line that leaves a `sleep 300` behind in a new session with an empty environment
/// (no `OPSD_RUN_ID` to find it by), writes its pid, and says so.
fn daemonize_clean(pidfile: &Path) -> String {
    format!(
        "setsid env -i sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 300' & \
         while [ ! -e {p} ]; do sleep 0.05; done; echo started",
        p = pidfile.display()
    )
}

/// Starts a daemon with no jobs inside `cg`.
fn start_in(cg: &TestCgroup) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("jobs.toml"), "").unwrap();
    Daemon::start_in_cgroup(dir, &[], Some(&cg.dir))
}

#[test]
fn a_job_that_clears_its_environment_leaves_nothing_in_its_cgroup_after_its_run() {
    let cg = TestCgroup::new();
    let mut d = start_in(&cg);
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &daemonize_clean(&pidfile),
        "kill_grace = \"500ms\"",
    ));
    d.signal("-HUP");
    let pid = read_pid(&d, &pidfile);
    d.wait_for(|| d.log().contains("run finished"), "the run to end");
    d.wait_for(|| !alive(&pid), "the process the run left to be stopped");
    d.wait_for(
        || cg.members() == [d.pid().to_string()],
        "the daemon to be alone in its cgroup",
    );
    assert_eq!(cg.children(), ["supervisor"], "{}", d.log());
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("escape: stopped 1 processes the run left behind in its cgroup"),
        "{log}"
    );
}

#[test]
fn a_job_that_clears_its_environment_leaves_nothing_in_its_cgroup_after_a_timeout() {
    let cg = TestCgroup::new();
    let mut d = start_in(&cg);
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &format!("{}; sleep 300", daemonize_clean(&pidfile)),
        "timeout = \"1s\"\nkill_grace = \"500ms\"",
    ));
    d.signal("-HUP");
    let pid = read_pid(&d, &pidfile);
    d.wait_for(
        || d.log().contains("outcome=\"timed_out\""),
        "the timed_out event",
    );
    d.wait_for(|| !alive(&pid), "the process the run left to be stopped");
    d.wait_for(
        || cg.members() == [d.pid().to_string()],
        "the daemon to be alone in its cgroup",
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn what_a_killed_daemons_run_left_in_its_cgroup_is_killed_at_the_next_start() {
    let cg = TestCgroup::new();
    let d = start_in(&cg);
    let pidfile = d.path("escaped.pid");
    d.write_config(&job(
        "escape",
        "@start",
        &format!("{}; sleep 300", daemonize_clean(&pidfile)),
        "",
    ));
    d.signal("-HUP");
    let pid = read_pid(&d, &pidfile);
    // The next daemon starts with no job, so only the killed one's run is left to stop.
    d.write_config("");
    let mut d = d.kill_and_restart(|| {
        assert!(alive(&pid), "the process should outlive the killed daemon");
    });
    d.wait_for(|| !alive(&pid), "the left-over process to be stopped");
    d.wait_for(
        || d.log().contains("escape: run ") && d.log().contains("processes left in its cgroup"),
        "the kill to be logged with the job",
    );
    d.wait_for(
        || cg.members() == [d.pid().to_string()] && cg.children() == ["supervisor"],
        "the daemon to be alone in its cgroup",
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn what_an_alert_program_leaves_with_a_cleared_environment_ends_with_its_attempt() {
    let cg = TestCgroup::new();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sink.pid");
    let config = format!(
        "[alerts.leaves]\ntype = \"command\"\ncommand = {:?}\n\n\
         [jobs.fail]\ntype = \"command\"\nschedule = \"@start\"\ncommand = [\"/bin/false\"]\nalert = [\"leaves\"]\n",
        format!(
            "setsid env -i sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 300' \
             </dev/null >/dev/null 2>&1 & while [ ! -e {p} ]; do sleep 0.05; done",
            p = pidfile.display()
        )
    );
    fs::write(dir.path().join("jobs.toml"), config).unwrap();
    let mut d = Daemon::start_in_cgroup(dir, &[], Some(&cg.dir));
    let pid = read_pid(&d, &pidfile);
    d.wait_for(
        || !alive(&pid),
        "the alert program's leftover to be stopped",
    );
    d.wait_for(
        || cg.members() == [d.pid().to_string()] && cg.children() == ["supervisor"],
        "the daemon to be alone in its cgroup",
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("left behind in its cgroup"), "{log}");
}

#[test]
fn a_command_sinks_processes_end_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("sink.pid");
    let config = format!(
        "[defaults]\nshutdown_timeout = \"1s\"\n\n\
         [alerts.slow]\ntype = \"command\"\ncommand = \"sleep 300 & echo $! > {}; wait\"\ntimeout = \"60s\"\n\n\
         [jobs.fail]\ntype = \"command\"\nschedule = \"@start\"\ncommand = [\"/bin/false\"]\nalert = [\"slow\"]\n",
        pidfile.display()
    );
    let mut d = Daemon::start(&config);
    let pid = read_pid(&d, &pidfile);
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(
        !alive(&pid),
        "the alert program's child {pid} outlived the daemon:\n{log}"
    );
}

#[test]
fn an_alert_program_sees_a_clean_environment_and_only_the_variables_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (open, passing) = (dir.path().join("open.env"), dir.path().join("passing.env"));
    // Written whole, then renamed: the test reads it only once it is complete.
    let dump = |out: &Path| format!("env > {0}.tmp && mv {0}.tmp {0}", out.display());
    let config = format!(
        "[alerts.open]\ntype = \"command\"\ncommand = {:?}\n\n\
         [alerts.passing]\ntype = \"command\"\ncommand = {:?}\npass_env = [\"HTTPS_PROXY\"]\n\n\
         [jobs.fail]\ntype = \"command\"\nschedule = \"@start\"\ncommand = [\"/bin/false\"]\n\
         alert = [\"open\", \"passing\"]\n",
        dump(&open),
        dump(&passing)
    );
    let mut d = Daemon::start_with(
        &config,
        &[
            ("AWS_SECRET_ACCESS_KEY", "daemon-secret-value"),
            ("HTTPS_PROXY", "http://127.0.0.1:3128"),
        ],
    );
    d.wait_for(
        || open.exists() && passing.exists(),
        "both alert programs' environment dumps",
    );
    for (out, proxy) in [(&open, false), (&passing, true)] {
        let env = fs::read_to_string(out).unwrap();
        assert!(
            !env.contains("daemon-secret-value") && !env.contains("AWS_SECRET_ACCESS_KEY"),
            "the daemon's secret reached the alert program:\n{env}"
        );
        assert!(!env.contains("RUST_LOG="), "{env}");
        assert_eq!(
            env.lines()
                .any(|l| l == "HTTPS_PROXY=http://127.0.0.1:3128"),
            proxy,
            "{}:\n{env}",
            out.display()
        );
        for want in [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "USER=root",
            "LOGNAME=root",
            "HOME=",
            "SHELL=",
            "LANG=",
            "OPSD_RUN_ID=alert-",
        ] {
            assert!(
                env.lines().any(|l| l.starts_with(want)),
                "no {want} in:\n{env}"
            );
        }
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
/// `opsd ARGS` with `env` set and nothing else of the test's environment that opsd reads.
fn opsd(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(crate::util::OPSD);
    cmd.args(args)
        .env_remove("OPSD_SOCKET")
        .env_remove("OPSD_CONFIG")
        .env_remove("RUNTIME_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn status_trigger_and_reload_find_a_daemon_through_opsd_socket() {
    let d = Daemon::start(&job("daily", "0 0 3 * * *", "echo ran", ""));
    let env = [("OPSD_SOCKET", d.socket())];
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let status = opsd(&["status"], &env);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.contains("daily"),
        "opsd status with OPSD_SOCKET:\n{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let trigger = opsd(&["trigger", "daily"], &env);
    assert!(
        String::from_utf8_lossy(&trigger.stdout).contains("daily: success"),
        "{trigger:?}"
    );
    assert!(opsd(&["reload"], &env).status.success());
    // The reload the unit's ExecReload= runs: a rejected file is a non-zero exit with the
    // located error on stderr, and the old job stays.
    d.write_config(&format!(
        "{}[jobs.broken\n",
        job("daily", "0 0 3 * * *", "echo ran", "")
    ));
    let rejected = opsd(&["reload"], &env);
    let err = String::from_utf8_lossy(&rejected.stderr);
    assert!(
        !rejected.status.success(),
        "a rejected reload exited 0: {err}"
    );
    assert!(
        err.contains("jobs.toml:") && err.contains("previous configuration keeps running"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&opsd(&["status"], &env).stdout).contains("daily"));
    // Without OPSD_SOCKET or --socket, the default is not this daemon's socket.
    let elsewhere = opsd(&["status"], &[]);
    let err = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        !elsewhere.status.success() && err.contains("OPSD_SOCKET"),
        "{err}"
    );
}

#[test]
fn a_file_without_jobs_is_accepted_and_the_daemon_says_it_has_nothing_to_do() {
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/jobs.toml");
    let check = opsd(&["check", "--config", &packaged.display().to_string()], &[]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && text.contains("OK, no jobs"),
        "opsd check of the packaged job file:\n{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let d = Daemon::start(&fs::read_to_string(&packaged).unwrap());
    d.wait_for(|| d.log().contains("nothing to do"), "the no-jobs line");
}

#[test]
fn check_without_a_file_names_it_once_and_hints_at_config() {
    let out = opsd(&["check", "--config", "/nonexistent/jobs.toml"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/nonexistent/jobs.toml: no such job file")
            && err.contains("--config")
            && err.contains("config/jobs.toml"),
        "{err}"
    );
    assert!(
        !err.contains("os error 2"),
        "the bare OS error is back:\n{err}"
    );
}

#[test]
fn check_of_an_ec2_job_without_credentials_fails_in_one_sentence_under_a_failed_header() {
    // No credentials at all; then a credential process that fails, whose SDK error once
    // reached the output as a Debug dump (DisplayErrorContext).
    for aws_config in [None, Some("[default]\ncredential_process = /bin/false\n")] {
        let home = tempfile::tempdir().unwrap();
        if let Some(text) = aws_config {
            fs::create_dir_all(home.path().join(".aws")).unwrap();
            fs::write(home.path().join(".aws/config"), text).unwrap();
        }
        let cfg = home.path().join("jobs.toml");
        fs::write(
            &cfg,
            "[jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\n\
             schedule = \"0 30 18 * * Mon-Fri\"\nregion = \"us-east-1\"\n\
             tags = { Schedule = \"office-hours\" }\n",
        )
        .unwrap();
        let out = Command::new(crate::util::OPSD)
            .args(["check", "--config"])
            .arg(&cfg)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        let header = text.lines().next().unwrap_or_default();
        assert!(
            !header.contains("OK") && header.contains("FAILED"),
            "header {header:?} does not say the check failed:\n{text}"
        );
        assert!(
            text.contains("dev-stop: credentials: no AWS credentials found"),
            "{text}"
        );
        for dump in ["SdkBody", "ProviderError(", "extensions_1x"] {
            assert!(!text.contains(dump), "a Debug dump ({dump}) in:\n{text}");
        }
    }
}

/// Opens the FIFO at `path` for writing once a reader (the daemon) has it open.
fn fifo_writer(d: &Daemon, path: &Path, what: &str) -> fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
    };
    // The first writer that opens is kept: closing it would end the reader's read.
    let writer = std::cell::RefCell::new(None);
    d.wait_for(
        || {
            *writer.borrow_mut() = open().ok();
            writer.borrow().is_some()
        },
        what,
    );
    writer.into_inner().unwrap()
}

/// Writes `text` into a FIFO and closes it, which ends the reader's read.
fn write_and_close(mut writer: fs::File, text: &str) {
    use std::io::Write;
    writer.write_all(text.as_bytes()).unwrap();
}

/// Waits up to 15 s for `child` to exit.
fn exits_in_time(child: &mut Child) -> bool {
    crate::util::poll_until(Duration::from_secs(15), || {
        child.try_wait().unwrap().is_some()
    })
}

#[test]
fn status_answers_while_a_reload_reads_the_job_file() {
    let mut d = Daemon::start("");
    // The job file becomes a FIFO: a reload's read of it lasts until the test writes it, a
    // reload as slow as the test needs (like one compiling hundreds of heavy regexes), whatever
    // the machine's speed.
    let file = d.path("jobs.toml");
    fs::remove_file(&file).unwrap();
    let made = Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap()
        .success();
    assert!(made, "mkfifo failed (apt-get install coreutils)");
    let reload = |d: &Daemon| {
        Command::new(crate::util::OPSD)
            .args(["reload", "--socket"])
            .arg(d.socket())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = reload(&d);
    // A reader on the FIFO: the reload is reading the file. Holding the write end open keeps it
    // reading.
    let writer = fifo_writer(&d, &file, "the reload to open the job file");
    let mut status = Command::new(crate::util::OPSD)
        .args(["status", "--socket"])
        .arg(d.socket())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let answered = exits_in_time(&mut status);
    if !answered {
        let _ = status.kill();
    }
    assert!(
        answered,
        "`opsd status` did not answer while a reload was in progress; log:\n{}",
        d.log()
    );
    assert!(status.wait().unwrap().success());
    assert!(
        first.try_wait().unwrap().is_none(),
        "the reload finished before the file was written"
    );
    // A second request while the first is reading is coalesced into one reload after it.
    let mut second = reload(&d);
    d.wait_for(
        || {
            d.log()
                .contains("reload requested while one is in progress")
        },
        "the second reload to be queued",
    );
    let config = job(
        "a",
        "@every 1s",
        &format!("echo a >> {}", d.path("a_marks").display()),
        "",
    );
    write_and_close(writer, &config);
    assert!(exits_in_time(&mut first), "the first reload never ended");
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("added: a"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The queued reload reads the file again.
    let writer = fifo_writer(&d, &file, "the queued reload to open the job file");
    write_and_close(writer, &config);
    assert!(exits_in_time(&mut second), "the queued reload never ended");
    assert!(second.wait().unwrap().success());
    d.wait_for(
        || !lines(&d.path("a_marks")).is_empty(),
        "job a after the reloads",
    );
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn a_runs_log_lines_name_the_job_and_a_failure_shows_its_last_output() {
    let alert_file = tempfile::NamedTempFile::new().unwrap();
    let mut d = Daemon::start(&format!(
        "[alerts.mail]\ntype = \"command\"\ncommand = \"cat > {}\"\n\n{}",
        alert_file.path().display(),
        job(
            "nightly-backup",
            "0 0 3 * * *",
            "for i in $(seq 1 30); do echo progress $i; done; echo 'pg_dump: connection refused' >&2; exit 2",
            "alert = [\"mail\"]",
        )
    ));
    let out = d.ctl(&["trigger", "nightly-backup"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.starts_with("nightly-backup: failed (") && text.contains("exited with code 2"),
        "{text}"
    );
    // The last 20 lines, bounded: the start is gone, the error line kept.
    assert!(text.contains("  | pg_dump: connection refused"), "{text}");
    assert!(text.contains("  | progress 30"), "{text}");
    assert!(!text.contains("progress 1\n"), "{text}");
    assert_eq!(text.matches("  | ").count(), 20, "{text}");

    let status = d.ctl(&["status", "nightly-backup"]);
    let st = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{st}");
    assert!(
        st.contains("failed") && st.contains("exited with code 2"),
        "{st}"
    );
    assert!(st.contains("  | pg_dump: connection refused"), "{st}");
    let json = d.ctl(&["status", "nightly-backup", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let output = v["last"]["output"].as_array().cloned().unwrap_or_default();
    assert_eq!(output.len(), 20, "{v}");
    assert!(
        output.contains(&"pg_dump: connection refused".into()),
        "{v}"
    );
    let unknown = d.ctl(&["status", "nightly-bakup"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean \"nightly-backup\"?"));

    d.wait_for(
        || fs::read_to_string(alert_file.path()).is_ok_and(|s| s.trim_end().ends_with('}')),
        "the run_failed alert",
    );
    let alert: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(alert_file.path()).unwrap()).unwrap();
    let extra = alert["extra"].as_str().unwrap_or_default();
    assert!(
        extra.starts_with("last output:\n") && extra.contains("\npg_dump: connection refused"),
        "{alert}"
    );

    let (_, log) = d.stop();
    let run_lines: Vec<&str> = log.lines().filter(|l| l.contains("run_id=")).collect();
    assert!(run_lines.len() > 3, "{log}");
    for line in &run_lines {
        // `TIMESTAMP LEVEL message fields...`
        let first_word = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            first_word == "nightly-backup:",
            "a line about the run does not start with its job: {line}"
        );
    }
    let failed = run_lines
        .iter()
        .find(|l| l.contains("ERROR"))
        .expect("an error line for the failed run");
    assert!(
        failed.contains("nightly-backup: run failed: exited with code 2"),
        "{failed}"
    );
}

#[test]
fn run_job_writes_the_jobs_stdout_to_stdout_and_its_stderr_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(
        &cfg,
        job(
            "report",
            "0 0 3 * * *",
            "printf 'id,name\\n1,web\\n'; echo 'warning: slow disk' >&2",
            "",
        ),
    )
    .unwrap();
    let out = Command::new(crate::util::OPSD)
        .args(["run-job", "report", "--log-format", "text", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Exactly what the job printed, as `report > out` would capture it from cron.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "id,name\n1,web\n",
        "{err}"
    );
    assert!(err.contains("warning: slow disk\n"), "{err}");
    // Still logged, and the verdict is beside the log lines.
    assert!(err.contains("report: 1,web"), "{err}");
    assert!(err.contains("report: success"), "{err}");
    // Fields without a value are left out, not logged empty.
    let finished = err
        .lines()
        .find(|l| l.contains("report: run finished: success"))
        .unwrap_or_default();
    assert!(
        finished.contains("outcome=\"success\"") && !finished.contains("detail="),
        "{err}"
    );
}

#[test]
fn run_job_of_a_failing_job_repeats_its_last_output_beside_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(
        &cfg,
        job("writer", "0 0 3 * * *", "echo 'disk full' >&2; exit 3", ""),
    )
    .unwrap();
    let out = Command::new(crate::util::OPSD)
        .args(["run-job", "writer", "--log-format", "text", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("writer: failed: exited with code 3") && err.contains("  | disk full"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{err}");
}

#[test]
fn run_job_interrupted_by_ctrl_c_says_it_was_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    let started = dir.path().join("started");
    fs::write(
        &cfg,
        job(
            "long",
            "0 0 3 * * *",
            &format!("touch {}; sleep 300", started.display()),
            "kill_grace = \"500ms\"",
        ),
    )
    .unwrap();
    let mut child = Command::new(crate::util::OPSD)
        .args(["run-job", "long", "--log-format", "text", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::util::wait_for("the job to start", Duration::from_secs(15), || {
        started.exists()
    });
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        exits_in_time(&mut child),
        "opsd run-job did not end after SIGINT"
    );
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Before: `long: killed: ended by signal SIGTERM`, which does not say who stopped it.
    assert!(
        err.contains("long: killed: interrupted (SIGINT); ended by signal"),
        "{err}"
    );
    assert!(!out.status.success(), "{err}");
}

#[test]
fn a_reload_that_removes_every_job_says_so_at_warn() {
    let mut d = Daemon::start(&job("a", "@every 1h", "true", ""));
    // A job file cut short (full disk, an editor's crash) is valid TOML with no jobs.
    d.write_config("");
    let out = d.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(
        || {
            d.log()
                .lines()
                .any(|l| l.contains("WARN") && l.contains("has no jobs: all 1 job(s) were removed"))
        },
        "the warning that nothing will run",
    );
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn a_jobs_output_is_logged_escaped_on_one_line_not_blanked() {
    let mut d = Daemon::start(&job(
        "noisy",
        "@start",
        r"printf 'a\033[2Kb\rc\nnext line\n'",
        "",
    ));
    d.wait_for(|| d.log().contains("run finished"), "the run to end");
    let (_, log) = d.stop();
    assert!(
        log.lines()
            .any(|l| l.contains(r"noisy: a\u{1b}[2Kb\rc") && !l.contains('\u{1b}')),
        "the output line is not escaped as written:\n{log}"
    );
    assert!(log.contains("noisy: next line"), "{log}");
}

/// Starts a daemon on a job file and a `jobs.d` beside it holding `drop_ins` (name, text).
fn start_with_drop_ins(config: &str, drop_ins: &[(&str, String)]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("jobs.toml"), config).unwrap();
    fs::create_dir(dir.path().join("jobs.d")).unwrap();
    for (name, text) in drop_ins {
        fs::write(dir.path().join("jobs.d").join(name), text).unwrap();
    }
    Daemon::start_in(dir, &[])
}

#[test]
fn a_job_from_jobs_d_runs_and_a_broken_drop_in_is_rejected_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let marks = |name: &str| dir.path().join(name);
    let drop_in = |extra: &str| {
        job(
            "web",
            "@every 1s",
            &format!("echo web >> {}", marks("web").display()),
            extra,
        )
    };
    let mut d = start_with_drop_ins(
        &job(
            "main",
            "@every 1s",
            &format!("echo main >> {}", marks("main").display()),
            "",
        ),
        &[
            ("web.toml", drop_in("")),
            // Left alone: a package manager's old copy and an editor's backup.
            ("web.toml.dpkg-old", drop_in("").replace("web", "old")),
            ("web.toml~", drop_in("").replace("web", "backup")),
        ],
    );
    d.wait_for(
        || !lines(&marks("web")).is_empty() && !lines(&marks("main")).is_empty(),
        "the jobs of jobs.toml and jobs.d/web.toml",
    );
    let status = d.ctl(&["status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        !table.contains("old") && !table.contains("backup"),
        "{table}"
    );

    // check lists the files it read.
    let check = opsd(
        &[
            "check",
            "--config",
            &d.path("jobs.toml").display().to_string(),
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("OK, 2 job(s)"), "{text}");
    for file in ["jobs.toml", "jobs.d/web.toml"] {
        let read = format!("  read {} (1 job(s))", d.path(file).display());
        assert!(text.lines().any(|l| l == read), "no {read:?} in:\n{text}");
    }

    // A broken drop-in: the reload fails naming that file, and both jobs keep running.
    fs::write(
        d.path("jobs.d/web.toml"),
        drop_in("timout = \"4s\"").as_bytes(),
    )
    .unwrap();
    let out = d.ctl(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let at = format!(
        "{}:5:1: `jobs.web.timout`",
        d.path("jobs.d/web.toml").display()
    );
    assert!(stderr.contains(&at), "no {at:?} in:\n{stderr}");
    assert!(d.log().contains(&at), "{}", d.log());
    let (web, main) = (lines(&marks("web")).len(), lines(&marks("main")).len());
    d.wait_for(
        || lines(&marks("web")).len() >= web + 2 && lines(&marks("main")).len() >= main + 2,
        "both jobs still firing after the rejected reload",
    );

    // The same name in two files: refused, naming both.
    fs::write(
        d.path("jobs.d/web.toml"),
        drop_in("")
            .replace("web ", "main ")
            .replace("[jobs.web]", "[jobs.main]"),
    )
    .unwrap();
    let out = d.ctl(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let twice = format!(
        "{}:1:7: `jobs.main`: duplicate job `main`: already defined at {}:1:7",
        d.path("jobs.d/web.toml").display(),
        d.path("jobs.toml").display()
    );
    assert!(stderr.contains(&twice), "no {twice:?} in:\n{stderr}");

    // Removing the drop-in removes its job at the next reload.
    fs::remove_file(d.path("jobs.d/web.toml")).unwrap();
    let out = d.ctl(&["reload"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed: web"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

/// The value printed after `label:` by `opsd status NAME`, if the label is there.
fn status_field(text: &str, label: &str) -> Option<String> {
    let prefix = format!("{label}:");
    text.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

#[test]
fn status_shows_what_a_running_apache_log_watch_is_doing() {
    let logs = tempfile::tempdir().unwrap();
    let error_log = logs.path().join("error.log");
    fs::write(&error_log, "").unwrap();
    let mut d = Daemon::start(&format!(
        "[alerts.mail]\ntype = \"command\"\ncommand = \"cat > /dev/null\"\n\n\
         [jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\napache_bin = \"/bin/false\"\n\
         poll_interval = \"50ms\"\nalert = [\"mail\"]\n\n[[jobs.web.rules]]\nid = \"marked\"\n\
         regex = 'MARK-\\d+'\nsummary = \"marked line\"\n",
        error_log.display().to_string()
    ));
    let status = |args: &[&str]| String::from_utf8_lossy(&d.ctl(args).stdout).into_owned();
    let following = error_log.display().to_string();
    d.wait_for(
        || status_field(&status(&["status", "web"]), "following").as_deref() == Some(&following),
        "the watch to say which file it follows",
    );
    let text = status(&["status", "web"]);
    assert_eq!(
        status_field(&text, "lines read").as_deref(),
        Some("0"),
        "{text}"
    );
    // The time is when a figure last changed, and says so: a quiet watch keeps polling.
    assert!(
        status_field(&text, "now").is_some_and(|v| v.starts_with("figures last changed 20")),
        "{text}"
    );
    assert_eq!(
        status_field(&text, "last alert").as_deref(),
        Some("none yet"),
        "{text}"
    );

    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&error_log)
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        b"[core:notice] plain line one\n[core:notice] plain line two\n\
          [core:error] MARK-1 first\n[core:error] MARK-2 within the cooldown\n",
    )
    .unwrap();
    d.wait_for(
        || status_field(&status(&["status", "web"]), "lines read").as_deref() == Some("4"),
        "the lines appended to show up in status",
    );
    let delivered = "mail: 1 delivered, 0 failed, 0 dropped, 0 queued";
    d.wait_for(
        || {
            status_field(&status(&["status", "web"]), "sinks (all jobs)").as_deref()
                == Some(delivered)
        },
        "the sink's delivery to show up in status",
    );
    let text = status(&["status", "web"]);
    assert!(text.contains("running:  yes (1)"), "{text}");
    assert_eq!(
        status_field(&text, "alerts sent").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        status_field(&text, "held back by cooldown").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        status_field(&text, "alerts dropped").as_deref(),
        Some("0"),
        "{text}"
    );
    let last = status_field(&text, "last alert").unwrap_or_default();
    assert!(last.ends_with("UTC (marked)"), "{text}");

    // The table has the short form in the job's row; --json carries the labelled values.
    let table = status(&["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default();
    assert!(
        row.contains("continuous") && row.ends_with("1 file, 4 lines, 1 alert, 1 held back"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&d.ctl(&["status", "web", "--json"]).stdout).unwrap();
    assert_eq!(
        json["live"]["fields"][1],
        serde_json::json!(["lines read", "4"]),
        "{json}"
    );
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn env_file_reaches_the_job_under_env_and_is_read_at_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("job.env");
    let out = dir.path().join("seen");
    fs::write(
        &env_file,
        "# secrets\nTOKEN=\"first secret\"\nOVERRIDDEN=from-file\n",
    )
    .unwrap();
    let config = format!(
        "[jobs.envfile]\ntype = \"command\"\nschedule = \"@every 1s\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo \\\"$TOKEN|$OVERRIDDEN\\\" >> {}\"]\n\
         env_file = {:?}\nenv = {{ OVERRIDDEN = \"from-env\" }}\n\n\
         [jobs.optional]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = \"true\"\n\
         env_file = \"-{}\"\n",
        out.display(),
        env_file.display(),
        dir.path().join("absent.env").display()
    );
    let mut d = Daemon::start(&config);
    d.wait_for(
        || lines(&out).iter().any(|l| l == "first secret|from-env"),
        "the env_file's value under env's",
    );
    // Rotated: the next run sees the new value without a reload.
    fs::write(&env_file, "TOKEN=second\n").unwrap();
    d.wait_for(
        || lines(&out).iter().any(|l| l == "second|from-env"),
        "the rotated value",
    );
    // Gone: the run fails naming the job and the file; a `-` file may be missing.
    fs::remove_file(&env_file).unwrap();
    let named = format!(
        "envfile: run failed: env_file {}: cannot read it",
        env_file.display()
    );
    d.wait_for(
        || d.log().contains(&named),
        "the failure naming job and file",
    );
    // A line that is not KEY=VALUE: located, without its text.
    fs::write(&env_file, "TOKEN=x\nsecret-without-equals\n").unwrap();
    let located = format!("env_file {}:2: not KEY=VALUE", env_file.display());
    d.wait_for(|| d.log().contains(&located), "the located error");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    for secret in ["first secret", "second", "secret-without-equals"] {
        assert!(!log.contains(secret), "{secret:?} was logged:\n{log}");
    }
    assert!(!log.contains("optional: run failed"), "{log}");
}

#[test]
fn check_warns_of_files_the_unit_hides_from_the_daemon_without_failing() {
    let tmp = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let key = tmp.path().join("maxmind.key");
    fs::write(&key, "0123456789abcdef\n").unwrap();
    fs::create_dir(tmp.path().join(".aws")).unwrap();
    fs::write(
        tmp.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = dummy\n",
    )
    .unwrap();
    let out_dir = tempfile::Builder::new().tempdir_in("/var/lib").ok();
    let out_dir = out_dir
        .as_ref()
        .map_or_else(|| PathBuf::from("/usr/share"), |d| d.path().to_path_buf());
    let cfg = tmp.path().join("jobs.toml");
    let text = format!(
        "[alerts.page]\ntype = \"command\"\ncommand = [\"/home/ops/page\"]\n\n\
         [jobs.geo]\ntype = \"geoip\"\nschedule = \"@weekly\"\naccount_id = 1\n\
         license_key_file = {key:?}\neditions = [\"GeoLite2-Country-CSV\"]\noutput_dir = {out_dir:?}\n\n\
         [jobs.backup]\ntype = \"command\"\nschedule = \"@daily\"\n\
         command = [\"/root/bin/backup\"]\nworking_dir = \"/home/ops\"\n\n\
         [jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\nschedule = \"@daily\"\n\
         region = \"us-east-1\"\ntags = {{ Schedule = \"office-hours\" }}\n",
    );
    fs::write(&cfg, &text).unwrap();
    let out = Command::new(crate::util::OPSD)
        .args(["check", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let cfg = cfg.display();
    for want in [
        format!(
            "{cfg}:9:20: `jobs.geo.license_key_file`: warning: {} is hidden from the daemon by \
             PrivateTmp=yes in opsd.service;",
            key.display()
        ),
        format!(
            "{cfg}:16:11: `jobs.backup.command`: warning: /root/bin/backup is hidden from the \
             daemon by ProtectHome=yes in opsd.service; move it"
        ),
        format!(
            "{cfg}:17:15: `jobs.backup.working_dir`: warning: /home/ops is hidden from the \
             daemon by ProtectHome=yes"
        ),
        format!(
            "{cfg}: `jobs.dev-stop`: warning: the AWS file the credential chain reads here \
             (the default), {}, is hidden from the daemon by PrivateTmp=yes in opsd.service",
            tmp.path().join(".aws/credentials").display()
        ),
        format!(
            "{cfg}: `alerts.page.command`: warning: /home/ops/page is hidden from the daemon by \
             ProtectHome=yes"
        ),
        format!(
            "{cfg}:11:14: `jobs.geo.output_dir`: warning: {}: ProtectSystem=strict in \
             opsd.service makes it read-only for the daemon",
            out_dir.display()
        ),
        "6 warning(s) about what the daemon cannot see; warnings do not change the exit code (0)"
            .to_string(),
    ] {
        assert!(all.contains(&want), "no {want:?} in:\n{all}");
    }
    assert!(
        stdout.lines().next().unwrap_or_default().contains("OK"),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
}

#[test]
fn a_job_without_working_dir_runs_in_the_daemons_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(
        &cfg,
        "[jobs.here]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"pwd\"\n\n\
         [jobs.there]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"pwd\"\n\
         working_dir = \"/usr\"\n",
    )
    .unwrap();
    let cwd = dir.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    for (job, want) in [("here", cwd.clone()), ("there", PathBuf::from("/usr"))] {
        let out = Command::new(crate::util::OPSD)
            .args(["run-job", job, "--log-format", "text", "--config"])
            .arg(&cfg)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want.display().to_string(),
            "{job}"
        );
    }
}

#[test]
fn check_reads_each_env_file_as_a_run_would_and_fails_on_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.env");
    let bad = dir.path().join("bad.env");
    fs::write(&good, "A=1\nB='two'\n").unwrap();
    fs::write(&bad, "A=1\nhunter2\n").unwrap();
    let cfg = dir.path().join("jobs.toml");
    let job = |name: &str, file: &str| {
        format!(
            "[jobs.{name}]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n\
             env_file = {file:?}\n\n"
        )
    };
    let text = [
        job("good", &good.display().to_string()),
        job("bad", &bad.display().to_string()),
        job(
            "maybe",
            &format!("-{}", dir.path().join("none.env").display()),
        ),
    ]
    .concat();
    fs::write(&cfg, text).unwrap();
    let out = opsd(&["check", "--config", &cfg.display().to_string()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for want in [
        format!("good: env_file: OK ({}, 2 variable(s))", good.display()),
        format!(
            "{}:11:12: `jobs.bad.env_file`: error: env_file {}:2: not KEY=VALUE",
            cfg.display(),
            bad.display()
        ),
        format!(
            "maybe: env_file: {} does not exist (optional",
            dir.path().join("none.env").display()
        ),
    ] {
        assert!(stdout.contains(&want), "no {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn status_after_a_restart_still_shows_the_last_run_and_its_output() {
    let d = Daemon::start(&job(
        "nightly",
        "0 0 3 * * *",
        "echo 'dump: 42 tables'; echo 'disk full' >&2; exit 3",
        "",
    ));
    let out = d.ctl(&["trigger", "nightly"]);
    assert!(!out.status.success());
    let before = String::from_utf8_lossy(&d.ctl(&["status", "nightly"]).stdout).into_owned();
    assert!(before.contains("exited with code 3"), "{before}");

    let mut d = d.restart();
    let after = String::from_utf8_lossy(&d.ctl(&["status", "nightly"]).stdout).into_owned();
    let last_run = |t: &str| {
        t.lines()
            .find(|l| l.contains("last run:"))
            .map(str::to_string)
    };
    assert_eq!(last_run(&after), last_run(&before), "{after}");
    assert!(
        after.contains("  | dump: 42 tables") && after.contains("  | disk full"),
        "{after}"
    );
    let table = String::from_utf8_lossy(&d.ctl(&["status"]).stdout).into_owned();
    assert!(table.contains("failed"), "{table}");

    // A record that cannot be read costs the last run, with a warning, not the daemon.
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    let record = d.path("state/last-run/nightly.json");
    assert!(record.exists(), "{log}");
    fs::write(&record, "{\"job_type\": \"command\", \"last\": {").unwrap();
    let _ = fs::remove_file(d.socket());
    let dir = std::mem::replace(&mut d.dir, tempfile::TempDir::new().unwrap());
    let d = Daemon::start_in(dir, &[]);
    let after = String::from_utf8_lossy(&d.ctl(&["status", "nightly"]).stdout).into_owned();
    assert!(after.contains("last run: none yet"), "{after}");
    let log = d.log();
    let warning = log
        .lines()
        .find(|l| l.contains("cannot read the last run from"))
        .unwrap_or_else(|| panic!("no warning about the corrupt record:\n{log}"));
    assert!(
        warning.contains(" WARN ") && warning.contains("nightly.json"),
        "{warning}"
    );
}

#[test]
fn a_last_run_record_is_overwritten_in_place_and_kept_across_kill_9() {
    use std::os::unix::fs::MetadataExt;
    let d = Daemon::start(&job("tick", "@every 1s", "echo run", ""));
    let record = d.path("state/last-run/tick.json");
    let seq = |text: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix("opsd-record seq="))
            .filter_map(|l| l.get(..20)?.parse::<u64>().ok())
            .max()
    };
    d.wait_for(
        || seq(&fs::read_to_string(&record).unwrap_or_default()).is_some(),
        "a first last-run record",
    );
    let inode = fs::metadata(&record).unwrap().ino();
    let first = seq(&fs::read_to_string(&record).unwrap()).unwrap();
    d.wait_for(
        || seq(&fs::read_to_string(&record).unwrap_or_default()) >= Some(first + 2),
        "two more runs recorded",
    );
    // Once it was a new file (a new inode) per run, renamed over the last.
    assert_eq!(
        fs::metadata(&record).unwrap().ino(),
        inode,
        "a new file per run"
    );
    let before = String::from_utf8_lossy(&d.ctl(&["status", "tick"]).stdout).into_owned();
    assert!(before.contains("last run: "), "{before}");
    d.write_config(
        "[jobs.tick]\ntype = \"command\"\nschedule = \"0 0 3 * * *\"\ncommand = \"echo run\"\n",
    );
    let d = d.kill_and_restart(|| {});
    let after = String::from_utf8_lossy(&d.ctl(&["status", "tick"]).stdout).into_owned();
    assert!(
        after.contains("last run: ") && !after.contains("none yet") && after.contains("success"),
        "{after}\n{}",
        d.log()
    );
    assert!(!d.log().contains("cannot read the last run"), "{}", d.log());
}

/// True when `text` holds a character that moves the cursor, recolours the terminal or ends a
/// line other than the newline between lines.
fn has_raw_controls(text: &str) -> bool {
    text.chars().any(|c| c != '\n' && c.is_control())
}

#[test]
fn status_trigger_and_run_job_print_what_a_run_record_holds_escaped() {
    // A last-run record someone else wrote (or a job's own output): escapes, a bell, a
    // carriage return and a line of its own.
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("jobs.toml"),
        job("b", "0 0 3 * * *", "printf 'o\\033[41mX\\r\\n'; exit 1", ""),
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("state/last-run")).unwrap();
    fs::write(
        dir.path().join("state/last-run/b.json"),
        r#"{"job_type":"command","last":{"run_id":"\u001b[31mRID","started":"2026-12-01T10:00:00Z","duration_ms":5,"outcome":"success","detail":"d\u001b[2J\u001b]0;pwn\u0007\nFAKE LINE","output":["o\u001b[41mX\r"]}}"#,
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let shown = String::from_utf8_lossy(&d.ctl(&["status", "b"]).stdout).into_owned();
    assert!(
        !has_raw_controls(&shown),
        "raw controls in status b: {shown:?}"
    );
    assert!(
        shown.contains("run \\u{1b}[31mRID): d\\u{1b}[2J\\u{1b}]0;pwn\\u{7}\\nFAKE LINE")
            && shown.contains("  | o\\u{1b}[41mX\\r"),
        "{shown}"
    );
    assert!(
        !shown.lines().any(|l| l.starts_with("FAKE")),
        "a forged line: {shown}"
    );
    // A name not there: the message speaks of every file the daemon read, not jobs.toml only.
    let err = String::from_utf8_lossy(&d.ctl(&["status", "nosuch"]).stderr).into_owned();
    assert!(
        err.contains("no job named \"nosuch\" in the loaded job files (")
            && err.contains("jobs.toml and its jobs.d/*.toml)"),
        "{err}"
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "b", "--json"],
    ] {
        let out = String::from_utf8_lossy(&d.ctl(args).stdout).into_owned();
        assert!(!has_raw_controls(&out), "raw controls in {args:?}: {out:?}");
    }
    // What a run prints now, through trigger and run-job.
    let out = d.ctl(&["trigger", "b"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !has_raw_controls(&text) && text.contains("  | o\\u{1b}[41mX\\r"),
        "{text:?}"
    );
    let out = Command::new(crate::util::OPSD)
        .args(["run-job", "b", "--log-format", "text", "--config"])
        .arg(d.path("jobs.toml"))
        .arg("--state-dir")
        .arg(d.path("state-run-job"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let verdict: Vec<&str> = err.lines().filter(|l| l.starts_with("  | ")).collect();
    assert_eq!(verdict, ["  | o\\u{1b}[41mX\\r"], "{err}");
}

#[test]
fn a_drop_in_named_with_control_characters_is_printed_escaped_by_check_reload_and_the_log() {
    let evil = "evil\u{1b}[2J\n FAKE: all ok.toml";
    let shown = "evil\\u{1b}[2J\\n FAKE: all ok.toml";
    let d = start_with_drop_ins(
        &job("main", "0 0 3 * * *", "true", ""),
        &[(evil, job("web", "0 0 3 * * *", "true", ""))],
    );
    let check = |what: &str| {
        let out = opsd(
            &[
                "check",
                "--config",
                &d.path("jobs.toml").display().to_string(),
            ],
            &[],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!has_raw_controls(&text), "{what}: raw controls: {text:?}");
        assert!(
            !text.lines().any(|l| l.starts_with(" FAKE")),
            "{what}: a forged line:\n{text}"
        );
        assert!(text.contains(shown), "{what}: no {shown:?} in:\n{text}");
        text
    };
    let text = check("a good drop-in");
    assert!(
        text.contains(&format!(
            "  read {}/jobs.d/{shown} (1 job(s))",
            d.path("").display().to_string().trim_end_matches('/')
        )),
        "{text}"
    );

    fs::write(
        d.path("jobs.d").join(evil),
        job("web", "0 0 3 * * *", "true", "timout = \"4s\""),
    )
    .unwrap();
    check("a broken drop-in");
    let out = d.ctl(&["reload"]);
    let reply = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{reply}");
    assert!(
        !has_raw_controls(&reply) && reply.contains(&format!("{shown}:5:1: `jobs.web.timout`")),
        "reload reply: {reply:?}"
    );
    d.wait_for(
        || d.log().contains("reload rejected;"),
        "the rejected reload in the log",
    );
    let log = d.log();
    assert!(
        !has_raw_controls(&log) && log.contains(&format!("{shown}:5:1: `jobs.web.timout`")),
        "log: {log:?}"
    );
    assert!(!log.lines().any(|l| l.starts_with(" FAKE")), "{log}");
}

#[test]
fn a_broken_drop_in_at_first_start_logs_each_error_once_then_why_it_did_not_start() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("jobs.toml"),
        job("main", "0 0 3 * * *", "true", ""),
    )
    .unwrap();
    fs::create_dir(dir.path().join("jobs.d")).unwrap();
    fs::write(
        dir.path().join("jobs.d/web.toml"),
        job(
            "web",
            "0 0 3 * * *",
            "true",
            "timout = \"4s\"\ntimezone = \"Mars/Base\"",
        ),
    )
    .unwrap();
    let out = Command::new(crate::util::OPSD)
        .args(["run", "--log-format", "text", "--config"])
        .arg(dir.path().join("jobs.toml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("opsd.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let web = dir.path().join("jobs.d/web.toml").display().to_string();
    let timout = format!("{web}:5:1: `jobs.web.timout`");
    let zone = format!("{web}:6:12: `jobs.web.timezone`: unknown time zone");
    for (what, n) in [(&timout, 1), (&zone, 1), (&"\\n".to_string(), 0)] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(what.as_str())).count(),
            n,
            "{what:?} on {n} line(s):\n{err}"
        );
    }
    for l in lines.iter().filter(|l| l.contains(&web)) {
        assert!(l.contains(" ERROR "), "not at error: {l}");
    }
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.contains(" ERROR ") && last.contains("not started: 2 errors in the job files"),
        "{err}"
    );
}

#[test]
fn a_process_left_in_the_supervisor_cgroup_is_named_at_warn_with_what_to_do() {
    let cg = TestCgroup::new();
    let d = start_in(&cg);
    let mut parked = None;
    let d = d.kill_and_restart(|| {
        // What a root job that moved itself into `supervisor` leaves after a crash.
        let sleeper = Command::new("sleep").arg("300").spawn().unwrap();
        fs::write(
            cg.dir.join("supervisor/cgroup.procs"),
            sleeper.id().to_string(),
        )
        .unwrap();
        parked = Some(sleeper);
    });
    let mut sleeper = parked.unwrap();
    let pid = sleeper.id();
    d.wait_for(
        || d.log().contains("runs get no cgroup of their own"),
        "the daemon to say how runs are tracked",
    );
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("runs get no cgroup of their own"))
        .unwrap_or_default();
    assert!(
        line.contains(" WARN ")
            && line.contains(&format!("holds pid {pid} (sleep, "))
            && line.contains("which is not opsd")
            && line.contains(&format!("kill {pid}")),
        "{line}"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn check_lists_the_jobs_d_files_it_skipped_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(&cfg, "").unwrap();
    let jobs_d = dir.path().join("jobs.d");
    fs::create_dir(&jobs_d).unwrap();
    let job = "[jobs.web]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n";
    for name in ["web.toml", "web.toml.dpkg-old", ".hidden.toml", "web.toml~"] {
        fs::write(jobs_d.join(name), job.replace("web", "w")).unwrap();
    }
    let out = opsd(&["check", "--config", &cfg.display().to_string()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for (name, why) in [
        (".hidden.toml", "a dotfile; dotfiles are skipped"),
        ("web.toml.dpkg-old", "a package manager's copy"),
        ("web.toml~", "an editor's backup"),
    ] {
        let want = format!("  skipped {} ({why})", jobs_d.join(name).display());
        assert!(
            stdout.lines().any(|l| l == want),
            "no {want:?} in:\n{stdout}"
        );
    }
    let read = format!("skipped {} ", jobs_d.join("web.toml").display());
    assert!(!stdout.contains(&read), "{stdout}");
    assert!(stdout.contains("OK, 1 job(s)"), "{stdout}");
}

#[test]
fn a_required_env_file_that_cannot_be_read_is_warned_of_at_start_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.env");
    let bad = dir.path().join("bad.env");
    fs::write(&bad, "A=1\nexport B=hunter2\n").unwrap();
    let jobs = |file: &Path| {
        [
            job(
                "needs",
                "@daily",
                "true",
                &format!("env_file = {:?}", file.display().to_string()),
            ),
            job(
                "maybe",
                "@daily",
                "true",
                &format!("env_file = \"-{}\"", dir.path().join("none.env").display()),
            ),
            job(
                "off",
                "@daily",
                "true",
                &format!(
                    "enabled = false\nenv_file = {:?}",
                    missing.display().to_string()
                ),
            ),
        ]
        .concat()
    };
    let d = Daemon::start(&jobs(&missing));
    let warned = |file: &Path| {
        let log = d.log();
        log.lines().any(|l| {
            l.contains("WARN")
                && l.contains("needs: env_file")
                && l.contains(&file.display().to_string())
        })
    };
    d.wait_for(
        || warned(&missing),
        "a warning naming the job and the missing file",
    );
    d.write_config(&jobs(&bad));
    let out = d.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(
        || warned(&bad),
        "a warning naming the job and the broken file",
    );
    let log = d.log();
    assert!(!log.contains("hunter2"), "{log}");
    assert!(!log.contains("maybe: env_file"), "{log}");
    assert!(!log.contains("off: env_file"), "{log}");
}

#[test]
fn check_warns_of_a_hidden_script_argument_and_run_home_but_not_of_a_tmp_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jobs.toml");
    fs::write(
        &cfg,
        "[jobs.s]\ntype = \"command\"\nschedule = \"@daily\"\n\
         command = [\"bash\", \"/home/u/job.sh\"]\nworking_dir = \"/tmp\"\nuser = \"root\"\n",
    )
    .unwrap();
    let out = opsd(&["check", "--config", &cfg.display().to_string()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let cfg = cfg.display();
    for want in [
        format!(
            "{cfg}:4:11: `jobs.s.command`: warning: /home/u/job.sh is hidden from the daemon by \
             ProtectHome=yes"
        ),
        format!(
            "{cfg}:6:8: `jobs.s.user`: warning: /root, the home of user root and so the run's \
             HOME, is hidden from the daemon by ProtectHome=yes"
        ),
    ] {
        assert!(stdout.contains(&want), "no {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("working_dir"), "{stdout}");
}

#[test]
fn a_job_moved_unchanged_into_jobs_d_is_unchanged_by_the_reload() {
    let slow = "sleep 30";
    let text = job("mover", "@start", slow, "");
    let d = Daemon::start(&text);
    d.wait_for(
        || d.log().contains("mover") && d.log().contains("run started"),
        "the run starting",
    );
    fs::create_dir(d.path("jobs.d")).unwrap();
    fs::write(d.path("jobs.d/mover.toml"), format!("# moved\n{text}")).unwrap();
    d.write_config("");
    let out = d.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(
        || d.log().contains("configuration reloaded"),
        "the reload to be logged",
    );
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap();
    assert!(
        line.contains("changed=[]") && line.contains("unchanged=1"),
        "{line}"
    );
}

#[test]
fn a_checkpoint_with_a_huge_fingerprint_length_is_set_aside_not_allocated() {
    use std::os::unix::fs::MetadataExt;
    let logs = tempfile::tempdir().unwrap();
    let error_log = logs.path().join("error.log");
    fs::write(&error_log, "[Wed] first line\n").unwrap();
    let meta = fs::metadata(&error_log).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("jobs.toml"),
        format!(
            "[alerts.mail]\ntype = \"command\"\ncommand = \"cat > /dev/null\"\n\n\
             [jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\napache_bin = \"/bin/false\"\n\
             poll_interval = \"50ms\"\nalert = [\"mail\"]\n",
            error_log.display().to_string()
        ),
    )
    .unwrap();
    // Its mark names the very file followed, so the watch compares its fingerprint: with
    // this length it once allocated a petabyte and the daemon aborted.
    let checkpoint = dir.path().join("state/apache/web.json");
    fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    fs::write(
        &checkpoint,
        format!(
            "{{\"version\":1,\"files\":[{{\"path\":{:?},\"dev\":{},\"ino\":{},\"offset\":0,\
             \"fingerprint\":{{\"len\":1000000000000000,\"sha256\":\"00\"}}}}]}}",
            error_log.display().to_string(),
            meta.dev(),
            meta.ino()
        ),
    )
    .unwrap();
    let mut d = Daemon::start_in(dir, &[]);
    d.wait_for(
        || d.log().contains("web: the checkpoint") && d.log().contains("is corrupt"),
        "the checkpoint set aside as corrupt",
    );
    let status = String::from_utf8_lossy(&d.ctl(&["status", "web"]).stdout).into_owned();
    assert!(status.contains("web"), "{status}");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("memory allocation"), "{log}");
}

/// `opsd ARGS` as [`opsd`] does, killed and failed when it has not exited within 15 s (a read
/// that blocks must fail the test, not hang it).
fn opsd_in_time(args: &[&str]) -> Output {
    let mut child = Command::new(crate::util::OPSD)
        .args(args)
        .env_remove("OPSD_SOCKET")
        .env_remove("OPSD_CONFIG")
        .env_remove("RUNTIME_DIRECTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !exits_in_time(&mut child) {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "opsd {args:?} did not exit within 15 s; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fifo_env_file_fails_its_run_at_once_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("job.env");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let ticks = dir.path().join("ticks");
    let config = [
        job(
            "piped",
            "@every 1s",
            "true",
            &format!("env_file = {:?}", fifo.display().to_string()),
        ),
        job(
            "tick",
            "@every 1s",
            &format!("echo tick >> {}", ticks.display()),
            "",
        ),
    ]
    .concat();
    fs::write(dir.path().join("jobs.toml"), &config).unwrap();
    // `opsd check` once waited for a writer for good.
    let cfg = dir.path().join("jobs.toml").display().to_string();
    let out = opsd_in_time(&["check", "--config", &cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let refused = format!(
        "env_file {}: it is a FIFO, not a regular file",
        fifo.display()
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&refused), "{stdout}");

    // The daemon's run once blocked an async thread on the open (two such jobs, both).
    let mut d = Daemon::start_in(dir, &[]);
    let warned = format!("piped: {refused}; its runs will fail until this is fixed");
    d.wait_for(|| d.log().contains(&warned), "the same words at start");
    let failed = format!("piped: run failed: {refused}");
    d.wait_for(
        || d.log().contains(&failed),
        "the run failing naming job and file",
    );
    let before = lines(&ticks).len();
    d.wait_for(
        || lines(&ticks).len() > before + 1,
        "the other job to go on",
    );
    let status = String::from_utf8_lossy(&d.ctl(&["status", "piped"]).stdout).into_owned();
    assert!(status.contains("failed"), "{status}");
    let mut child = d.child.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(exits_in_time(&mut child), "SIGTERM did not stop the daemon");
}

#[test]
fn a_fifo_or_a_huge_last_run_record_costs_the_record_not_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = [
        job("piped", "0 0 3 * * *", "true", ""),
        job("huge", "0 0 3 * * *", "true", ""),
    ]
    .concat();
    fs::write(dir.path().join("jobs.toml"), config).unwrap();
    let records = dir.path().join("state/last-run");
    fs::create_dir_all(&records).unwrap();
    nix::unistd::mkfifo(&records.join("piped.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Sparse; a symlink to /dev/zero (read until memory ran out) is the unit tests' (the old
    // code must not be able to exhaust a shared machine's memory here).
    fs::File::create(records.join("huge.json"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    // The start once waited for a writer for good: nothing answered on the control socket.
    let mut d = Daemon::start_in(dir, &[]);
    let socket = d.socket().display().to_string();
    let out = opsd_in_time(&["status", "piped", "--socket", &socket]);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(status.contains("last run: none yet"), "{status}");
    let log = d.log();
    for (name, what) in [("piped.json", "a FIFO"), ("huge.json", "larger than 1 MiB")] {
        let warning = log
            .lines()
            .find(|l| l.contains("cannot read the last run from") && l.contains(name))
            .unwrap_or_else(|| panic!("no warning about {name}:\n{log}"));
        assert!(
            warning.contains(" WARN ") && warning.contains(what),
            "{warning}"
        );
    }
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_fifo_or_a_huge_drop_in_is_an_error_naming_it_for_check_and_reload() {
    let d = start_with_drop_ins(&job("main", "@daily", "true", ""), &[]);
    let cfg = d.path("jobs.toml").display().to_string();
    let fifo = d.path("jobs.d/piped.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // `opsd check` once waited for a writer for good.
    let out = opsd_in_time(&["check", "--config", &cfg]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    let refused = format!(
        "{}: cannot read configuration: it is a FIFO",
        fifo.display()
    );
    assert!(text.contains(&refused), "{text}");
    // A reload once hung, and every later one queued behind it.
    d.signal("-HUP");
    d.wait_for(
        || d.log().contains(&refused),
        "the reload refusing the FIFO",
    );
    fs::remove_file(&fifo).unwrap();
    // Sparse; a symlink to /dev/zero (read until memory ran out) is the unit tests'.
    let huge = d.path("jobs.d/huge.toml");
    fs::File::create(&huge).unwrap().set_len(64 << 20).unwrap();
    let out = opsd_in_time(&["check", "--config", &cfg]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let capped = format!(
        "{}: cannot read configuration: it is larger than 16 MiB",
        huge.display()
    );
    assert!(text.contains(&capped), "{text}");
    let mut d = d;
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
}
