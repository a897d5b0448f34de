//! The per-job snapshot `opsd status` prints, like `systemctl list-timers`.

use super::job_state::RunCounts;
use super::{JobState, LastRun};
use crate::config::JobConfig;
use crate::jobs::LiveStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One job as `opsd status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its `type`.
    pub job_type: String,
    /// Its schedule expression, `None` for continuous jobs.
    pub schedule: Option<String>,
    /// The IANA zone its schedule is evaluated in.
    pub timezone: Option<String>,
    /// False when `enabled = false`.
    pub enabled: bool,
    /// When it fires next.
    pub next: Option<DateTime<Utc>>,
    /// Its last finished run.
    pub last: Option<LastRun>,
    /// When its last successful run started.
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    /// How many runs ended each way since the daemon started (or the job was redefined).
    #[serde(default)]
    pub runs: RunCounts,
    /// How many runs are going now.
    pub running: usize,
    /// Why the job's timer stopped, when it did: the job does not fire until it is changed.
    #[serde(default)]
    pub broken: Option<String>,
    /// What the run going now says about itself (continuous jobs), when it published anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStatus>,
}

impl JobStatus {
    /// Builds the snapshot of one job.
    pub fn new(config: &JobConfig, state: &JobState) -> Self {
        JobStatus {
            name: config.name.clone(),
            job_type: config.spec.type_name().to_string(),
            schedule: config.schedule.as_ref().map(ToString::to_string),
            timezone: config
                .schedule
                .as_ref()
                .map(|s| s.timezone().name().to_string()),
            enabled: config.enabled,
            next: state.next(),
            last: state.last(),
            last_success: state.last_success(),
            runs: state.counts(),
            running: state.running(),
            broken: state.broken(),
            live: state.live().get(),
        }
    }
}
