//! What the scheduler remembers about one job across its runs and across reloads: how many
//! runs are going, whether one is queued, the next and last fire, whether its timer broke, and
//! the live figures of the run going now, and how many runs ended each way. The last run (and
//! the last success) is also kept across restarts, in `state_dir/last-run/<job>.json`, so
//! `opsd status` still shows it after `systemctl restart`. `opsd status --json` and the
//! metrics both read these counts, so they cannot disagree. Each change of what they show is
//! stamped with a [`generation`](crate::generation), so the metrics copy only the jobs that
//! changed since their last scrape.

use super::execute::Finished;
use crate::jobs::{LiveSlot, Outcome};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
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

/// How many runs of a job ended each way since the daemon started (or the job was redefined).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Runs that succeeded.
    pub success: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Runs stopped by their timeout.
    pub timed_out: u64,
    /// Runs stopped from outside.
    pub killed: u64,
    /// Runs that did not run: slots skipped by the overlap policy, and runs that reported
    /// skipped (a dry run of a type without one).
    pub skipped: u64,
    /// Of `skipped`, the slots the overlap policy skipped because a run was still going.
    pub overlap_skipped: u64,
}

impl RunCounts {
    /// The count of runs that ended as `outcome`.
    pub fn of(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Success => self.success,
            Outcome::Failed => self.failed,
            Outcome::TimedOut => self.timed_out,
            Outcome::Killed => self.killed,
            Outcome::Skipped => self.skipped,
        }
    }

    /// Counts one run that ended as `outcome`.
    fn add(&mut self, outcome: Outcome) {
        let n = match outcome {
            Outcome::Success => &mut self.success,
            Outcome::Failed => &mut self.failed,
            Outcome::TimedOut => &mut self.timed_out,
            Outcome::Killed => &mut self.killed,
            Outcome::Skipped => &mut self.skipped,
        };
        *n += 1;
    }
}

/// What the metrics show of a job's state: the figures of [`JobStatus`](super::JobStatus)
/// that are numbers and times, read at one moment (under one lock) and copied without an
/// allocation, so a scrape copies out a changed job cheaply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// How many runs ended each way.
    pub runs: RunCounts,
    /// When the last finished run started.
    pub last_started: Option<DateTime<Utc>>,
    /// When the last successful run started.
    pub last_success: Option<DateTime<Utc>>,
    /// When the job fires next.
    pub next: Option<DateTime<Utc>>,
    /// How many runs are going now.
    pub running: usize,
}

/// The file that keeps a job's last run across restarts.
#[derive(Debug, Serialize, Deserialize)]
struct SavedRun {
    /// The job's type when the run was recorded: a job since given another type starts afresh.
    job_type: String,
    /// The run.
    last: LastRun,
    /// When the last successful run started (files from before it was kept have none).
    #[serde(default)]
    last_success: Option<DateTime<Utc>>,
}

/// Why a saved last run could not be loaded; the job then shows no last run.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the last run from {path}: {source}")]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub source: std::io::Error,
}

/// Live counters for one job, shared by its timer and its runs.
#[derive(Debug, Default)]
pub struct JobState {
    inner: Mutex<Inner>,
    /// Where the run going now publishes its live figures.
    live: LiveSlot,
    /// Held while the last run is written out, so the newest one is always the one kept.
    saving: Mutex<()>,
}

/// The counts and times behind [`JobState`]'s lock.
#[derive(Debug, Default)]
struct Inner {
    /// How many runs are going now.
    running: usize,
    /// Whether a run waits for the running one (overlap = "queue").
    queued: bool,
    /// When the job fires next, if it is scheduled.
    next: Option<DateTime<Utc>>,
    /// The last finished run.
    last: Option<LastRun>,
    /// Why the job's timer broke, if it did.
    broken: Option<String>,
    /// When the last successful run started.
    last_success: Option<DateTime<Utc>>,
    /// How many runs ended each way.
    counts: RunCounts,
    /// Whether the gate refused this fleet job's latest slot (a streak alerts once).
    refusing: bool,
    /// The generation of the last change of what `opsd status` shows (0: none yet).
    changed: u64,
}

impl Inner {
    /// Stamps a change of what `opsd status` shows, made under the same lock.
    fn touch(&mut self) {
        self.changed = crate::generation::next();
    }
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
                Overlap::Skip => {}
                Overlap::Queue if s.queued => {}
                Overlap::Queue => {
                    s.queued = true;
                    return Admission::Queued;
                }
                Overlap::Allow => {
                    s.running += 1;
                    s.touch();
                    return Admission::Start;
                }
            }
            s.counts.add(Outcome::Skipped);
            s.counts.overlap_skipped += 1;
            s.touch();
            return Admission::Skipped;
        }
        s.running += 1;
        s.touch();
        Admission::Start
    }

    /// Uncounts an admitted run that did not start after all (another host of the fleet won
    /// its slot); the last run stays as it was.
    pub fn not_started(&self) {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        s.touch();
    }

    /// Notes that the gate refused a slot of this fleet job; true when it is the first of a
    /// streak (the slot before was decided), which is the one that alerts.
    pub fn gate_refused(&self) -> bool {
        !std::mem::replace(&mut self.lock().refusing, true)
    }

    /// Notes that the gate decided a slot of this fleet job (claimed, taken or busy); true
    /// when it ends a streak of refused slots, which says so once.
    pub fn gate_decided(&self) -> bool {
        std::mem::replace(&mut self.lock().refusing, false)
    }

    /// Uncounts an admitted run whose slot the overlap policy skipped after all (fleet-wide: the
    /// previous run is still going on another host), and counts the skip as [`Self::admit`]
    /// counts a local one.
    pub fn skipped_by_overlap(&self) {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        s.counts.add(Outcome::Skipped);
        s.counts.overlap_skipped += 1;
        s.touch();
    }

    /// Counts `n` slots a stall made the timer miss, which did not run on their own, as
    /// skipped (one by one, as the overlap policy counts its skips).
    pub fn missed(&self, n: u64) {
        self.lock().counts.skipped += n;
    }

    /// Counts a run that starts regardless of policy (continuous jobs).
    pub fn start_unconditionally(&self) {
        let mut s = self.lock();
        s.running += 1;
        s.touch();
    }

    /// A state whose last run is the one saved in `path` for a job of type `job_type`;
    /// `Err` (with an empty state beside it) when the file cannot be read or is corrupt.
    pub fn restore(path: &Path, job_type: &str) -> (JobState, Option<LoadError>) {
        let state = JobState::default();
        match crate::state::read_json::<SavedRun>(path) {
            Ok(Some(saved)) if saved.job_type == job_type => {
                let mut s = state.lock();
                s.last_success =
                    saved
                        .last_success
                        .or(Some(saved.last.started)
                            .filter(|_| saved.last.outcome == Outcome::Success));
                s.last = Some(saved.last);
                s.touch();
            }
            Ok(_) => {}
            Err(source) => {
                let path = path.display().to_string();
                return (state, Some(LoadError { path, source }));
            }
        }
        (state, None)
    }

    /// Writes the last run (the newest, even when runs end together) to `path` atomically, as
    /// the record of a job of type `job_type`; not fsynced (it is rewritten at every run, and
    /// lost after a power loss at worst). Blocking: call it off the async threads.
    pub fn save_last(&self, path: &Path, job_type: &str) -> std::io::Result<()> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let (last, last_success) = {
            let s = self.lock();
            (s.last.clone(), s.last_success)
        };
        let Some(last) = last else {
            return Ok(());
        };
        let saved = SavedRun {
            job_type: job_type.to_string(),
            last,
            last_success,
        };
        crate::state::write_record(path, &saved)
    }

    /// The slot the run going now publishes its live figures in.
    pub fn live(&self) -> LiveSlot {
        self.live.clone()
    }

    /// Records a finished run; returns true when a queued run should start now.
    pub fn finish(&self, finished: &Finished) -> bool {
        let mut s = self.lock();
        s.running = s.running.saturating_sub(1);
        s.last = Some(LastRun::from(finished));
        s.counts.add(finished.report.outcome);
        if finished.report.outcome == Outcome::Success {
            s.last_success = Some(finished.started);
        }
        if s.running == 0 {
            self.live.clear();
        }
        s.touch();
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
        let mut s = self.lock();
        if s.next != next {
            s.next = next;
            s.touch();
        }
    }

    /// When the job fires next, if known.
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.lock().next
    }

    /// Notes that the job's timer has stopped for good and why (`None`: it runs again).
    pub fn set_broken(&self, why: Option<String>) {
        let mut s = self.lock();
        if s.broken != why {
            s.broken = why;
            s.touch();
        }
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

    /// When the last successful run started, if one did (kept across restarts).
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.lock().last_success
    }

    /// How many runs ended each way.
    pub fn counts(&self) -> RunCounts {
        self.lock().counts
    }

    /// The figures the metrics show, read at one moment.
    pub fn figures(&self) -> Figures {
        let s = self.lock();
        Figures {
            runs: s.counts,
            last_started: s.last.as_ref().map(|l| l.started),
            last_success: s.last_success,
            next: s.next,
            running: s.running,
        }
    }

    /// The generation of the last change of what `opsd status` shows of this state, its live
    /// figures included (0: none since it was made).
    pub fn changed(&self) -> u64 {
        let s = self.lock();
        s.changed.max(self.live.changed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overlap;
    use crate::jobs::RunReport;

    fn finished(run_id: &str, outcome: Outcome) -> Finished {
        Finished {
            run_id: run_id.into(),
            started: Utc::now(),
            duration: std::time::Duration::from_millis(7),
            report: RunReport {
                outcome,
                exit_code: Some(2),
                signal: None,
                detail: Some("exited with code 2".into()),
                output: vec!["pg_dump: connection refused".into()],
            },
        }
    }

    #[test]
    fn the_last_run_and_its_output_come_back_from_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/backup.json");
        let state = JobState::default();
        state.start_unconditionally();
        state.finish(&finished("first", Outcome::Success));
        state.start_unconditionally();
        state.finish(&finished("second", Outcome::Failed));
        state.save_last(&path, "command").unwrap();

        let (restored, error) = JobState::restore(&path, "command");
        assert!(error.is_none(), "{error:?}");
        let last = restored.last().expect("a last run");
        assert_eq!(last, state.last().unwrap());
        assert_eq!(last.run_id, "second");
        assert_eq!(last.output, ["pg_dump: connection refused"]);
        assert_eq!(restored.running(), 0);
    }

    #[test]
    fn a_missing_file_or_one_of_another_job_type_gives_no_last_run_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/job.json");
        let (state, error) = JobState::restore(&path, "command");
        assert!(state.last().is_none() && error.is_none());

        let old = JobState::default();
        old.start_unconditionally();
        old.finish(&finished("r", Outcome::Success));
        old.save_last(&path, "apache_log").unwrap();
        let (state, error) = JobState::restore(&path, "command");
        assert!(state.last().is_none() && error.is_none());
    }

    #[test]
    fn a_corrupt_file_is_reported_and_leaves_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, b"{\"job_type\": \"command\", \"last\": {tru").unwrap();
        let (state, error) = JobState::restore(&path, "command");
        assert!(state.last().is_none());
        let error = error.expect("the corrupt file is reported").to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn the_live_figures_go_when_the_last_run_going_ends() {
        let state = JobState::default();
        state.start_unconditionally();
        state.live().publish(crate::jobs::LiveStatus {
            updated: Utc::now(),
            summary: "1 file".into(),
            fields: Vec::new(),
            counts: Vec::new(),
        });
        assert!(state.live().get().is_some());
        state.finish(&finished("r", Outcome::Success));
        assert!(state.live().get().is_none());
    }

    #[test]
    fn skip_refuses_a_second_run_while_one_is_going() {
        let state = JobState::default();
        assert_eq!(state.admit(Overlap::Skip), Admission::Start);
        assert_eq!(state.admit(Overlap::Skip), Admission::Skipped);
        assert_eq!(state.running(), 1);
        assert!(!state.finish(&finished("r1", Outcome::Success)));
        assert_eq!(state.running(), 0);
        assert_eq!(state.admit(Overlap::Skip), Admission::Start);
    }

    #[test]
    fn allow_counts_every_run_side_by_side() {
        let state = JobState::default();
        for _ in 0..3 {
            assert_eq!(state.admit(Overlap::Allow), Admission::Start);
        }
        assert_eq!(state.running(), 3);
        for n in (0..3).rev() {
            assert!(!state.finish(&finished("r", Outcome::Success)));
            assert_eq!(state.running(), n);
        }
    }

    #[test]
    fn queue_holds_one_run_behind_the_running_one_and_skips_the_rest() {
        let state = JobState::default();
        assert_eq!(state.admit(Overlap::Queue), Admission::Start);
        assert_eq!(state.admit(Overlap::Queue), Admission::Queued);
        assert_eq!(state.admit(Overlap::Queue), Admission::Skipped);
        assert_eq!(state.running(), 1, "a queued run is not running yet");
        // The first run ends: the queued one starts now, and is counted as running.
        assert!(state.finish(&finished("r1", Outcome::Success)));
        assert_eq!(state.running(), 1);
        // The queue is free again while the second run goes.
        assert_eq!(state.admit(Overlap::Queue), Admission::Queued);
        assert!(state.finish(&finished("r2", Outcome::Success)));
        assert!(!state.finish(&finished("r3", Outcome::Success)));
        assert_eq!(state.running(), 0);
    }

    #[test]
    fn a_continuous_start_is_counted_whatever_the_policy() {
        let state = JobState::default();
        state.start_unconditionally();
        state.start_unconditionally();
        assert_eq!(state.running(), 2);
        assert_eq!(state.admit(Overlap::Skip), Admission::Skipped);
    }

    #[test]
    fn runs_are_counted_by_outcome_and_the_last_success_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let state = JobState::default();
        assert_eq!(state.admit(Overlap::Skip), Admission::Start);
        let ok = finished("ok", Outcome::Success);
        state.finish(&ok);
        assert_eq!(state.admit(Overlap::Skip), Admission::Start);
        assert_eq!(state.admit(Overlap::Skip), Admission::Skipped);
        state.finish(&finished("bad", Outcome::Failed));
        let counts = state.counts();
        assert_eq!((counts.success, counts.failed), (1, 1));
        assert_eq!((counts.skipped, counts.overlap_skipped), (1, 1));
        assert_eq!(state.last_success(), Some(ok.started));

        state.save_last(&path, "command").unwrap();
        let (restored, _) = JobState::restore(&path, "command");
        assert_eq!(restored.last().unwrap().run_id, "bad");
        assert_eq!(restored.last_success(), Some(ok.started));
        assert_eq!(
            restored.counts(),
            RunCounts::default(),
            "counts start afresh"
        );
    }

    #[test]
    fn finish_records_the_last_run() {
        let state = JobState::default();
        assert_eq!(state.last(), None);
        state.admit(Overlap::Skip);
        let f = finished("abc", Outcome::Failed);
        state.finish(&f);
        let last = state.last().expect("a last run");
        assert_eq!(last, LastRun::from(&f));
        assert_eq!(last.run_id, "abc");
        assert_eq!(last.outcome, Outcome::Failed);
    }
}
