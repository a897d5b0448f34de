//! Process supervision: every process a run starts ends with its run, the way systemd ends a
//! unit's. A run's own process group is stopped by the job type; this module finds what left
//! the group (`setsid`, double forks) through the daemon being a child subreaper
//! ([`reaper`]), and what a daemon killed with `kill -9` left through a file per live run in
//! the state directory ([`ledger`]). Every program opsd starts, a run or an alert program, also
//! begins with a clean environment ([`env`]). It imports nothing of ours.

pub mod env;
pub mod ledger;
pub mod reaper;
pub mod tree;

use std::path::Path;

/// The daemon's supervision for its whole life; dropping it at shutdown kills whatever
/// process is still left below the daemon.
#[derive(Debug)]
pub struct Supervisor {
    _private: (),
}

/// Starts supervising for a daemon on `state_dir`: becomes a child subreaper, reaps adopted
/// children from now on, and stops (in the background) what runs of a previous daemon that
/// did not shut down left running. Must be called inside the tokio runtime, before any run.
pub fn supervise(state_dir: &Path) -> Supervisor {
    reaper::become_subreaper();
    if let Err(e) = reaper::spawn_reaper() {
        tracing::warn!("cannot listen for SIGCHLD ({e}); processes jobs leave behind are reaped only when their run ends");
    }
    // Read before any new run records itself; stopped off the start path.
    let left = ledger::left_over(state_dir);
    if !left.is_empty() {
        std::thread::spawn(move || ledger::stop_left_over(left));
    }
    Supervisor { _private: () }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let killed = reaper::kill_all_left();
        if killed > 0 {
            tracing::warn!(
                processes = killed,
                "killed {killed} processes that jobs or alert programs left running at shutdown"
            );
        }
    }
}
