//! The scheduler: arms one timer per job, applies overlap, jitter and catch-up policies,
//! swaps configurations on reload without disturbing unchanged or running jobs, keeps each
//! job's last run in the state directory (`last-run/NAME.json`) across restarts, and shuts
//! down by waiting for running jobs, then stopping them with the reason.
//!
//! How the pieces fit, from the daemon down:
//! - [`Scheduler`] (`job_set.rs`) holds one entry per job: at start, on reload (what changes
//!   is decided by `reload.rs` from the two job lists alone) and at shutdown.
//! - Each scheduled job's timer (`timer.rs`) sleeps to its next slot, finishing on the precise
//!   `alarm.rs`, and tells the runner to fire; a continuous job has a supervisor instead.
//! - The runner (`runner.rs`) applies the overlap policy (`job_state.rs` counts the runs) and
//!   jitter, and restarts continuous jobs with `backoff.rs`'s waits.
//! - [`execute()`] (`execute.rs`) carries out one run: timeout, stop reason, the start and end
//!   log events, and `failure_alert.rs`'s alert when it ends badly.
//! - `gate.rs` is what a fleet job's slot asks before it starts: whether this host may run it
//!   (the daemon plugs in `crate::fleet`'s etcd claims; the scheduler knows only the trait).
//! - `status.rs` is what `opsd status` shows of each job; `recorder.rs` is how whoever keeps
//!   figures about runs (the metrics) hears that one ended.

pub mod alarm;
mod backoff;
pub mod execute;
mod failure_alert;
pub mod gate;
mod job_set;
pub mod job_state;
mod recorder;
mod reload;
mod runner;
pub mod status;
#[cfg(test)]
mod tests;
mod timer;

pub use execute::{execute, Finished, Run, RunControl, RunMode, StopReason, Trigger};
pub use failure_alert::failed_run_alert;
pub use gate::{Claimed, SlotGate, Takeover, Takeovers, Verdict};
pub use job_set::Scheduler;
pub use job_state::{Figures, JobState, LastRun, RunCounts};
pub use recorder::{NoRecorder, RunRecorder};
pub use reload::ReloadSummary;
pub use runner::TriggerReply;
pub use status::{Changes, JobFigures, JobName, JobStatus};
