//! A real systemd booted in `systemd-nspawn` with a volatile root, for end-to-end tests of opsd
//! under systemd (see `docs/systemd.md`, "How it is tested"). The container is always powered off
//! when the [`Container`] is dropped, also when a step panics; only the `timeout` process this
//! code started (and, through it, its nspawn) is ever signalled.

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on one container's life: `timeout` ends nspawn after this even if the test
/// process dies without cleaning up.
const CONTAINER_LIFETIME_SECS: u32 = 240;
/// PATH inside the container (commands run there with an empty environment plus this).
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One host directory bound into the container.
#[derive(Debug, Clone)]
pub struct Bind {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: String,
    /// Read-only inside the container.
    pub read_only: bool,
}

/// A host directory seen in the container through an overlay whose upper (written) layer is a
/// scratch directory of the test: the container can change it, the host's copy never changes.
/// (`--volatile=overlay` would do this for the whole root but nspawn refuses it for `-D /`.)
#[derive(Debug, Clone)]
pub struct Overlay {
    /// The host directory, the overlay's lower layer; also where it appears in the container.
    pub dir: String,
    /// The scratch directory that receives the container's changes.
    pub upper: PathBuf,
}

/// Fails the test with a clear message when a real part the harness needs is missing.
pub fn require_tools() {
    for tool in ["systemd-nspawn", "nsenter", "timeout"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: the systemd end-to-end tests need it \
             (apt-get install -y systemd-container util-linux coreutils; see .ci/setup)"
        );
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the systemd end-to-end tests boot a container with systemd-nspawn and must run as root"
    );
}

/// A booted container running systemd as its PID 1.
pub struct Container {
    /// The `timeout … systemd-nspawn` process this harness started.
    nspawn: Option<Child>,
    /// The container's PID 1 as seen from the host.
    init: u32,
    /// nspawn's console output, for failure messages.
    boot_log: PathBuf,
}

impl Container {
    /// Boots systemd in a container of the host's own OS and waits until it is up.
    /// The root is always `--volatile=yes`: a tmpfs with the host's `/usr` read-only, so the
    /// container's systemd cannot touch the host's files (see ../shared/docs/systemd-e2e.md).
    /// Overlays are mounted before binds, so a bind may cover part of an overlay.
    pub fn boot(name: &str, overlays: &[Overlay], binds: &[Bind], work: &Path) -> Container {
        require_tools();
        let boot_log = work.join(format!("{name}-boot.log"));
        let log = std::fs::File::create(&boot_log).expect("create boot log");
        let mut cmd = Command::new("timeout");
        cmd.arg(CONTAINER_LIFETIME_SECS.to_string())
            .arg("systemd-nspawn")
            .args(["-D", "/"])
            .arg("--volatile=yes")
            .args(["--private-network", "--register=no", "--keep-unit"])
            .args(["-M", name]);
        for o in overlays {
            std::fs::create_dir_all(&o.upper).expect("create overlay upper dir");
            cmd.arg(format!(
                "--overlay={}:{}:{}",
                o.dir,
                o.upper.display(),
                o.dir
            ));
        }
        for b in binds {
            let flag = if b.read_only { "--bind-ro" } else { "--bind" };
            cmd.arg(format!("{flag}={}:{}", b.host.display(), b.container));
        }
        cmd.args(["-b", "systemd.firstboot=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup boot log"))
            .stderr(log);
        let child = cmd.spawn().expect("cannot start timeout/systemd-nspawn");
        let mut c = Container {
            init: 0,
            nspawn: Some(child),
            boot_log,
        };
        let nspawn_pid = c.nspawn.as_ref().map_or(0, Child::id);
        c.init = c.poll("the container's systemd to appear", 20, || {
            find_init(nspawn_pid)
        });
        c.poll("systemd's private socket in the container", 20, || {
            c.run(&["test", "-S", "/run/systemd/private"])
                .status
                .success()
                .then_some(())
        });
        // "running", or "degraded" when one of the host's units fails in a container.
        let state = c.run(&["systemctl", "is-system-running", "--wait"]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        assert!(
            state == "running" || state == "degraded",
            "the container's systemd did not finish booting (state {state:?}); boot log:\n{}",
            c.boot_log_text()
        );
        c
    }

    /// Runs a program inside the container (all its namespaces, empty environment + PATH).
    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a", "--"])
            .args(["env", "-i", &format!("PATH={CONTAINER_PATH}")])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run nsenter")
    }

    /// Runs a program inside the container and returns its stdout; panics with `what` and the
    /// program's output when it fails.
    pub fn ok(&self, what: &str, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{what}: `{}` failed ({}):\n{}",
            argv.join(" "),
            out.status,
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a `/bin/sh -c` line inside the container.
    pub fn sh(&self, line: &str) -> Output {
        self.run(&["/bin/sh", "-c", line])
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    pub fn prop(&self, unit: &str, name: &str) -> String {
        self.ok(
            &format!("read {unit} property {name}"),
            &["systemctl", "show", unit, "-p", name, "--value"],
        )
        .trim()
        .to_string()
    }

    /// The cursor of the newest journal entry, to read only what comes after it.
    pub fn journal_cursor(&self) -> String {
        let out = self.ok(
            "read the journal cursor",
            &["journalctl", "-n", "1", "-o", "json", "--no-pager"],
        );
        let entry: Map<String, Value> = out
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .expect("journalctl -n 1 -o json gave no entry");
        entry
            .get("__CURSOR")
            .and_then(Value::as_str)
            .expect("journal entry without __CURSOR")
            .to_string()
    }

    /// The unit's journal entries (its own logs and systemd's about it), after `cursor` if given.
    pub fn journal(&self, unit: &str, after: Option<&str>) -> Vec<Entry> {
        let mut argv = vec!["journalctl", "-u", unit, "-o", "json", "--no-pager"];
        let after_arg;
        if let Some(c) = after {
            after_arg = format!("--after-cursor={c}");
            argv.push(&after_arg);
        }
        let out = self.ok("read the journal", &argv);
        out.lines()
            .filter_map(|l| serde_json::from_str::<Map<String, Value>>(l).ok())
            .map(Entry)
            .collect()
    }

    /// The last `n` journal lines of `unit` in journalctl's short format, for failure messages.
    pub fn journal_tail(&self, unit: &str, n: usize) -> String {
        let out = self.run(&[
            "journalctl",
            "-u",
            unit,
            "-n",
            &n.to_string(),
            "--no-pager",
            "-o",
            "short-precise",
        ]);
        output_text(&out)
    }

    /// Calls `probe` every 100 ms until it returns `Some`, or fails after `secs` seconds saying
    /// what was awaited.
    pub fn poll<T>(&self, what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "gave up after {secs}s waiting for {what}\n--- boot log (tail) ---\n{}",
                    tail(&self.boot_log_text(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// nspawn's console output so far.
    pub fn boot_log_text(&self) -> String {
        std::fs::read_to_string(&self.boot_log).unwrap_or_default()
    }
}

impl Drop for Container {
    /// Powers the container off and reaps nspawn; if it does not go within 30 s, signals only
    /// the `timeout` process started by [`Container::boot`] (which passes it on to nspawn).
    fn drop(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if self.init != 0 {
            let _ = Command::new("nsenter")
                .args(["-t", &self.init.to_string(), "-a", "--"])
                .args(["systemctl", "poweroff", "--no-block"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        for (wait, signal) in [
            (30, Some(nix::sys::signal::Signal::SIGTERM)),
            (10, Some(nix::sys::signal::Signal::SIGKILL)),
            (10, None),
        ] {
            let deadline = Instant::now() + Duration::from_secs(wait);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(sig) = signal {
                eprintln!("container did not power off in {wait}s; sending {sig} to pid {pid}");
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    }
}

/// The container's systemd: a process named `systemd` descending from `ancestor`.
fn find_init(ancestor: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "systemd" {
            continue;
        }
        let mut p = pid;
        while p > 1 {
            if p == ancestor {
                return Some(pid);
            }
            p = parent_of(p)?;
        }
    }
    None
}

/// The parent pid of `pid`, from `/proc/PID/status`.
fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One journal entry as `journalctl -o json` prints it.
#[derive(Debug, Clone)]
pub struct Entry(pub Map<String, Value>);

impl Entry {
    /// A field's text value (journald gives non-UTF-8 values as arrays; those are `None`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    /// True when `field` has exactly `value`.
    pub fn is(&self, field: &str, value: &str) -> bool {
        self.get(field) == Some(value)
    }

    /// The MESSAGE field, or "".
    pub fn message(&self) -> &str {
        self.get("MESSAGE").unwrap_or("")
    }
}

/// A compact listing of entries with their opsd fields, for failure messages.
pub fn describe(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries.iter().rev().take(40).rev() {
        let _ = writeln!(
            s,
            "  prio={} job={} run_id={} outcome={} duration_ms={} | {}",
            e.get("PRIORITY").unwrap_or("-"),
            e.get("JOB").unwrap_or("-"),
            e.get("RUN_ID").unwrap_or("-"),
            e.get("OUTCOME").unwrap_or("-"),
            e.get("DURATION_MS").unwrap_or("-"),
            e.message()
        );
    }
    s
}

/// stdout and stderr of a finished program, labelled.
pub fn output_text(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prints a step's banner so the CI log shows where a failure happened.
pub fn step(number: &str, title: &str) {
    eprintln!("\n=== step {number}: {title}");
}
