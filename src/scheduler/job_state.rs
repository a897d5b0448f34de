//! What the scheduler remembers about one job across its runs and across reloads: how many
//! runs are going, whether one is queued, the next and last fire, and whether its timer broke.

use super::execute::Finished;
use crate::jobs::Outcome;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// The last finished run of a job, as shown by `opsd status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The run's id.
    pub run_id: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its one-line explanation, if any.
    pub detail: Option<String>,
    /// The last lines it printed (bounded and escaped; see `jobs::command::tail`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

impl From<&Finished> for LastRun {
    fn from(f: &Finished) -> Self {
        LastRun {
            run_id: f.run_id.to_string(),
            started: f.started,
            duration_ms: f.duration.as_millis() as u64,
            outcome: f.report.outcome,
            detail: f.report.detail.clone(),
            output: f.report.output.clone(),
        }
    }
}

/// Live counters for one job, shared by its timer and its runs.
#[derive(Debug, Default)]
pub struct JobState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: usize,
    queued: bool,
    next: Option<DateTime<Utc>>,
    last: Option<LastRun>,
    broken: Option<String>,
}

/// What the overlap policy decided for a due run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start it now.
    Start,
    /// It waits for the running one (overlap = "queue").
    Queued,
    /// It does not run (overlap = "skip", or the queue is already full).
    Skipped,
}

impl JobState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only counters behind; keep going with them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the overlap policy to a run that is due now and counts it if it starts.
    pub fn admit(&self, overlap: crate::config::Overlap) -> Admission {
        use crate::config::Overlap;
        let mut s = self.lock();
        if s.running > 0 {
            match overlap {
                Overlap::Skip => return Admission::Skipped,
                Overlap::Queue if s.queued => return Admission::Skipped,
                Overlap::Queue => {
                    s.queued = true;
                    return Admission::Queued;
                }
                Overlap::Allow => {}
            }
        }
        s.running += 1;
        Admission::Start
    }

    /// Counts a run that starts regardless of policy (continuous jobs).
    pub fn start_unconditionally(&self) {
        self.lock().running += 1;
    }

    /// Records a finished run; returns true when a queued run should start now.
    pub fn finish(&self, finished: &Finished) -> bool {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        s.last = Some(LastRun::from(finished));
        if s.queued {
            s.queued = false;
            s.running += 1;
            true
        } else {
            false
        }
    }

    /// Notes when the job fires next.
    pub fn set_next(&self, next: Option<DateTime<Utc>>) {
        self.lock().next = next;
    }

    /// When the job fires next, if known.
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.lock().next
    }

    /// Notes that the job's timer has stopped for good and why (`None`: it runs again).
    pub fn set_broken(&self, why: Option<String>) {
        self.lock().broken = why;
    }

    /// Why the job's timer stopped, if it did: the job does not fire until it is changed.
    pub fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }

    /// How many runs are going now.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// The last finished run, if any.
    pub fn last(&self) -> Option<LastRun> {
        self.lock().last.clone()
    }
}
