//! A cgroup (v2) per run, where opsd has a cgroup subtree delegated to it (`Delegate=yes` in
//! its unit). A process cannot leave its cgroup by `setsid`, a double fork or clearing its
//! environment, and the kernel kills a whole cgroup with one write to `cgroup.kill`, without
//! reading `/proc` (which `ProtectProc=invisible` hides for other users' processes). So with a
//! delegated subtree a run ends the way systemd ends a unit: everything it started dies with it.
//!
//! Layout under the daemon's own cgroup `PATH`: the daemon moves itself into `PATH/supervisor`
//! (cgroup v2's "no internal processes" rule, as systemd's docs on `Delegate=` recommend), and
//! each run or alert program gets `PATH/run-<id>` (the id is opsd's, never the job's name). A
//! child joins its cgroup between fork and exec, so nothing it starts can fork out first.
//!
//! The subtree is used only when it is opsd's alone: not the root cgroup, writable, with
//! `cgroup.kill` (Linux 5.14), holding no other process, and no other live opsd in its
//! `supervisor`. Otherwise nothing here is used and runs are tracked by the subreaper and the
//! ledger only. `run-*` cgroups found at start are runs of a daemon that did not shut down.

use nix::sys::signal::{kill, Signal};
use nix::unistd::{access, AccessFlags, Pid};
use std::fs;
use std::io::Write as _;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The leaf the daemon itself moves into.
pub const SUPERVISOR: &str = "supervisor";
/// How every run's cgroup name starts.
pub const RUN_PREFIX: &str = "run-";
/// How long a killed cgroup may take to empty before opsd gives up on removing it.
const EMPTY_WAIT: Duration = Duration::from_secs(5);
/// How often an emptying cgroup is checked.
const POLL: Duration = Duration::from_millis(20);

/// The daemon's own (delegated) cgroup directory, once [`enter`] has succeeded.
static OWN: OnceLock<PathBuf> = OnceLock::new();

/// Why runs get no cgroup of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCgroup {
    /// The setup gives opsd no cgroup to manage (no delegation, the root cgroup, an old
    /// kernel): how opsd was started, said at info.
    Unusable(String),
    /// Processes sit in the `supervisor` leaf: another opsd, or what a root job moved there
    /// and left running. Something to act on, said at warn.
    Occupied(String),
}

impl std::fmt::Display for NoCgroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoCgroup::Unusable(why) | NoCgroup::Occupied(why) => f.write_str(why),
        }
    }
}

impl From<String> for NoCgroup {
    fn from(why: String) -> Self {
        NoCgroup::Unusable(why)
    }
}

impl From<&str> for NoCgroup {
    fn from(why: &str) -> Self {
        NoCgroup::Unusable(why.to_string())
    }
}

/// Finds the daemon's own cgroup and, when it is delegated to opsd alone, moves the daemon
/// into its `supervisor` leaf so that runs get cgroups of their own. Returns the directory, or
/// why runs will not get one.
pub fn enter() -> Result<PathBuf, NoCgroup> {
    if let Some(dir) = OWN.get() {
        return Ok(dir.clone());
    }
    let own =
        fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = own_path(&own).ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
    if path == "/" {
        return Err("opsd runs in the root cgroup".into());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let (root, mount) = cgroup2_mount(&mounts).ok_or("no cgroup2 file system is mounted")?;
    let dir = resolve(&root, &mount, path).ok_or_else(|| {
        format!(
            "cgroup {path} is outside the cgroup2 mount {}",
            mount.display()
        )
    })?;
    check(&dir)?;
    let leaf = dir.join(SUPERVISOR);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", leaf.display()).into()),
    }
    fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
        .map_err(|e| format!("cannot move opsd into {}: {e}", leaf.display()))?;
    Ok(OWN.get_or_init(|| dir).clone())
}

/// Whether `dir` is a cgroup opsd may manage: `cgroup.kill`, writable, delegated when it is a
/// systemd unit's, no other process in it, and no live process in its `supervisor` (another
/// opsd, or a process a root job moved there).
fn check(dir: &Path) -> Result<(), NoCgroup> {
    // systemd marks its units' cgroups with the invocation id, and delegated ones with
    // `delegate=1` (the `user.` copies are readable without CAP_SYS_ADMIN).
    let flag = |name: &str| {
        ["user.", "trusted."]
            .iter()
            .find_map(|ns| xattr(dir, &format!("{ns}{name}")))
    };
    if flag("invocation_id").is_some() && flag("delegate").as_deref() != Some(b"1") {
        return Err(format!(
            "{} is a systemd unit's cgroup without Delegate=yes",
            dir.display()
        )
        .into());
    }
    if !dir.join("cgroup.kill").exists() {
        return Err(format!("{} has no cgroup.kill (needs Linux 5.14)", dir.display()).into());
    }
    let writable = |p: &Path| access(p, AccessFlags::W_OK).is_ok();
    if !writable(dir) || !writable(&dir.join("cgroup.procs")) {
        return Err(format!(
            "{} is not writable (no Delegate=yes, or ProtectControlGroups=yes)",
            dir.display()
        )
        .into());
    }
    let me = std::process::id() as i32;
    if procs(dir).iter().any(|&p| p != me) {
        return Err(format!(
            "{} holds other processes, so it is not delegated to opsd alone",
            dir.display()
        )
        .into());
    }
    let leaf = dir.join(SUPERVISOR);
    let found = procs(&leaf);
    if !found.is_empty() {
        let found: Vec<Occupant> = found.into_iter().map(Occupant::of).collect();
        return Err(NoCgroup::Occupied(occupied(&leaf, &found)));
    }
    Ok(())
}

/// The most processes in `supervisor` a message names one by one.
const NAMED: usize = 5;

/// A process found in the `supervisor` leaf at start, as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Occupant {
    pid: i32,
    /// Its `comm` (anyone's text: the process sets it), when `/proc` shows it.
    comm: Option<String>,
    /// Its executable, when `/proc` lets opsd read the link.
    exe: Option<PathBuf>,
}

impl Occupant {
    /// What `/proc` says about `pid`.
    fn of(pid: i32) -> Occupant {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        Occupant {
            pid,
            comm: fs::read_to_string(proc.join("comm"))
                .ok()
                .map(|c| c.trim_end().to_string()),
            exe: fs::read_link(proc.join("exe")).ok(),
        }
    }

    /// True when its name or executable is opsd's (an executable replaced by an upgrade
    /// reads `opsd (deleted)`).
    fn looks_like_opsd(&self) -> bool {
        let exe_name = self
            .exe
            .as_ref()
            .and_then(|e| e.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        self.comm.as_deref() == Some("opsd")
            || exe_name.is_some_and(|n| n == "opsd" || n == "opsd (deleted)")
    }

    /// `pid 1234 (sleep, /usr/bin/sleep)`, escaped for a log line.
    fn describe(&self) -> String {
        let comm = self.comm.as_deref().unwrap_or("?");
        let exe = self
            .exe
            .as_ref()
            .map_or_else(|| "executable hidden".into(), |e| e.to_string_lossy());
        crate::escape::control(&format!("pid {} ({comm}, {exe})", self.pid)).into_owned()
    }
}

/// Why the `supervisor` leaf `leaf` holding `found` keeps runs out of cgroups: the processes,
/// whether they look like another opsd, and what to do.
fn occupied(leaf: &Path, found: &[Occupant]) -> String {
    let mut named: Vec<String> = found.iter().take(NAMED).map(Occupant::describe).collect();
    if found.len() > NAMED {
        named.push(format!("{} more", found.len() - NAMED));
    }
    let pids: Vec<String> = found.iter().map(|o| o.pid.to_string()).collect();
    let leaf = crate::escape::control(&leaf.to_string_lossy()).into_owned();
    let named = named.join(", ");
    if found.iter().any(Occupant::looks_like_opsd) {
        format!(
            "{leaf} holds {named}, which looks like another opsd: two daemons in one cgroup \
             would kill each other's runs; stop the other one (kill {}) and restart this one",
            pids.join(" ")
        )
    } else {
        format!(
            "{leaf} holds {named}, which is not opsd: most likely a process a root job moved \
             there, out of its run's cgroup, and left running; end it (kill {}) and restart \
             opsd so that runs get cgroups of their own again",
            pids.join(" ")
        )
    }
}

/// The value of extended attribute `name` of `path`, or `None` when it has none (or it cannot
/// be read).
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and outlive the call; the kernel writes at most
    // `buf.len()` bytes into `buf`.
    let n = unsafe {
        nix::libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    Some(buf.get(..n)?.to_vec())
}

/// The cgroup v2 path in `/proc/self/cgroup` text (the `0::PATH` line).
fn own_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The root and mount point of the first cgroup2 mount in `/proc/self/mountinfo` text.
fn cgroup2_mount(text: &str) -> Option<(String, PathBuf)> {
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        Some((
            unescape(fields.get(3)?),
            PathBuf::from(unescape(fields.get(4)?)),
        ))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match code {
            Some(b) if bytes[i] == b'\\' => {
                out.push(b);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of cgroup `path` on a cgroup2 mount at `mount` whose root is `root`.
fn resolve(root: &str, mount: &Path, path: &str) -> Option<PathBuf> {
    let rel = if root == "/" {
        path
    } else {
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(mount.join(rel.trim_start_matches('/')))
}

/// The pids in `dir`'s `cgroup.procs` (none when it cannot be read).
fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The pids in `dir` and every cgroup below it.
fn members(dir: &Path) -> Vec<i32> {
    let mut out = procs(dir);
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(members(&e.path()));
            }
        }
    }
    out
}

/// True while a process is left in `dir` or below (`populated 1` in `cgroup.events`).
fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|t| t.lines().any(|l| l == "populated 1"))
}

/// SIGKILLs everything in `dir` and below through `cgroup.kill`.
fn kill_all(dir: &Path) -> std::io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))?
        .write_all(b"1")
}

/// Removes `dir` and the cgroups a (root) run made below it, deepest first.
fn remove(dir: &Path) -> std::io::Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = remove(&e.path());
            }
        }
    }
    fs::remove_dir(dir)
}

/// Kills what is left in `dir`, waits (bounded) for it to empty and removes it. Returns how
/// many processes were in it.
fn kill_and_remove(dir: &Path) -> usize {
    let found = members(dir).len();
    if populated(dir) {
        let _ = kill_all(dir);
        let deadline = Instant::now() + EMPTY_WAIT;
        while populated(dir) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
    if let Err(e) = remove(dir) {
        tracing::error!(
            "cannot remove the cgroup {} ({e}); its processes may not have ended",
            dir.display()
        );
    }
    found
}

/// One run's (or alert program's) cgroup; what is still in it is killed when it is dropped.
#[derive(Debug)]
pub struct RunCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork so the child only writes to it.
    procs: fs::File,
    ended: bool,
}

/// A new cgroup for the run `id` under the daemon's own, or `None` when opsd has no
/// delegated cgroup. An id that is not a plain name is refused.
pub fn for_run(id: &str) -> std::io::Result<Option<RunCgroup>> {
    let Some(own) = OWN.get() else {
        return Ok(None);
    };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(std::io::Error::other(format!(
            "run id {id:?} is not a cgroup name"
        )));
    }
    let dir = own.join(format!("{RUN_PREFIX}{id}"));
    fs::create_dir(&dir)?;
    let procs = match fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
    {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_dir(&dir);
            return Err(e);
        }
    };
    Ok(Some(RunCgroup {
        dir,
        procs,
        ended: false,
    }))
}

impl RunCgroup {
    /// Makes `cmd`'s child join this cgroup between fork and exec. Register it before any
    /// `pre_exec` that drops privileges: joining needs the daemon's rights.
    pub fn join_at_exec(&self, cmd: &mut tokio::process::Command) {
        let fd = self.procs.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and only calls write(2), which is
        // async-signal-safe, on a descriptor opened before the fork and kept open by `self`
        // until the spawn has returned (the caller holds the cgroup for the whole run).
        // Writing "0" to cgroup.procs moves the writing process.
        unsafe {
            cmd.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(fd);
                match nix::unistd::write(fd, b"0") {
                    Ok(_) => Ok(()),
                    Err(e) => Err(std::io::Error::from(e)),
                }
            });
        }
    }

    /// Ends what is left in the cgroup once the run's own stop is done: SIGTERM to each
    /// process and `grace` to end (none when `grace` is zero), then `cgroup.kill`; waits
    /// (bounded) until it is empty and removes it. Returns how many processes were left.
    pub async fn end(mut self, grace: Duration) -> usize {
        self.ended = true;
        let found = members(&self.dir);
        if found.is_empty() && !populated(&self.dir) {
            let _ = remove(&self.dir);
            return 0;
        }
        if !grace.is_zero() {
            for &p in &found {
                let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
            }
            let deadline = tokio::time::Instant::now() + grace;
            while populated(&self.dir) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
            }
        }
        if populated(&self.dir) {
            if let Err(e) = kill_all(&self.dir) {
                tracing::error!(
                    "cannot kill the cgroup {} ({e}); its processes keep running",
                    self.dir.display()
                );
            }
            let deadline = tokio::time::Instant::now() + EMPTY_WAIT;
            while populated(&self.dir) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
            }
        }
        super::reaper::reap_adopted();
        if let Err(e) = remove(&self.dir) {
            tracing::error!(
                "cannot remove the cgroup {} ({e}); its processes may not have ended",
                self.dir.display()
            );
        }
        found.len()
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // A run abandoned without its end (its task dropped at shutdown): kill, do not wait.
        if !self.ended {
            let _ = kill_all(&self.dir);
            let _ = remove(&self.dir);
        }
    }
}

/// The `run-*` cgroups under the daemon's own: at start, those of a daemon that did not shut
/// down. Read before any run of this daemon starts.
pub fn left_over() -> Vec<PathBuf> {
    let Some(own) = OWN.get() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(own) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_string_lossy().starts_with(RUN_PREFIX))
        .map(|e| e.path())
        .collect()
}

/// The run id a run cgroup's directory is named after.
pub fn run_id_of(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    Some(name.strip_prefix(RUN_PREFIX)?.to_string())
}

/// Kills and removes the cgroups in `dirs` (blocking); returns each one's run id and how many
/// processes were still in it.
pub fn stop_left_over(dirs: &[PathBuf]) -> Vec<(String, usize)> {
    dirs.iter()
        .filter_map(|d| Some((run_id_of(d)?, kill_and_remove(d))))
        .collect()
}

/// At shutdown: kills and removes every run cgroup still there (runs abandoned on the way
/// out). Returns how many processes they held.
pub fn kill_all_runs() -> usize {
    left_over().iter().map(|d| kill_and_remove(d)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_cgroup_is_found_on_a_hybrid_and_a_namespaced_mount() {
        let cg = "9:name=systemd:/system.slice/opsd.service\n0::/system.slice/opsd.service\n";
        assert_eq!(own_path(cg), Some("/system.slice/opsd.service"));
        let mi = "30 1 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let (root, mount) = cgroup2_mount(mi).expect("cgroup2 mount");
        assert_eq!(root, "/");
        assert_eq!(
            resolve(&root, &mount, "/system.slice/opsd.service"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/opsd.service"
            ))
        );
        // A mount of a sub-tree (a container without a cgroup namespace).
        let mi = "50 1 0:38 /machine.slice/c /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        let (root, mount) = cgroup2_mount(mi).expect("cgroup2 mount");
        assert_eq!(mount, PathBuf::from("/sys/fs/cgroup x"));
        assert_eq!(
            resolve(&root, &mount, "/machine.slice/c/opsd.service"),
            Some(PathBuf::from("/sys/fs/cgroup x/opsd.service"))
        );
        assert_eq!(resolve(&root, &mount, "/machine.slice/cx"), None);
        assert_eq!(resolve("/", &mount, "/a/../b"), None);
        assert_eq!(own_path("1:cpu:/\n"), None);
    }

    #[test]
    fn an_attribute_is_read_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(xattr(dir.path(), "user.delegate"), None);
        // tmpfs and most disks take user attributes; where one does not, only `None` is known.
        if set_xattr(dir.path(), "user.delegate", b"1") {
            assert_eq!(
                xattr(dir.path(), "user.delegate").as_deref(),
                Some(&b"1"[..])
            );
        }
    }

    fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
        let name = std::ffi::CString::new(name).expect("name");
        // SAFETY: NUL-terminated strings and a value slice that outlive the call.
        unsafe {
            nix::libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ) == 0
        }
    }

    #[test]
    fn processes_in_supervisor_are_named_and_told_apart_from_another_opsd() {
        let leaf = Path::new("/sys/fs/cgroup/opsd.service/supervisor");
        let sleeper = Occupant {
            pid: 4242,
            comm: Some("sleep\u{1b}[2J".into()),
            exe: Some("/usr/bin/sleep".into()),
        };
        let text = occupied(leaf, std::slice::from_ref(&sleeper));
        assert!(
            text.contains("holds pid 4242 (sleep\\u{1b}[2J, /usr/bin/sleep), which is not opsd")
                && text.contains("kill 4242")
                && !text.contains('\u{1b}'),
            "{text}"
        );
        let opsd = Occupant {
            pid: 7,
            comm: None,
            exe: Some("/usr/bin/opsd (deleted)".into()),
        };
        assert!(opsd.looks_like_opsd());
        let text = occupied(leaf, &[opsd, sleeper.clone()]);
        assert!(
            text.contains("pid 7 (?, /usr/bin/opsd (deleted))")
                && text.contains("looks like another opsd")
                && text.contains("kill 7 4242"),
            "{text}"
        );
        let many: Vec<Occupant> = (0..8)
            .map(|pid| Occupant {
                pid,
                ..sleeper.clone()
            })
            .collect();
        assert!(occupied(leaf, &many).contains(", 3 more, which"));
        // The process running this test is a test binary, not opsd.
        assert!(!Occupant::of(std::process::id() as i32).looks_like_opsd());
    }

    #[test]
    fn a_run_cgroup_is_named_after_its_id_only() {
        let dir = Path::new("/sys/fs/cgroup/opsd.service/run-0123abcd");
        assert_eq!(run_id_of(dir).as_deref(), Some("0123abcd"));
        assert_eq!(run_id_of(Path::new("/x/supervisor")), None);
    }
}
