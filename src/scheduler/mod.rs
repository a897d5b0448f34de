//! The scheduler: arms one timer per job, applies overlap, jitter and catch-up policies,
//! swaps configurations on reload without disturbing unchanged or running jobs, keeps each
//! job's last run in the state directory (`last-run/NAME.json`) across restarts, and shuts
//! down by waiting for running jobs, then stopping them with the reason.

pub mod alarm;
mod backoff;
pub mod execute;
pub mod job_state;
pub mod status;
#[cfg(test)]
mod tests;
mod timer;

pub use execute::{execute, Finished, RunControl, RunMode, StopReason, Trigger};
pub use job_state::{JobState, LastRun};
pub use status::JobStatus;

use crate::alert::Dispatcher;
use crate::config::{CatchUp, Config, JobConfig};
use backoff::RestartBackoff;
use chrono::{DateTime, Utc};
use job_state::Admission;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What `opsd trigger` gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerReply {
    /// The run happened; here is how it went.
    Ran(LastRun),
    /// The run did not start, and why (overlap policy).
    NotStarted(String),
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Jobs that are new.
    pub added: Vec<String>,
    /// Jobs whose definition changed.
    pub changed: Vec<String>,
    /// Jobs that are gone.
    pub removed: Vec<String>,
    /// How many jobs are exactly as before.
    pub unchanged: usize,
}

/// The part of the scheduler that runs jobs; cheap to clone into timers and runs.
#[derive(Debug, Clone)]
pub struct Runner {
    inner: Arc<RunnerInner>,
}

#[derive(Debug)]
struct RunnerInner {
    state_dir: PathBuf,
    /// Where alerts go; its sinks are swapped in place when a reload changes `[alerts]`.
    alerts: Dispatcher,
    /// Fired at the end of the shutdown grace period: every run still going is stopped.
    kill_all: CancellationToken,
    /// Why `kill_all` fired, for the runs it ends.
    kill_why: StopReason,
    tracker: TaskTracker,
    /// The precise last stretch of every timer.
    alarm: alarm::Alarm,
}

/// Catch-up state kept for jobs with `catch_up = "once"`.
#[derive(Debug, Serialize, Deserialize)]
struct SlotState {
    last_slot: DateTime<Utc>,
}

impl Runner {
    /// The precise alarm timers finish their wait on.
    fn alarm(&self) -> &alarm::Alarm {
        &self.inner.alarm
    }

    /// The alert dispatcher in force.
    fn alerts(&self) -> Dispatcher {
        self.inner.alerts.clone()
    }

    fn slot_file(&self, job: &str) -> PathBuf {
        self.inner
            .state_dir
            .join("schedule")
            .join(format!("{job}.json"))
    }

    /// The file that keeps `job`'s last run across restarts.
    fn last_run_file(&self, job: &str) -> PathBuf {
        self.inner
            .state_dir
            .join("last-run")
            .join(format!("{job}.json"))
    }

    /// A state for `job` that starts from the last run saved by an earlier daemon; a file that
    /// cannot be read is logged and ignored (the next run replaces it).
    fn restore_state(&self, job: &JobConfig) -> Arc<JobState> {
        let (state, error) = JobState::restore(&self.last_run_file(&job.name), job.job.type_name());
        if let Some(e) = error {
            tracing::warn!(job = %job.name, "{}: {e}; status shows no last run until it runs again", job.name);
        }
        Arc::new(state)
    }

    /// Writes `job`'s last run to its file (off the async threads); the run's task waits for
    /// it, so shutdown does not end before the last runs are kept.
    async fn save_last(&self, job: &JobConfig, state: &Arc<JobState>) {
        let path = self.last_run_file(&job.name);
        let (state, job_type) = (Arc::clone(state), job.job.type_name());
        let name = job.name.clone();
        let saved = tokio::task::spawn_blocking(move || {
            state.save_last(&path, job_type).map_err(|e| (path, e))
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err((path, e))) => tracing::error!(
                job = %name,
                "{name}: cannot keep the last run in {}: {e}; after a restart status will not show it",
                path.display()
            ),
            Err(e) => tracing::error!(job = %name, "{name}: cannot keep the last run: {e}"),
        }
    }

    /// Persists the slot a catch-up job last fired for (off the async threads).
    fn remember_slot(&self, job: &str, slot: DateTime<Utc>) {
        let path = self.slot_file(job);
        let job = job.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::state::write_json(&path, &SlotState { last_slot: slot }) {
                tracing::error!(
                    job,
                    "{}: cannot record the last fire time in {}: {e}",
                    job,
                    path.display()
                );
            }
        });
    }

    /// Starts a run of `job` now if its overlap policy allows; `reply` hears how it ended,
    /// `ticket` (from the alarm) goes back once the run has started.
    pub fn fire(
        &self,
        job: Arc<JobConfig>,
        state: Arc<JobState>,
        stop: CancellationToken,
        trigger: Trigger,
        reply: Option<oneshot::Sender<TriggerReply>>,
        ticket: Option<alarm::Ticket>,
    ) {
        match state.admit(job.overlap) {
            Admission::Start => {}
            Admission::Queued => {
                tracing::warn!(job = %job.name, trigger = trigger.as_str(),
                    "{}: previous run still going; this run waits for it (overlap = \"queue\")", job.name);
                if let Some(r) = reply {
                    let _ = r.send(TriggerReply::NotStarted(
                        "queued behind the running instance".into(),
                    ));
                }
                return;
            }
            Admission::Skipped => {
                tracing::warn!(job = %job.name, outcome = "skipped", trigger = trigger.as_str(),
                    "{}: previous run still going; skipping this run (overlap = {:?})",
                    job.name, format!("{:?}", job.overlap).to_lowercase());
                if let Some(r) = reply {
                    let _ = r.send(TriggerReply::NotStarted(
                        "skipped: the previous run is still going".into(),
                    ));
                }
                return;
            }
        }
        let runner = self.clone();
        let control = RunControl {
            stop: stop.clone(),
            why: vec![self.inner.kill_why.clone()],
            live: state.live(),
        };
        self.inner.tracker.spawn(async move {
            let mut trigger = trigger;
            let mut reply = reply;
            let mut ticket = ticket;
            loop {
                if !job.jitter.is_zero() && matches!(trigger, Trigger::Schedule(_)) {
                    // A jittered run starts apart from its wave; it holds no other run back.
                    drop(ticket.take());
                    let delay = job.jitter.mul_f64(fastrand::f64());
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // Stopped (shutdown's grace ran out) before its turn came: a run that
                        // has not started is not started now, only to be killed and alerted on.
                        () = stop.cancelled() => break,
                    }
                }
                let finished = execute(
                    &job,
                    runner.inner.state_dir.clone(),
                    &runner.alerts(),
                    RunMode::default(),
                    trigger,
                    control.clone(),
                    ticket.take(),
                )
                .await;
                let again = state.finish(&finished);
                if let Some(r) = reply.take() {
                    let _ = r.send(TriggerReply::Ran(LastRun::from(&finished)));
                }
                runner.save_last(&job, &state).await;
                if !again || stop.is_cancelled() {
                    break;
                }
                trigger = Trigger::Queued;
            }
        });
    }

    /// Keeps a continuous job running, restarting it with backoff when it ends on its own.
    fn supervise(
        &self,
        job: Arc<JobConfig>,
        state: Arc<JobState>,
        stop: CancellationToken,
        why: StopReason,
    ) -> JoinHandle<()> {
        let runner = self.clone();
        let control = RunControl {
            stop: stop.clone(),
            why: vec![why, self.inner.kill_why.clone()],
            live: state.live(),
        };
        self.inner.tracker.spawn(async move {
            let mut backoff = RestartBackoff::default();
            loop {
                state.start_unconditionally();
                let finished = execute(
                    &job,
                    runner.inner.state_dir.clone(),
                    &runner.alerts(),
                    RunMode::default(),
                    Trigger::Continuous,
                    control.clone(),
                    None,
                )
                .await;
                state.finish(&finished);
                runner.save_last(&job, &state).await;
                if stop.is_cancelled() {
                    return;
                }
                let wait = backoff.after(finished.duration);
                tracing::error!(job = %job.name, restart_in_ms = wait.as_millis() as u64,
                    "{}: continuous job ended on its own; restarting it", job.name);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
            }
        })
    }
}

/// One scheduled job: its definition, live state, and the tokens that stop its timer and runs.
#[derive(Debug)]
struct Entry {
    config: Arc<JobConfig>,
    state: Arc<JobState>,
    /// Stops the timer (scheduled jobs) — running instances are left to finish.
    timer_stop: CancellationToken,
    /// Stops the job's runs (continuous jobs on change/removal; everything at shutdown).
    runs_stop: CancellationToken,
    /// Why `runs_stop` fired, for the run it ends.
    runs_why: StopReason,
    /// The supervisor of a continuous job.
    supervisor: Option<JoinHandle<()>>,
}

/// The running set of jobs.
#[derive(Debug)]
pub struct Scheduler {
    runner: Runner,
    config: Config,
    jobs: BTreeMap<String, Entry>,
}

impl Scheduler {
    /// Arms every enabled job of `config`, runs `@start` jobs and catches up missed slots;
    /// `alerts` delivers to the sinks of `config.alerts`. Fails only if the alarm thread
    /// cannot be started.
    pub fn start(config: Config, state_dir: PathBuf, alerts: Dispatcher) -> std::io::Result<Self> {
        let runner = Runner {
            inner: Arc::new(RunnerInner {
                state_dir,
                alerts,
                kill_all: CancellationToken::new(),
                kill_why: StopReason::default(),
                tracker: TaskTracker::new(),
                alarm: alarm::Alarm::start()?,
            }),
        };
        let mut sched = Scheduler {
            runner,
            config: config.clone(),
            jobs: BTreeMap::new(),
        };
        for job in config.jobs.values() {
            let state = sched.runner.restore_state(job);
            sched.arm(job.clone(), state, None, true);
        }
        Ok(sched)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the timer or supervisor of one job; `previous` is the supervisor it replaces.
    fn arm(
        &mut self,
        job: Arc<JobConfig>,
        state: Arc<JobState>,
        previous: Option<JoinHandle<()>>,
        at_start: bool,
    ) {
        let timer_stop = CancellationToken::new();
        let runs_stop = self.runner.inner.kill_all.child_token();
        let runs_why = StopReason::default();
        let mut supervisor = None;
        if job.enabled {
            if job.job.is_continuous() {
                let runner = self.runner.clone();
                let (j, s, stop) = (job.clone(), state.clone(), runs_stop.clone());
                let why = runs_why.clone();
                // The new watcher starts only once the one it replaces has stopped.
                supervisor = Some(tokio::spawn(async move {
                    if let Some(prev) = previous {
                        let _ = prev.await;
                    }
                    let _ = runner.supervise(j, s, stop, why).await;
                }));
            } else {
                let is_start = job.schedule.as_ref().is_some_and(|s| s.is_start());
                if is_start && at_start {
                    self.runner.fire(
                        job.clone(),
                        state.clone(),
                        runs_stop.clone(),
                        Trigger::Schedule(Utc::now()),
                        None,
                        None,
                    );
                }
                if at_start && job.catch_up == CatchUp::Once && !is_start {
                    self.catch_up(&job, &state, &runs_stop);
                }
                tokio::spawn(timer::run(
                    self.runner.clone(),
                    job.clone(),
                    state.clone(),
                    runs_stop.clone(),
                    timer_stop.clone(),
                ));
            }
        }
        self.jobs.insert(
            job.name.clone(),
            Entry {
                config: job,
                state,
                timer_stop,
                runs_stop,
                runs_why,
                supervisor,
            },
        );
    }

    /// Runs a slot missed while the daemon was down, once, and records the baseline.
    fn catch_up(&self, job: &Arc<JobConfig>, state: &Arc<JobState>, runs_stop: &CancellationToken) {
        let path = self.runner.slot_file(&job.name);
        let now = Utc::now();
        match crate::state::read_json::<SlotState>(&path) {
            Ok(Some(saved)) => {
                let missed = job
                    .schedule
                    .as_ref()
                    .and_then(|s| s.missed_between(saved.last_slot, now));
                if let Some(slot) = missed {
                    tracing::info!(job = %job.name, missed_slot = %slot, "{}: catching up a slot missed while opsd was down", job.name);
                    self.runner.remember_slot(&job.name, slot);
                    self.runner.fire(
                        job.clone(),
                        state.clone(),
                        runs_stop.clone(),
                        Trigger::CatchUp,
                        None,
                        None,
                    );
                }
            }
            Ok(None) => self.runner.remember_slot(&job.name, now),
            Err(e) => {
                tracing::error!(job = %job.name, "{}: cannot read catch-up state: {e}; not catching up", job.name)
            }
        }
    }

    /// Applies a newly validated configuration: unchanged jobs keep their timers and runs,
    /// changed ones take the new definition from their next slot, removed ones stop firing.
    pub fn reload(&mut self, new: Config) -> Result<ReloadSummary, String> {
        if new.alerts != self.config.alerts {
            // Swapped in place: runs holding a clone (apache_log watchers) deliver through the
            // new sinks too; alerts already queued for the old ones still go out.
            self.runner
                .inner
                .alerts
                .replace(&new.alerts)
                .map_err(|e| format!("alert sinks: {e}"))?;
        }
        let mut summary = ReloadSummary::default();
        let old_names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in old_names {
            if !new.jobs.contains_key(&name) {
                if let Some(entry) = self.jobs.remove(&name) {
                    entry.timer_stop.cancel();
                    if entry.config.job.is_continuous() {
                        entry
                            .runs_why
                            .set("the job was removed from the configuration");
                        entry.runs_stop.cancel();
                    }
                    summary.removed.push(name);
                }
            }
        }
        for (name, job) in &new.jobs {
            match self.jobs.remove(name) {
                Some(entry) if entry.config == *job => {
                    summary.unchanged += 1;
                    self.jobs.insert(name.clone(), entry);
                }
                Some(entry) => {
                    entry.timer_stop.cancel();
                    if entry.config.job.is_continuous() {
                        entry.runs_why.set("the job was changed by a reload");
                        entry.runs_stop.cancel();
                    }
                    let state = if entry.config.job.type_name() == job.job.type_name() {
                        entry.state
                    } else {
                        Arc::new(JobState::default())
                    };
                    self.arm(job.clone(), state, entry.supervisor, false);
                    summary.changed.push(name.clone());
                }
                None => {
                    // A new `@start` job runs once now: it has not run in this daemon's life.
                    let state = self.runner.restore_state(job);
                    self.arm(job.clone(), state, None, false);
                    if job.enabled && job.schedule.as_ref().is_some_and(|s| s.is_start()) {
                        if let Some(e) = self.jobs.get(name) {
                            self.runner.fire(
                                e.config.clone(),
                                e.state.clone(),
                                e.runs_stop.clone(),
                                Trigger::Schedule(Utc::now()),
                                None,
                                None,
                            );
                        }
                    }
                    summary.added.push(name.clone());
                }
            }
        }
        self.config = new;
        Ok(summary)
    }

    /// Runs a job now, respecting its overlap policy; the receiver hears how it ended.
    pub fn trigger(&self, name: &str) -> Result<oneshot::Receiver<TriggerReply>, String> {
        let entry = self.jobs.get(name).ok_or_else(|| {
            let hint = crate::field::did_you_mean_hint(name, self.jobs.keys().map(String::as_str))
                .unwrap_or_default();
            format!("no job named {name:?}{hint}")
        })?;
        if entry.config.job.is_continuous() {
            return Err(format!(
                "{name:?} runs continuously; it cannot be triggered"
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.runner.fire(
            entry.config.clone(),
            entry.state.clone(),
            entry.runs_stop.clone(),
            Trigger::Manual,
            Some(tx),
            None,
        );
        Ok(rx)
    }

    /// A snapshot of every job for `opsd status`.
    pub fn status(&self) -> Vec<JobStatus> {
        self.jobs
            .values()
            .map(|e| JobStatus::new(&e.config, &e.state))
            .collect()
    }

    /// The job that fires soonest, with its time.
    pub fn next_due(&self) -> Option<(&str, DateTime<Utc>, chrono_tz::Tz)> {
        self.jobs
            .values()
            .filter_map(|e| {
                let tz = e.config.schedule.as_ref()?.timezone();
                Some((e.config.name.as_str(), e.state.next()?, tz))
            })
            .min_by_key(|(_, t, _)| *t)
    }

    /// Stops all timers, waits up to `grace` for running jobs, then stops what is left.
    pub async fn shutdown(self, grace: Duration) {
        for entry in self.jobs.values() {
            entry.timer_stop.cancel();
            if entry.config.job.is_continuous() {
                entry.runs_why.set("opsd was stopping");
                entry.runs_stop.cancel();
            }
        }
        let tracker = &self.runner.inner.tracker;
        tracker.close();
        let running: usize = self.jobs.values().map(|e| e.state.running()).sum();
        if running > 0 {
            tracing::info!(
                running,
                grace_ms = grace.as_millis() as u64,
                "waiting for running jobs to finish"
            );
        }
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                "jobs still running after shutdown_timeout ({}); stopping them",
                humantime::format_duration(grace)
            );
            self.runner.inner.kill_why.set(format!(
                "opsd was stopping; the run outlived shutdown_timeout ({})",
                humantime::format_duration(grace)
            ));
            self.runner.inner.kill_all.cancel();
            tracker.wait().await;
        }
        if !self.runner.alerts().shutdown(grace).await {
            tracing::warn!("some alerts could not be delivered before shutdown");
        }
    }
}
