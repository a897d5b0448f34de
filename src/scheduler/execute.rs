//! One run of one job: gives it a run id and a cancel token, enforces its timeout, and logs
//! exactly one start event and one end event with `job`, `run_id`, `outcome`, `duration_ms`.
//! Every message starts with the job's name (`backup: run failed: exited with code 2`), as
//! systemd names the unit, so `journalctl -u opsd -o cat` says which job a line is about.

use super::alarm::Ticket;
use super::failure_alert::failed_run_alert;
use crate::alert::Dispatcher;
use crate::config::JobConfig;
use crate::jobs::{command::signal_name, LiveSlot, Outcome, RunContext, RunReport};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why a run was started, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its schedule came due for this slot (the instant it was meant to fire).
    Schedule(DateTime<Utc>),
    /// It waited for the previous run to finish (overlap = "queue").
    Queued,
    /// A missed slot caught up at start.
    CatchUp,
    /// Asked for by `opsd trigger` or `opsd run-job`.
    Manual,
    /// A continuous job (re)started.
    Continuous,
}

impl Trigger {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule(_) => "schedule",
            Trigger::Queued => "queued",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
            Trigger::Continuous => "continuous",
        }
    }
}

/// How a run is carried out, beyond its job's own settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    /// Report what would change, change nothing.
    pub dry_run: bool,
    /// Copy the job's output to opsd's own stdout and stderr (`opsd run-job`).
    pub foreground: bool,
}

/// Why a stop token fired, set just before it is fired, so a run it ends is reported as
/// `killed: <why>` instead of with no explanation. The first reason given stays.
#[derive(Debug, Clone, Default)]
pub struct StopReason(Arc<OnceLock<String>>);

impl StopReason {
    /// Records why the token is about to fire (kept only if no reason was given before).
    pub fn set(&self, why: impl Into<String>) {
        let _ = self.0.set(why.into());
    }

    /// The reason given, if any.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// What the caller of [`execute`] keeps hold of while the run goes.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Fired from outside (shutdown, removal) to end the run early.
    pub stop: CancellationToken,
    /// Why `stop` fired, most specific first: the first one set is reported.
    pub why: Vec<StopReason>,
    /// Where the run publishes its live figures (continuous jobs).
    pub live: LiveSlot,
}

/// One run as asked for: why it runs, how, and what its caller keeps hold of; see [`execute`].
#[derive(Debug)]
pub struct Run {
    /// Why it runs, for the log.
    trigger: Trigger,
    /// Dry run, foreground.
    mode: RunMode,
    /// What the caller stops it and reads its live figures through.
    control: RunControl,
    /// From the alarm that woke the run; goes back once the run has started.
    ticket: Option<Ticket>,
    /// The fleet claim's fencing token, for a fleet job's slot.
    fencing_token: Option<u64>,
}

impl Run {
    /// A run for `trigger` in the default mode, with a stop token of its own and no ticket.
    pub fn new(trigger: Trigger) -> Self {
        Run {
            trigger,
            mode: RunMode::default(),
            control: RunControl::default(),
            ticket: None,
            fencing_token: None,
        }
    }

    /// Carries the run out in `mode` (dry run, foreground).
    pub fn with_mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    /// Lets the caller stop the run (`control.stop`), say why, and read its live figures.
    pub fn with_control(mut self, control: RunControl) -> Self {
        self.control = control;
        self
    }

    /// Gives back `ticket`, from the alarm that woke the run, once the run has started.
    pub fn with_ticket(mut self, ticket: Option<Ticket>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Hands the run its fleet claim's fencing token (`OPSD_FENCING_TOKEN`).
    pub fn with_fencing_token(mut self, token: Option<u64>) -> Self {
        self.fencing_token = token;
        self
    }
}

/// What a finished run looked like, for status and state.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The run's id.
    pub run_id: Arc<str>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// The job's report, with `TimedOut`/`Killed` filled in by the runner.
    pub report: RunReport,
}

/// A fresh, short, random run id.
pub(super) fn new_run_id() -> Arc<str> {
    format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff).into()
}

/// Runs `job` once as `run` asks, keeping its files under `state_dir` and alerting through
/// `alerts`. `run`'s stop token is fired from outside (shutdown, removal) to end it early.
pub async fn execute(
    job: &JobConfig,
    state_dir: PathBuf,
    alerts: &Dispatcher,
    run: Run,
) -> Finished {
    let Run {
        trigger,
        mode,
        control,
        ticket,
        fencing_token,
    } = run;
    let stop = &control.stop;
    let run_id = new_run_id();
    let cancel = stop.child_token();
    let ctx = RunContext {
        job: job.name.as_str().into(),
        run_id: run_id.clone(),
        cancel: cancel.clone(),
        state_dir,
        dry_run: mode.dry_run,
        foreground: mode.foreground,
        kill_grace: job.kill_grace,
        alerts: alerts.clone(),
        alert_to: job.alert.clone().into(),
        live: control.live.clone(),
        fencing_token,
    };
    let started = Utc::now();
    log_start(&job.name, &run_id, trigger, started);
    // Let every other run due in this same instant start too before this one does its
    // (blocking) work such as fork/exec, so 100 jobs on one slot all start on time.
    match ticket {
        Some(ticket) => ticket.started().await,
        None => tokio::task::yield_now().await,
    }
    let clock = Instant::now();
    let mut timed_out = false;
    let run = job.spec.run(&ctx);
    tokio::pin!(run);
    let mut report = match job.timeout {
        Some(limit) => tokio::select! {
            r = &mut run => r,
            () = tokio::time::sleep(limit) => {
                timed_out = true;
                tracing::warn!(job = %job.name, run_id = %run_id, timeout_ms = limit.as_millis() as u64,
                    "{}: run exceeded its timeout; stopping it", job.name);
                cancel.cancel();
                run.await
            }
        },
        None => run.await,
    };
    if timed_out {
        report.outcome = Outcome::TimedOut;
        // Keep what the job said it had done before it was stopped (e.g. which instances an
        // ec2 job had already changed).
        let limit = humantime::format_duration(job.timeout.unwrap_or_default());
        report.detail = Some(match report.detail.take() {
            Some(done) => format!("timed out after {limit}; {done}"),
            None => format!("timed out after {limit}"),
        });
    } else if stop.is_cancelled() && report.outcome != Outcome::Success {
        report.outcome = Outcome::Killed;
        let why = control
            .why
            .iter()
            .find_map(StopReason::get)
            .unwrap_or("stopped from outside");
        report.detail = Some(match report.detail.take().filter(|d| !d.is_empty()) {
            Some(how) => format!("{why}; {how}"),
            None => why.to_string(),
        });
    }
    let duration = clock.elapsed();
    log_end(&job.name, &run_id, &report, duration);
    if report.outcome.is_error() && !job.alert.is_empty() {
        alerts.deliver(failed_run_alert(&job.name, &run_id, &report), &job.alert);
    }
    Finished {
        run_id,
        started,
        duration,
        report,
    }
}

/// Logs the one start-of-run event; a scheduled run also says which slot it is for and how
/// late after that instant it started (jitter included).
fn log_start(job: &str, run_id: &str, trigger: Trigger, started: DateTime<Utc>) {
    let trigger_name = trigger.as_str();
    match trigger {
        Trigger::Schedule(slot) => {
            let late_ms = (started - slot).num_milliseconds();
            tracing::info!(job, run_id, trigger = trigger_name, slot = %slot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), late_ms, "{job}: run started");
        }
        _ => tracing::info!(job, run_id, trigger = trigger_name, "{job}: run started"),
    }
}

/// Logs the one end-of-run event, at `error` when the run needs attention; fields without a
/// value (no exit code, no detail) are left out rather than logged empty.
fn log_end(job: &str, run_id: &str, report: &RunReport, duration: Duration) {
    let duration_ms = duration.as_millis() as u64;
    let outcome = report.outcome.as_str();
    let exit_code = report.exit_code.map(i64::from);
    let signal = report.signal.map(signal_name);
    let detail = report.detail.as_deref().filter(|d| !d.is_empty());
    let because = detail.map(|d| format!(": {d}")).unwrap_or_default();
    if report.outcome.is_error() {
        tracing::error!(
            job,
            run_id,
            outcome,
            duration_ms,
            exit_code,
            signal,
            detail,
            "{job}: run {outcome}{because}"
        );
    } else {
        tracing::info!(
            job,
            run_id,
            outcome,
            duration_ms,
            exit_code,
            signal,
            detail,
            "{job}: run finished: {outcome}"
        );
    }
}
