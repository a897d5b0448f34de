//! Process supervision: every process a run starts ends with its run, the way systemd ends a
//! unit's. A run's own process group is stopped by the job type; this module finds what left
//! the group (`setsid`, double forks) through the daemon being a child subreaper
//! ([`reaper`]), and what a daemon killed with `kill -9` left through a file per live run in
//! the state directory ([`ledger`]). Where opsd has a delegated cgroup subtree, each run also
//! gets a cgroup of its own ([`cgroup`]), which nothing it starts can leave and which is killed
//! when the run ends. Every program opsd starts, a run or an alert program, also begins with a
//! clean environment ([`mod@env`]), and runs take turns to start their processes
//! ([`starts`]), so a thousand due at once start at the machine's pace; the doctors' probes run
//! through [`call`] (clean environment, bounded in time and output). It imports nothing of ours.

pub mod call;
pub mod cgroup;
pub mod env;
pub mod ledger;
pub mod reaper;
pub mod starts;
pub mod tree;

use std::path::Path;

/// The daemon's supervision for its whole life; dropping it at shutdown kills whatever
/// process is still left below the daemon.
#[derive(Debug)]
pub struct Supervisor {
    _private: (),
}

/// Starts supervising for a daemon on `state_dir`: takes its delegated cgroup if it has one,
/// becomes a child subreaper, reaps adopted children from now on, and stops (in the
/// background) what runs of a previous daemon that did not shut down left running. Must be
/// called inside the tokio runtime, before any run.
pub fn supervise(state_dir: &Path) -> Supervisor {
    match cgroup::enter() {
        Ok(dir) => tracing::info!(cgroup = %dir.display(),
            "each run gets its own cgroup under {}; everything a run starts ends with it", dir.display()),
        Err(cgroup::NoCgroup::Occupied(why)) => tracing::warn!(
            "runs get no cgroup of their own: {why}; until then what a run leaves is found only through the processes opsd adopts and their OPSD_RUN_ID"),
        Err(why) => tracing::info!(
            "runs get no cgroup of their own ({why}); what a run leaves is found through the processes opsd adopts and their OPSD_RUN_ID"),
    }
    reaper::become_subreaper();
    if let Err(e) = reaper::spawn_reaper() {
        tracing::warn!("cannot listen for SIGCHLD ({e}); processes jobs leave behind are reaped only when their run ends");
    }
    // Read before any new run records itself; stopped off the start path.
    let left = ledger::left_over(state_dir);
    let cgroups = cgroup::left_over();
    if !left.is_empty() || !cgroups.is_empty() {
        std::thread::spawn(move || {
            stop_left_cgroups(&cgroups, &left);
            ledger::stop_left_over(left);
        });
    }
    Supervisor { _private: () }
}

/// Kills the run cgroups a daemon that did not shut down left, logging each that still held
/// processes at warn with its job (from the run's ledger file, when it has one).
fn stop_left_cgroups(dirs: &[std::path::PathBuf], ledger: &[ledger::LeftOver]) {
    for (run_id, processes) in cgroup::stop_left_over(dirs) {
        if processes == 0 {
            continue;
        }
        let job = ledger
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .find(|e| e.run_id == run_id)
            .map(|e| e.job.clone());
        let job = match job {
            Some(j) => j,
            None if run_id.starts_with("alert-") => "an alert program".to_string(),
            None => "an unknown job".to_string(),
        };
        tracing::warn!(job = %job, run_id = %run_id, processes,
            "{job}: run {run_id} was still running when the previous opsd ended without shutting down; killed the {processes} processes left in its cgroup");
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let killed = cgroup::kill_all_runs() + reaper::kill_all_left();
        if killed > 0 {
            tracing::warn!(
                processes = killed,
                "killed {killed} processes that jobs or alert programs left running at shutdown"
            );
        }
    }
}
