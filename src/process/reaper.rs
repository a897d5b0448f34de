//! The daemon as a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process a run started that
//! left its process group and session (`setsid`, a double fork) is re-parented to the daemon
//! when its parent ends, instead of to PID 1, so the daemon can still find it, stop it with
//! its run, and reap it.
//!
//! Which run an adopted process belongs to is read from its environment: every run's
//! processes inherit `OPSD_RUN_ID` (see [`env`](super::env)). Process groups and sessions
//! are what daemonizing changes, and ancestry is lost at re-parenting, while the environment
//! is inherited through fork, `setsid` and exec unless a program clears it on purpose. An
//! adopted process without a readable marker is left alone while the daemon runs and stopped
//! at its shutdown.
//!
//! Reaping must not take a child that tokio waits for (its `wait()` would fail), so every
//! process opsd spawns goes through [`spawn`], which records its pid; the reaper only reaps
//! zombies it did not spawn. Spawns hold a shared gate while they spawn and record, and a
//! reaper pass holds it exclusively: spawns on different threads never wait for each other
//! (a spawn, by `posix_spawn` or by fork when a run has a cgroup or a `user`, waits for the
//! child's exec, the longest step of a run's start), only for a reaper pass, which waits for
//! the spawns in progress to have recorded their pids.

use super::tree;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

/// The pids of processes opsd spawned itself, which tokio reaps.
static SPAWNED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);
/// Held shared from before a spawn until its pid is in [`SPAWNED`], exclusively by a reaper pass.
static GATE: RwLock<()> = RwLock::new(());
/// True once this process is a child subreaper.
static SUBREAPER: AtomicBool = AtomicBool::new(false);
/// How often a stopping process tree is checked.
const POLL: Duration = Duration::from_millis(20);
/// The shortest time between two passes of the SIGCHLD reaper.
const REAP_EVERY: Duration = Duration::from_millis(50);
/// How long processes may take to end after SIGKILL (stuck in the kernel) before giving up.
const STUCK: Duration = Duration::from_secs(5);

fn spawned() -> MutexGuard<'static, Option<HashSet<i32>>> {
    SPAWNED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a spawned child's pid out of the reaper's reach until dropped (after its `wait()`).
#[derive(Debug)]
pub struct Spawned {
    pid: i32,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(set) = spawned().as_mut() {
            set.remove(&self.pid);
        }
    }
}

/// Spawns `cmd`, recording its pid before the reaper can see it exit.
pub fn spawn(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<(tokio::process::Child, Spawned)> {
    let _gate = GATE.read().unwrap_or_else(PoisonError::into_inner);
    let child = cmd.spawn()?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    spawned().get_or_insert_with(HashSet::new).insert(pid);
    Ok((child, Spawned { pid }))
}

/// Makes this process a child subreaper; false (and a warning) when the kernel refuses.
pub fn become_subreaper() -> bool {
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => {
            SUBREAPER.store(true, Ordering::SeqCst);
            true
        }
        Err(e) => {
            tracing::warn!("cannot become a child subreaper ({e}); processes a job runs in the background after leaving its session are found only by a scan of /proc");
            false
        }
    }
}

/// Reaps the adopted children that have ended (never a child opsd spawned).
pub fn reap_adopted() {
    let me = std::process::id() as i32;
    // Listed before the gate, which a spawn holds until it has recorded its child: a child
    // spawned meanwhile is in the set once the gate is ours.
    let children = tree::children(me);
    let _gate = GATE.write().unwrap_or_else(PoisonError::into_inner);
    let set = spawned();
    for pid in children {
        let ours = set.as_ref().is_some_and(|s| s.contains(&pid));
        // No look at /proc/PID first: another user's process may be hidden there
        // (ProtectProc=invisible), and WNOHANG only takes a child that has ended.
        if !ours {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// Reaps adopted children whenever a child ends, for the daemon's whole life, at most every
/// [`REAP_EVERY`]: each pass reads the daemon's children from `/proc`, and with a thousand
/// runs a second a pass per SIGCHLD took CPU and the spawn lock from the runs themselves.
pub fn spawn_reaper() -> std::io::Result<()> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            reap_adopted();
            // A SIGCHLD meanwhile is kept: the next recv returns at once.
            tokio::time::sleep(REAP_EVERY).await;
        }
    });
    Ok(())
}

/// The processes carrying `OPSD_RUN_ID=run_id` and their descendants. With the daemon a
/// subreaper, a run's escaped processes are its adopted children (the run's leader has
/// ended and been reaped), which the kernel gives to the daemon's main thread (the first
/// living thread of the subreaper, and the main thread lives as long as the daemon): its one
/// children file is read, not every thread's, at the end of every run (with 1,000 runs a
/// second and dozens of threads, reading them all was a tenth of the daemon's CPU). Without
/// a subreaper, every process is looked at.
fn run_processes(run_id: &str) -> Vec<i32> {
    let mut candidates = if SUBREAPER.load(Ordering::SeqCst) {
        tree::main_thread_children(std::process::id() as i32)
    } else {
        tree::all_pids()
    };
    // Called at the end of every run: drop the spawned ones under the lock, no copy of it.
    if let Some(set) = spawned().as_ref() {
        candidates.retain(|p| !set.contains(p));
    }
    let mut out = Vec::new();
    for pid in candidates {
        if out.contains(&pid) {
            continue;
        }
        let alive = tree::stat(pid).is_some_and(|s| s.alive());
        if alive && tree::env_var(pid, "OPSD_RUN_ID").as_deref() == Some(run_id.as_bytes()) {
            out.push(pid);
            out.extend(tree::descendants(pid));
        }
    }
    out.retain(|&p| tree::stat(p).is_some_and(|s| s.alive()));
    out
}

/// Stops what run `run_id` left running outside its process group: SIGTERM, then SIGKILL
/// after `grace` (at once when `grace` is zero), and reaps them. Returns how many processes
/// it found.
pub async fn stop_run(run_id: &str, grace: Duration) -> usize {
    let found = run_processes(run_id);
    if found.is_empty() {
        return 0;
    }
    let first = if grace.is_zero() {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    signal_all(&found, first);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let left = run_processes(run_id);
        if left.is_empty() {
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            signal_all(&left, Signal::SIGKILL);
        }
        if now >= deadline + STUCK {
            tracing::error!(
                run_id,
                processes = left.len(),
                "{} processes of run {run_id} did not end on SIGKILL",
                left.len()
            );
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    reap_adopted();
    found.len()
}

/// Kills every process still descending from the daemon when it exits (runs and alert
/// deliveries have been stopped or abandoned by then: what is left would outlive opsd), and
/// reaps the adopted ones. Returns how many processes it killed.
pub fn kill_all_left() -> usize {
    let me = std::process::id() as i32;
    let mut killed: HashSet<i32> = HashSet::new();
    for _ in 0..50 {
        let targets: Vec<i32> = tree::descendants(me)
            .into_iter()
            .filter(|&p| tree::stat(p).is_some_and(|s| s.alive()))
            .collect();
        reap_adopted();
        if targets.is_empty() {
            break;
        }
        killed.extend(&targets);
        signal_all(&targets, Signal::SIGKILL);
        std::thread::sleep(POLL);
    }
    reap_adopted();
    killed.len()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), sig);
    }
}
