//! The `apache_log` job type: watch Apache error logs continuously and report alert-worthy
//! events (child segfaults, worker exhaustion, PHP fatals, ...) from the built-in rules and the
//! job's own. The reading and matching live in [`crate::apache`]; this is the job's face.
//!
//! How the files fit: `spec.rs` holds the job's keys, their checks and the rule set they give;
//! `run.rs` follows the logs until cancelled and logs each event; `alert.rs` turns an event
//! into an alert record; `doctor.rs` examines the server at job start so that child-crash
//! alerts carry its verdict; `live.rs` keeps the figures `opsd status` shows.

mod alert;
mod doctor;
mod kind;
mod live;
mod run;
mod spec;

pub use alert::{alert_for, crash_advice, CORE_ADVICE};
pub use doctor::{diagnose_in_background, StartDoctorError, DOCTOR_TIMEOUT};
pub use kind::KIND;
pub use live::WatchFigures;
pub use run::{checkpoint_path, log_event, run, run_with};
pub use spec::{ApacheLogSpec, CustomRuleSpec};

#[cfg(test)]
mod tests;
