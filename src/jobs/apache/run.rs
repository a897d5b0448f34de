//! An `apache_log` run: follow the logs until cancelled, log every event at the level its
//! severity calls for, send it to the job's sinks, and publish the watch's figures.

use super::alert::alert_for;
use super::doctor::run_doctor;
use super::live;
use super::spec::ApacheLogSpec;
use crate::apache::rules::LogEvent;
use crate::apache::watch::acks::Acks;
use crate::apache::watch::{watch_reporting, Watcher};
use crate::jobs::{Outcome, RunContext, RunReport};
use crate::logging::CRITICAL_TARGET;
use crate::severity::Severity;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tracing::info;

/// Where job `job` keeps its checkpoint: `state_dir/apache/<job>.json`.
pub fn checkpoint_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("apache").join(format!("{job}.json"))
}

/// Logs a watch event at a tracing level (and target), with the standard fields.
macro_rules! log_event_at {
    ($level:ident, $job:expr, $ev:expr) => {
        log_event_at!($level, module_path!(), $job, $ev)
    };
    ($level:ident, $target:expr, $job:expr, $ev:expr) => {
        tracing::$level!(
            target: $target,
            job = %$job,
            rule = %$ev.rule,
            severity = %$ev.severity,
            count = $ev.count,
            file = %$crate::escape::control(&$ev.file),
            line = %$crate::escape::control(&$ev.last_line),
            first_line = %$crate::escape::control(&$ev.first_line),
            dedup_key = $ev
                .dedup_key
                .as_deref()
                .map(|k| tracing::field::display($crate::escape::control(k))),
            suppressed = $ev.suppressed,
            "{}: {}{}", $job, $ev.summary,
            $ev.suppressed_suffix()
        )
    };
}

/// Logs one event at the level its severity calls for (critical: journald priority crit).
pub fn log_event(job: &str, ev: &LogEvent) {
    match ev.severity {
        Severity::Critical => log_event_at!(error, CRITICAL_TARGET, job, ev),
        Severity::High => log_event_at!(error, job, ev),
        Severity::Warning | Severity::Info => log_event_at!(warn, job, ev),
    }
}

/// Watches until `ctx.cancel` fires, logging every event; events go to `on_event` too, and
/// the watch's figures to `ctx.live` after every pass and every event. The checkpoint passes
/// an event's line only once `on_event` has returned for it.
pub async fn run_with(
    spec: &ApacheLogSpec,
    ctx: &RunContext,
    mut on_event: impl FnMut(&LogEvent),
) -> RunReport {
    if ctx.dry_run {
        return RunReport {
            outcome: Outcome::Skipped,
            exit_code: None,
            signal: None,
            detail: Some(format!(
                "apache_log has no dry run; `opsd apache test-rules LOG --job {}` shows what its rules would match in a log",
                ctx.job
            )),
            output: Vec::new(),
        };
    }
    let cfg = spec.watch_config(&ctx.job);
    let path = checkpoint_path(&ctx.state_dir, &ctx.job);
    let watcher = match tokio::task::spawn_blocking(move || Watcher::new(cfg, path)).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return RunReport::failed(e.to_string()),
        Err(e) => return RunReport::failed(format!("the log reader task failed: {e}")),
    };
    info!(job = %ctx.job, rules = watcher.rules().len(), "{}: watching Apache error logs", ctx.job);
    let rules: Vec<String> = watcher.rules().iter().map(|r| r.id.clone()).collect();
    let figures = Arc::new(live::Publisher::new(
        ctx.live.clone(),
        ctx.alert_to.len(),
        &rules,
    ));
    let on_pass = {
        let figures = Arc::clone(&figures);
        let (alerts, sinks) = (ctx.alerts.clone(), Arc::clone(&ctx.alert_to));
        move |w: &Watcher, stats: &crate::apache::watch::WatchStats| {
            let following = w
                .followed()
                .map(|p| crate::escape::control(&p.display().to_string()).into_owned())
                .collect();
            let all = alerts.stats();
            let sink_stats = sinks
                .iter()
                .filter_map(|name| Some((name.clone(), *all.get(name)?)))
                .collect();
            let held = (w.rules(), w.suppressed_by_rule());
            figures.pass(following, stats, held, sink_stats);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let (acks, ack_rx) = Acks::new();
    let task = tokio::spawn(watch_reporting(
        watcher,
        ctx.cancel.clone(),
        tx,
        ack_rx,
        on_pass,
    ));
    while let Some(ev) = rx.recv().await {
        log_event(&ctx.job, &ev);
        on_event(&ev);
        figures.alert(&ev);
        // Logged and queued for the sinks: the checkpoint may now pass its line.
        acks.handled();
    }
    match task.await {
        Ok(Ok(stats)) => RunReport::success(Some(format!(
            "stopped after {} lines, {} events ({} dropped while the consumer was behind), {} matches held back by cooldowns, {} failed checkpoint saves",
            stats.lines, stats.events, stats.dropped, stats.suppressed, stats.failed_saves
        ))),
        Ok(Err(e)) => RunReport::failed(e.to_string()),
        Err(e) => RunReport::failed(format!("the watcher task failed: {e}")),
    }
}

/// Watches until `ctx.cancel` fires, logging every event and sending it to the job's sinks;
/// child-crash alerts carry advice that follows the doctor's verdict once it has answered.
pub async fn run(spec: &ApacheLogSpec, ctx: &RunContext) -> RunReport {
    let diagnosis = Arc::new(OnceLock::new());
    if !ctx.dry_run {
        let slot = Arc::clone(&diagnosis);
        let bin = spec.apache_bin.clone();
        let job = Arc::clone(&ctx.job);
        tokio::spawn(async move {
            if let Some(d) = run_doctor(&job, bin).await {
                let _ = slot.set(d);
            }
        });
    }
    run_with(spec, ctx, |ev| {
        let alert = alert_for(&ctx.job, ev, diagnosis.get());
        ctx.alerts.deliver(alert, &ctx.alert_to);
    })
    .await
}
