//! The running set of jobs, [`Scheduler`]: one entry per job of the configuration in force,
//! holding its timer (scheduled jobs) or supervisor (continuous jobs). It arms them at start
//! (running `@start` jobs and catching up missed slots), swaps them on reload as
//! [`ReloadSummary::between`] decides, and stops them at shutdown.

use super::reload::{keeps_state, ReloadSummary};
use super::runner::{Fire, JobHandle, Runner, TriggerReply};
use super::{timer, Changes, JobState, JobStatus, StopReason, Trigger};
use crate::alert::Dispatcher;
use crate::config::{CatchUp, Config, JobConfig};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// When a job is armed, which decides what runs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arming {
    /// The daemon starts: an `@start` job runs now, and a slot missed while it was down is
    /// caught up (`catch_up = "once"`).
    DaemonStart,
    /// A reload added the job: an `@start` job runs now, as it has not run in this daemon's
    /// life.
    Added,
    /// A reload changed the job: it takes its new definition from its next slot.
    Changed,
}

/// One job of the set: its runs, and what stops its timer or supervisor.
#[derive(Debug)]
pub(super) struct Entry {
    /// The job as its runs see it.
    pub handle: JobHandle,
    /// Stops the timer (scheduled jobs) — running instances are left to finish.
    timer_stop: CancellationToken,
    /// Why `handle.runs_stop` fired, for the run it ends.
    runs_why: StopReason,
    /// The supervisor of a continuous job.
    supervisor: Option<JoinHandle<()>>,
    /// The [`generation`](crate::generation) this definition of the job was put in force.
    armed: u64,
}

impl Entry {
    /// Stops the job firing; a continuous job's run is stopped too, reported as ended by `why`
    /// (a scheduled job's run going now is left to finish).
    fn stop(&self, why: &str) {
        self.timer_stop.cancel();
        if self.handle.config.spec.is_continuous() {
            self.runs_why.set(why);
            self.handle.runs_stop.cancel();
        }
    }
}

/// The running set of jobs.
#[derive(Debug)]
pub struct Scheduler {
    runner: Runner,
    config: Config,
    /// Every job of `config`, enabled or not, by name.
    pub(super) jobs: BTreeMap<String, Entry>,
    /// The [`generation`](crate::generation) of the last change of the set of jobs (one
    /// armed or removed): a metrics scrape is given the jobs' names again after it.
    set_changed: u64,
}

impl Scheduler {
    /// Arms every enabled job of `config`, runs `@start` jobs and catches up missed slots;
    /// `alerts` delivers to the sinks of `config.alerts`, `recorder` hears of every run that
    /// ends. Fails only if the alarm thread cannot be started.
    pub fn start(
        config: Config,
        state_dir: PathBuf,
        alerts: Dispatcher,
        recorder: Arc<dyn super::RunRecorder>,
    ) -> std::io::Result<Self> {
        Self::start_gated(config, state_dir, alerts, recorder, None)
    }

    /// As [`Scheduler::start`], with `gate` in force before the first job is armed, so that
    /// a fleet job's caught-up slot and first slots are put to it rather than refused.
    pub fn start_gated(
        config: Config,
        state_dir: PathBuf,
        alerts: Dispatcher,
        recorder: Arc<dyn super::RunRecorder>,
        gate: Option<Arc<dyn super::SlotGate>>,
    ) -> std::io::Result<Self> {
        let mut sched = Scheduler {
            runner: Runner::start(state_dir, alerts, recorder)?,
            config: config.clone(),
            jobs: BTreeMap::new(),
            set_changed: 0,
        };
        sched.runner.set_gate(gate);
        for job in config.jobs.values() {
            let state = sched.runner.restore_state(job);
            sched.arm(job.clone(), state, None, Arming::DaemonStart);
        }
        sched.runner.set_jobs(sched.handles());
        Ok(sched)
    }

    /// Puts `gate` in force for fleet jobs' slots from now on (`None`: no fleet); the daemon
    /// gives it at start and again when a reload changes `[fleet]`.
    pub fn set_gate(&self, gate: Option<Arc<dyn super::SlotGate>>) {
        self.runner.set_gate(gate);
    }

    /// The alert dispatcher in force (its sinks follow reloads).
    pub fn alerts(&self) -> &Dispatcher {
        self.runner.alerts()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the timer or supervisor of one job; `previous` is the supervisor it replaces.
    fn arm(
        &mut self,
        config: Arc<JobConfig>,
        state: Arc<JobState>,
        previous: Option<JoinHandle<()>>,
        arming: Arming,
    ) {
        let handle = self.runner.handle(config, state);
        let timer_stop = CancellationToken::new();
        let runs_why = StopReason::default();
        let mut supervisor = None;
        let config = &handle.config;
        if config.enabled {
            if config.spec.is_continuous() {
                let runner = self.runner.clone();
                let (j, why) = (handle.clone(), runs_why.clone());
                // The new watcher starts only once the one it replaces has stopped.
                supervisor = Some(tokio::spawn(async move {
                    if let Some(prev) = previous {
                        let _ = prev.await;
                    }
                    let _ = runner.supervise(j, why).await;
                }));
            } else {
                let is_start = config.schedule.as_ref().is_some_and(|s| s.is_start());
                if is_start && arming != Arming::Changed {
                    self.runner
                        .fire(Fire::new(&handle, Trigger::Schedule(Utc::now())));
                }
                if arming == Arming::DaemonStart && config.catch_up == CatchUp::Once && !is_start {
                    self.catch_up(&handle);
                }
                tokio::spawn(timer::run(
                    self.runner.clone(),
                    handle.clone(),
                    timer_stop.clone(),
                ));
            }
        }
        let armed = crate::generation::next();
        self.set_changed = armed;
        self.jobs.insert(
            handle.config.name.clone(),
            Entry {
                handle,
                timer_stop,
                runs_why,
                supervisor,
                armed,
            },
        );
    }

    /// Runs a slot missed while the daemon was down, once, and records the baseline.
    fn catch_up(&self, handle: &JobHandle) {
        let name = &handle.config.name;
        let now = Utc::now();
        match self.runner.last_slot(name) {
            Ok(Some(last_slot)) => {
                let missed = handle
                    .config
                    .schedule
                    .as_ref()
                    .and_then(|s| s.missed_between(last_slot, now));
                if let Some(slot) = missed {
                    tracing::info!(job = %name, missed_slot = %slot, "{name}: catching up a slot missed while opsd was down");
                    self.runner.remember_slot(name, slot);
                    self.runner
                        .fire(Fire::new(handle, Trigger::CatchUp).with_slot(slot));
                }
            }
            Ok(None) => self.runner.remember_slot(name, now),
            Err(e) => {
                tracing::error!(job = %name, "{name}: cannot read catch-up state: {e}; not catching up")
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
                .alerts()
                .replace(&new.alerts)
                .map_err(|e| format!("alert sinks: {e}"))?;
        }
        let summary = ReloadSummary::between(&self.config.jobs, &new.jobs);
        for name in &summary.removed {
            if let Some(entry) = self.jobs.remove(name) {
                entry.stop("the job was removed from the configuration");
                self.set_changed = crate::generation::next();
            }
        }
        for name in &summary.changed {
            let (Some(entry), Some(job)) = (self.jobs.remove(name), new.jobs.get(name)) else {
                continue;
            };
            entry.stop("the job was changed by a reload");
            let state = if keeps_state(&entry.handle.config, job) {
                entry.handle.state
            } else {
                Arc::new(JobState::default())
            };
            self.arm(job.clone(), state, entry.supervisor, Arming::Changed);
        }
        for name in &summary.added {
            if let Some(job) = new.jobs.get(name) {
                let state = self.runner.restore_state(job);
                self.arm(job.clone(), state, None, Arming::Added);
            }
        }
        self.config = new;
        self.runner.set_jobs(self.handles());
        Ok(summary)
    }

    /// The handle of every job of the set.
    fn handles(&self) -> Vec<JobHandle> {
        self.jobs.values().map(|e| e.handle.clone()).collect()
    }

    /// Runs a job now, respecting its overlap policy; the receiver hears how it ended.
    pub fn trigger(&self, name: &str) -> Result<oneshot::Receiver<TriggerReply>, String> {
        let entry = self.jobs.get(name).ok_or_else(|| {
            let hint = crate::field::did_you_mean_hint(name, self.jobs.keys().map(String::as_str))
                .unwrap_or_default();
            format!("no job named {name:?}{hint}")
        })?;
        if entry.handle.config.spec.is_continuous() {
            return Err(format!(
                "{name:?} runs continuously; it cannot be triggered"
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.runner
            .fire(Fire::new(&entry.handle, Trigger::Manual).with_reply(tx));
        Ok(rx)
    }

    /// A snapshot of every job for `opsd status`.
    pub fn status(&self) -> Vec<JobStatus> {
        self.jobs
            .values()
            .map(|e| JobStatus::new(&e.handle.config, &e.handle.state))
            .collect()
    }

    /// The jobs changed since generation `since`, for a metrics scrape: the figures of the
    /// same states as [`Scheduler::status`], of the changed jobs only, and every job's name
    /// when the set of jobs changed since.
    pub fn changes_since(&self, since: u64) -> Changes {
        let jobs = self.jobs.values();
        Changes::since(
            since,
            self.set_changed,
            jobs.map(|e| (&*e.handle.config, &*e.handle.state, e.armed)),
        )
    }

    /// The job that fires soonest, with its time.
    pub fn next_due(&self) -> Option<(&str, DateTime<Utc>, chrono_tz::Tz)> {
        self.jobs
            .values()
            .filter_map(|e| {
                let tz = e.handle.config.schedule.as_ref()?.timezone();
                Some((e.handle.config.name.as_str(), e.handle.state.next()?, tz))
            })
            .min_by_key(|(_, t, _)| *t)
    }

    /// Stops all timers and the fleet gate (no slot is taken over any more), waits up to
    /// `grace` for running jobs, then stops what is left.
    pub async fn shutdown(self, grace: Duration) {
        self.runner.set_gate(None);
        for entry in self.jobs.values() {
            entry.stop("opsd was stopping");
        }
        let tracker = self.runner.tracker();
        tracker.close();
        let running: usize = self.jobs.values().map(|e| e.handle.state.running()).sum();
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
            self.runner.kill_all(format!(
                "opsd was stopping; the run outlived shutdown_timeout ({})",
                humantime::format_duration(grace)
            ));
            tracker.wait().await;
        }
        if !self.runner.alerts().shutdown(grace).await {
            tracing::warn!("some alerts could not be delivered before shutdown");
        }
    }
}
