//! The part of the scheduler that starts runs: it applies a job's overlap policy and jitter,
//! runs queued runs one after the other, keeps a continuous job going with backoff, and keeps
//! each job's last run (and a catch-up job's last slot) in the state directory. Timers, the
//! `@start` and catch-up runs, `opsd trigger` and the slots the fleet gate takes over (the
//! retry of a run lost elsewhere, its claim already held) all come here through
//! [`Runner::fire`].

use super::alarm::{Alarm, Ticket};
use super::backoff::RestartBackoff;
use super::execute::{execute, Finished, Run, RunControl, StopReason, Trigger};
use super::gate::{Claimed, SlotGate, Takeover, Verdict};
use super::job_state::{Admission, JobState, LastRun};
use super::recorder::RunRecorder;
use crate::alert::Dispatcher;
use crate::config::{JobConfig, Scope};
use crate::jobs::RunReport;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
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

/// One job as its runs see it: its definition, its live state, and the token that stops them.
#[derive(Debug, Clone)]
pub(super) struct JobHandle {
    /// The definition in force.
    pub config: Arc<JobConfig>,
    /// What its timer and runs share.
    pub state: Arc<JobState>,
    /// Stops the job's runs (continuous jobs on change/removal; everything at shutdown).
    pub runs_stop: CancellationToken,
}

/// A run asked of [`Runner::fire`]: which job, why, and who hears how it went.
#[derive(Debug)]
pub(super) struct Fire {
    /// The job to run.
    handle: JobHandle,
    trigger: Trigger,
    /// Hears how the run ended, or why it did not start (`opsd trigger`).
    reply: Option<oneshot::Sender<TriggerReply>>,
    /// From the alarm that woke the timer; goes back once the run has started.
    ticket: Option<Ticket>,
    /// The slot this run is for (scheduled and catch-up runs), which a fleet job claims.
    slot: Option<DateTime<Utc>>,
    /// The slot's claim, already held (a slot the gate took over): no claim is asked.
    held: Option<HeldClaim>,
}

/// A claim a [`Fire`] carries from the gate.
struct HeldClaim(Box<dyn Claimed>);

impl std::fmt::Debug for HeldClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldClaim(token {})", self.0.fencing_token())
    }
}

impl Fire {
    /// A run of `job` for `trigger` that nobody waits for.
    pub fn new(job: &JobHandle, trigger: Trigger) -> Self {
        let slot = match trigger {
            Trigger::Schedule(slot) => Some(slot),
            _ => None,
        };
        Fire {
            handle: job.clone(),
            trigger,
            reply: None,
            ticket: None,
            slot,
            held: None,
        }
    }

    /// The run is for `slot`, whose `claim` is already held (a slot the gate took over).
    fn with_claim(mut self, slot: DateTime<Utc>, claim: Box<dyn Claimed>) -> Self {
        self.slot = Some(slot);
        self.held = Some(HeldClaim(claim));
        self
    }

    /// The run is for `slot` (a caught-up slot), which a fleet job claims before it starts.
    pub fn with_slot(mut self, slot: DateTime<Utc>) -> Self {
        self.slot = Some(slot);
        self
    }

    /// `reply` hears how the run ended, or why it did not start.
    pub fn with_reply(mut self, reply: oneshot::Sender<TriggerReply>) -> Self {
        self.reply = Some(reply);
        self
    }

    /// `ticket`, from the alarm that woke the timer, goes back once the run has started.
    pub fn with_ticket(mut self, ticket: Option<Ticket>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Tells whoever waits that the run did not start, and why.
    fn not_started(self, why: &str) {
        if let Some(reply) = self.reply {
            let _ = reply.send(TriggerReply::NotStarted(why.into()));
        }
    }
}

/// Starts the runs of every job; cheap to clone into timers and runs.
#[derive(Debug, Clone)]
pub(super) struct Runner {
    inner: Arc<RunnerInner>,
}

/// What every clone of a [`Runner`] shares.
#[derive(Debug)]
struct RunnerInner {
    state_dir: PathBuf,
    /// Where alerts go; its sinks are swapped in place when a reload changes `[alerts]`.
    alerts: Dispatcher,
    /// Fired at the end of the shutdown grace period: every run still going is stopped.
    kill_all: CancellationToken,
    /// Why `kill_all` fired, for the runs it ends.
    kill_why: StopReason,
    /// Every run and supervisor, for shutdown to wait on.
    tracker: TaskTracker,
    /// The precise last stretch of every timer.
    alarm: Alarm,
    /// Hears about every run that ends (the metrics).
    recorder: Arc<dyn RunRecorder>,
    /// Who decides which host runs a fleet job's slot; `None` without a `[fleet]`.
    gate: RwLock<Option<Arc<dyn SlotGate>>>,
    /// Every job of the configuration in force, by name, for the slots the gate takes over.
    jobs: RwLock<BTreeMap<String, JobHandle>>,
    /// The thread the last-run records are written on.
    saver: crate::state::RecordWriter,
}

/// Catch-up state kept for jobs with `catch_up = "once"`.
#[derive(Debug, Serialize, Deserialize)]
struct SlotState {
    /// The slot the job last fired for.
    last_slot: DateTime<Utc>,
}

impl Runner {
    /// A runner keeping its files in `state_dir`, alerting through `alerts` and telling
    /// `recorder` of every run that ends; fails only if the alarm thread cannot be started.
    pub fn start(
        state_dir: PathBuf,
        alerts: Dispatcher,
        recorder: Arc<dyn RunRecorder>,
    ) -> std::io::Result<Self> {
        Ok(Runner {
            inner: Arc::new(RunnerInner {
                state_dir,
                alerts,
                kill_all: CancellationToken::new(),
                kill_why: StopReason::default(),
                tracker: TaskTracker::new(),
                alarm: Alarm::start()?,
                recorder,
                gate: RwLock::new(None),
                jobs: RwLock::new(BTreeMap::new()),
                saver: crate::state::RecordWriter::start()?,
            }),
        })
    }

    /// The precise alarm timers finish their wait on.
    pub fn alarm(&self) -> &Alarm {
        &self.inner.alarm
    }

    /// Puts `gate` in force for the slots of fleet jobs from now on (`None`: no fleet): it
    /// learns the fleet jobs, and the slots it takes over are run here until it is replaced.
    /// Must be called inside the runtime.
    pub fn set_gate(&self, gate: Option<Arc<dyn SlotGate>>) {
        if let Some(gate) = &gate {
            gate.set_jobs(self.fleet_jobs());
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            gate.offer_takeovers(tx);
            // Ends when the gate (the sender's holder) goes, or the runner does.
            let runner = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                while let Some(takeover) = rx.recv().await {
                    let Some(inner) = Weak::upgrade(&runner) else {
                        break;
                    };
                    Runner { inner }.take_over(takeover).await;
                }
            });
        }
        *self.inner.gate.write().unwrap_or_else(|p| p.into_inner()) = gate;
    }

    /// Keeps `jobs` as the configuration in force, and tells the gate its fleet jobs.
    pub fn set_jobs(&self, jobs: impl IntoIterator<Item = JobHandle>) {
        let jobs = jobs
            .into_iter()
            .map(|h| (h.config.name.clone(), h))
            .collect();
        *self.inner.jobs.write().unwrap_or_else(|p| p.into_inner()) = jobs;
        if let Some(gate) = self.gate() {
            gate.set_jobs(self.fleet_jobs());
        }
    }

    /// The gate in force, if any.
    fn gate(&self) -> Option<Arc<dyn SlotGate>> {
        self.inner
            .gate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fleet jobs of the configuration in force.
    fn fleet_jobs(&self) -> Vec<Arc<JobConfig>> {
        let jobs = self.inner.jobs.read().unwrap_or_else(|p| p.into_inner());
        jobs.values()
            .filter(|h| h.config.scope == Scope::Fleet)
            .map(|h| h.config.clone())
            .collect()
    }

    /// Runs a slot the gate took over as a scheduled run of its job, with its claim; when the
    /// job is no longer an enabled fleet job here, the claim ends as not run (logged at error).
    async fn take_over(&self, takeover: Takeover) {
        let Takeover { job, slot, claim } = takeover;
        let handle = self
            .inner
            .jobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job)
            .filter(|h| h.config.scope == Scope::Fleet && h.config.enabled)
            .cloned();
        match handle {
            Some(handle) => {
                self.fire(Fire::new(&handle, Trigger::Schedule(slot)).with_claim(slot, claim))
            }
            None => {
                let finished = Finished {
                    run_id: super::execute::new_run_id(),
                    started: Utc::now(),
                    duration: Duration::ZERO,
                    report: RunReport::failed(format!(
                        "fleet slot {} taken over from a lost run is not run: {job} is no \
                         longer an enabled fleet job of this host's configuration",
                        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )),
                };
                let detail = finished.report.detail.as_deref().unwrap_or_default();
                tracing::error!(job = %job, run_id = %finished.run_id, outcome = "failed",
                    "{job}: run failed: {detail}");
                claim.finish(&finished).await;
            }
        }
    }

    /// Asks the gate in force whether this host may start `job`'s `slot`; without one, the
    /// slot is refused (fail closed).
    async fn claim(&self, job: &JobConfig, slot: DateTime<Utc>) -> Verdict {
        match self.gate() {
            Some(gate) => gate.claim(job, slot).await,
            None => Verdict::Refused("no fleet client is running (see the log at start)".into()),
        }
    }

    /// Records a fleet slot the gate refused: logged at error, counted (as failed) and kept
    /// as the job's last run so `opsd status` shows why it did not run here; alerted through
    /// the job's sinks only when `first` of a streak (an `@every 1s` job would alert every
    /// second while etcd is down), the streak's end alerting once in [`Runner::decided`].
    fn refused(&self, job: &JobConfig, slot: DateTime<Utc>, why: &str, first: bool) -> Finished {
        let finished = Finished {
            run_id: super::execute::new_run_id(),
            started: Utc::now(),
            duration: Duration::ZERO,
            report: RunReport::failed(format!(
                "fleet slot {} not run on this host: {why}",
                slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
        };
        let detail = finished.report.detail.as_deref().unwrap_or_default();
        tracing::error!(job = %job.name, run_id = %finished.run_id, outcome = "failed",
            duration_ms = 0u64, "{}: run failed: {detail}", job.name);
        if first && !job.alert.is_empty() {
            let mut report = finished.report.clone();
            report.detail = Some(format!(
                "{detail}; the job's next refused slots are logged at error, not alerted, \
                 until one is decided again"
            ));
            self.alerts().deliver(
                super::failed_run_alert(&job.name, &finished.run_id, &report),
                &job.alert,
            );
        }
        finished
    }

    /// The gate decided `job`'s `slot` again after refusing its slots (`recovered`): said at
    /// info and alerted once through the job's sinks.
    fn decided(&self, job: &JobConfig, slot: DateTime<Utc>) {
        let slot = slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let summary = format!(
            "job {}: fleet slots are decided again on this host (from slot {slot}); they \
             were refused until now",
            job.name
        );
        tracing::info!(job = %job.name, "{}: fleet slots are decided again from slot {slot}", job.name);
        if !job.alert.is_empty() {
            let alert = crate::alert::Alert::new(
                &job.name,
                "fleet_recovered".to_string(),
                crate::severity::Severity::Info,
                summary,
            );
            self.alerts().deliver(alert, &job.alert);
        }
    }

    /// The alert dispatcher in force.
    pub fn alerts(&self) -> &Dispatcher {
        &self.inner.alerts
    }

    /// A handle on `config`'s runs with `state`; its runs stop when shutdown's grace runs out.
    pub fn handle(&self, config: Arc<JobConfig>, state: Arc<JobState>) -> JobHandle {
        JobHandle {
            config,
            state,
            runs_stop: self.inner.kill_all.child_token(),
        }
    }

    /// `job`'s file in the state directory's folder `dir`.
    fn job_file(&self, dir: &str, job: &str) -> PathBuf {
        self.inner.state_dir.join(dir).join(format!("{job}.json"))
    }

    /// The file that keeps the slot a catch-up job last fired for.
    fn slot_file(&self, job: &str) -> PathBuf {
        self.job_file("schedule", job)
    }

    /// The file that keeps `job`'s last run across restarts.
    fn last_run_file(&self, job: &str) -> PathBuf {
        self.job_file("last-run", job)
    }

    /// A state for `job` that starts from the last run saved by an earlier daemon; a file that
    /// cannot be read is logged and ignored (the next run replaces it).
    pub fn restore_state(&self, job: &JobConfig) -> Arc<JobState> {
        let (state, error) =
            JobState::restore(&self.last_run_file(&job.name), job.spec.type_name());
        if let Some(e) = error {
            tracing::warn!(job = %job.name, "{}: {e}; status shows no last run until it runs again", job.name);
        }
        Arc::new(state)
    }

    /// Writes `job`'s last run to its file (on the state writer thread, off the async
    /// threads); the run's task waits for it, so shutdown does not end before the last runs
    /// are kept.
    async fn save_last(&self, job: &JobConfig, state: &Arc<JobState>) {
        let path = self.last_run_file(&job.name);
        let (state, job_type) = (Arc::clone(state), job.spec.type_name());
        let name = job.name.clone();
        let saved = self
            .inner
            .saver
            .run(move || state.save_last(&path, job_type).map_err(|e| (path, e)))
            .await;
        match saved {
            Some(Ok(())) => {}
            Some(Err((path, e))) => tracing::error!(
                job = %name,
                "{name}: cannot keep the last run in {}: {e}; after a restart status will not show it",
                path.display()
            ),
            None => {
                tracing::error!(job = %name, "{name}: cannot keep the last run: writing it panicked")
            }
        }
    }

    /// The slot catch-up job `job` last fired for, as [`Runner::remember_slot`] kept it;
    /// `None` when it never fired.
    pub fn last_slot(&self, job: &str) -> std::io::Result<Option<DateTime<Utc>>> {
        let saved = crate::state::read_json::<SlotState>(&self.slot_file(job))?;
        Ok(saved.map(|s| s.last_slot))
    }

    /// Persists the slot a catch-up job last fired for (off the async threads).
    pub fn remember_slot(&self, job: &str, slot: DateTime<Utc>) {
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

    /// What `job`'s runs are stopped and watched through: its `runs_stop`, reported as ended
    /// by `why` when given, else by why shutdown's grace ran out.
    fn control(&self, job: &JobHandle, why: Option<StopReason>) -> RunControl {
        RunControl {
            stop: job.runs_stop.clone(),
            why: why
                .into_iter()
                .chain([self.inner.kill_why.clone()])
                .collect(),
            live: job.state.live(),
        }
    }

    /// Runs `job` once to its end, for `trigger`, stopped through `control`; a fleet run gets
    /// its claim's fencing token and reports its end to the claim.
    async fn run_once(
        &self,
        job: &JobConfig,
        trigger: Trigger,
        control: RunControl,
        ticket: Option<Ticket>,
        claim: Option<Box<dyn Claimed>>,
    ) -> Finished {
        let run = Run::new(trigger)
            .with_control(control)
            .with_ticket(ticket)
            .with_fencing_token(claim.as_ref().map(|c| c.fencing_token()));
        let finished = execute(job, self.inner.state_dir.clone(), self.alerts(), run).await;
        if let Some(claim) = claim {
            claim.finish(&finished).await;
        }
        finished
    }

    /// Starts a run now if the job's overlap policy allows; a queued run follows it.
    pub fn fire(&self, fire: Fire) {
        let (job, state) = (&fire.handle.config, &fire.handle.state);
        let trigger = fire.trigger;
        // A fleet slot's overlap policy is applied by the gate, fleet-wide (this host's runs
        // included): a claim still in flight must not count here as a run going, or a slow
        // claim would make every host skip the next slot at once.
        let admission = if job.scope == Scope::Fleet && fire.slot.is_some() {
            state.start_unconditionally();
            Admission::Start
        } else {
            state.admit(job.overlap)
        };
        match admission {
            Admission::Start => {}
            Admission::Queued => {
                tracing::warn!(job = %job.name, trigger = trigger.as_str(),
                    "{}: previous run still going; this run waits for it (overlap = \"queue\")", job.name);
                return fire.not_started("queued behind the running instance");
            }
            Admission::Skipped => {
                tracing::warn!(job = %job.name, outcome = "skipped", trigger = trigger.as_str(),
                    "{}: previous run still going; skipping this run (overlap = {:?})",
                    job.name, format!("{:?}", job.overlap).to_lowercase());
                return fire.not_started("skipped: the previous run is still going");
            }
        }
        let runner = self.clone();
        let control = self.control(&fire.handle, None);
        let Fire {
            handle:
                JobHandle {
                    config: job,
                    state,
                    runs_stop: stop,
                },
            mut trigger,
            mut reply,
            mut ticket,
            slot,
            held,
        } = fire;
        self.inner.tracker.spawn(async move {
            let mut claim = held.map(|h| h.0);
            if let (Scope::Fleet, Some(slot), None) = (job.scope, slot, &claim) {
                // The claim is a network call: the rest of the wave does not wait for it.
                drop(ticket.take());
                let verdict = runner.claim(&job, slot).await;
                if !matches!(verdict, Verdict::Refused(_)) && state.gate_decided() {
                    runner.decided(&job, slot);
                }
                match verdict {
                    Verdict::Start(c) => claim = Some(c),
                    Verdict::Taken(by) => {
                        tracing::debug!(job = %job.name, slot = %slot, host = %by,
                            "{}: slot claimed by {by}", job.name);
                        state.not_started();
                        if let Some(r) = reply.take() {
                            let _ =
                                r.send(TriggerReply::NotStarted(format!("slot claimed by {by}")));
                        }
                        return;
                    }
                    Verdict::Busy(on) => {
                        tracing::warn!(job = %job.name, outcome = "skipped", slot = %slot,
                            "{}: previous run still going on {on}; skipping this slot (overlap = \"skip\", fleet-wide)",
                            job.name);
                        state.skipped_by_overlap();
                        if let Some(r) = reply.take() {
                            let _ = r.send(TriggerReply::NotStarted(format!(
                                "skipped: the previous run is still going on {on}"
                            )));
                        }
                        return;
                    }
                    Verdict::Refused(why) => {
                        let first = state.gate_refused();
                        let finished = runner.refused(&job, slot, &why, first);
                        state.finish(&finished);
                        if let Some(r) = reply.take() {
                            let _ = r.send(TriggerReply::Ran(LastRun::from(&finished)));
                        }
                        runner.save_last(&job, &state).await;
                        return;
                    }
                }
            }
            loop {
                if !job.jitter.is_zero() && matches!(trigger, Trigger::Schedule(_)) {
                    // A jittered run starts apart from its wave; it holds no other run back.
                    drop(ticket.take());
                    let delay = jitter_delay(job.jitter, fastrand::f64());
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // Stopped (shutdown's grace ran out) before its turn came: a run that
                        // has not started is not started now, only to be killed and alerted on.
                        () = stop.cancelled() => break,
                    }
                }
                let finished = runner
                    .run_once(&job, trigger, control.clone(), ticket.take(), claim.take())
                    .await;
                let again = state.finish(&finished);
                runner.inner.recorder.run_ended(&job, trigger, &finished);
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

    /// Keeps a continuous job running, restarting it with backoff when it ends on its own;
    /// `why` says why its `runs_stop` fired, for the run that ends.
    pub fn supervise(&self, job: JobHandle, why: StopReason) -> JoinHandle<()> {
        let runner = self.clone();
        let control = self.control(&job, Some(why));
        let JobHandle {
            config: job,
            state,
            runs_stop: stop,
        } = job;
        self.inner.tracker.spawn(async move {
            let mut backoff = RestartBackoff::default();
            loop {
                state.start_unconditionally();
                let finished = runner
                    .run_once(&job, Trigger::Continuous, control.clone(), None, None)
                    .await;
                state.finish(&finished);
                runner
                    .inner
                    .recorder
                    .run_ended(&job, Trigger::Continuous, &finished);
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

    /// Stops every run still going, saying `why` for each: shutdown's grace ran out.
    pub fn kill_all(&self, why: String) {
        self.inner.kill_why.set(why);
        self.inner.kill_all.cancel();
    }

    /// Every run and supervisor started, for shutdown to close and wait on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }
}

/// How long a scheduled run of a job with `jitter` waits before it starts, for `random`, a
/// uniform draw from [0, 1): that fraction of the jitter, so runs spread evenly from their
/// slot up to (never beyond) the jitter after it.
fn jitter_delay(jitter: Duration, random: f64) -> Duration {
    jitter.mul_f64(random)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest draw `fastrand::f64` can return, the one just below 1.
    const LAST_DRAW: f64 = 1.0 - f64::EPSILON / 2.0;

    #[test]
    fn the_wait_is_the_draws_fraction_of_the_jitter() {
        let jitter = Duration::from_millis(600);
        assert_eq!(jitter_delay(jitter, 0.0), Duration::ZERO);
        assert_eq!(jitter_delay(jitter, 0.5), Duration::from_millis(300));
        assert_eq!(jitter_delay(jitter, 0.25), Duration::from_millis(150));
    }

    #[test]
    fn the_wait_never_exceeds_the_jitter_even_for_the_last_draw_or_a_long_jitter() {
        for jitter in [
            Duration::from_millis(1),
            Duration::from_millis(600),
            Duration::from_secs(3600),
            Duration::from_secs(366 * 86_400),
        ] {
            let wait = jitter_delay(jitter, LAST_DRAW);
            assert!(wait <= jitter, "{wait:?} > {jitter:?}");
            assert!(
                jitter - wait < Duration::from_micros(1),
                "{wait:?} for {jitter:?}"
            );
        }
    }

    /// A gate that answers every slot: the previous run is still going on host `b`.
    #[derive(Debug)]
    struct BusyGate;

    impl SlotGate for BusyGate {
        fn claim<'a>(
            &'a self,
            _job: &'a JobConfig,
            _slot: DateTime<Utc>,
        ) -> crate::jobs::kind::BoxFuture<'a, Verdict> {
            Box::pin(async { Verdict::Busy("b".into()) })
        }
        fn set_jobs(&self, _jobs: Vec<Arc<JobConfig>>) {}
        fn offer_takeovers(&self, _to: crate::scheduler::Takeovers) {}
    }

    /// A fleet slot skipped because the previous run is still going on another host counts
    /// as an overlap skip, as a local one does (before, it was counted nowhere).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_busy_on_another_host_counts_as_skipped_by_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = "[fleet]\netcd = [\"http://127.0.0.1:9\"]\n[jobs.f]\ntype = \"command\"\n\
                    schedule = \"@every 1s\"\nscope = \"fleet\"\ncommand = \"true\"\n\
                    overlap = \"skip\"\n";
        let config = crate::config::parse(&dir.path().join("jobs.toml"), jobs).unwrap();
        let alerts = crate::alert::Dispatcher::new(
            &config.alerts,
            crate::alert::DispatcherOptions::default(),
        )
        .unwrap();
        let sched = crate::scheduler::Scheduler::start(
            config,
            dir.path().join("state"),
            alerts,
            Arc::new(crate::scheduler::NoRecorder),
        )
        .unwrap();
        sched.set_gate(Some(Arc::new(BusyGate)));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let counts = loop {
            let status = sched.status();
            let f = &status[0];
            if f.runs.overlap_skipped >= 2 || std::time::Instant::now() > deadline {
                break (f.runs, f.running);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        sched.shutdown(Duration::from_secs(5)).await;
        let (runs, running) = counts;
        assert!(runs.overlap_skipped >= 2, "{runs:?}");
        assert_eq!(runs.skipped, runs.overlap_skipped, "{runs:?}");
        assert_eq!(runs.success + runs.failed, 0, "{runs:?}");
        assert_eq!(running, 0, "a busy slot is not a run going here");
    }

    #[test]
    fn no_jitter_means_no_wait_whatever_the_draw() {
        for draw in [0.0, 0.5, LAST_DRAW] {
            assert_eq!(jitter_delay(Duration::ZERO, draw), Duration::ZERO);
        }
    }
}
