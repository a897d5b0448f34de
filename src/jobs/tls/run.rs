//! One run of a tls job: load the trust anchors, probe every target (at most `concurrency` at
//! once, each within `probe_timeout`), judge each against `expect`, then log one event per
//! target, raise one alert per failing target and, under `opsd run-job`, print the table.
//! A cancel drops every probe in flight at once (their connections close with them).

use super::alert::{alert_for, outcome_line};
use super::TlsSpec;
use crate::escape;
use crate::jobs::{RunContext, RunReport};
use crate::tls::{self, ProbeReport, Trust, Verdict};
use std::io::Write;

/// Runs the job once.
pub async fn run(spec: &TlsSpec, ctx: &RunContext) -> RunReport {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    let ca_file = spec.ca_file.as_ref().map(|(path, _)| path.clone());
    // Reading the system store parses every root: off the async threads.
    let loading = tokio::task::spawn_blocking(move || match ca_file {
        Some(path) => Trust::with_ca_file(&path),
        None => Ok(Trust::system()),
    });
    let trust = tokio::select! {
        loaded = loading => loaded,
        () = ctx.cancel.cancelled() => return cancelled("while loading the trust store"),
    };
    let trust = match trust {
        Ok(Ok(trust)) => trust,
        Ok(Err(e)) => {
            let msg = e.to_string();
            tracing::error!(job, run_id, error_kind = "ca_file", "{}: {msg}", job);
            return RunReport::failed(msg);
        }
        Err(e) => {
            let msg = format!("cannot load the trust store: {e}");
            tracing::error!(job, run_id, error_kind = "trust", "{}: {msg}", job);
            return RunReport::failed(msg);
        }
    };
    let probing = tls::probe_all(&spec.targets, spec.probe_timeout, &trust, spec.concurrency);
    let reports = tokio::select! {
        reports = probing => reports,
        () = ctx.cancel.cancelled() => return cancelled("while probing"),
    };
    let rows: Vec<(ProbeReport, Verdict)> = reports
        .into_iter()
        .map(|report| {
            let verdict = tls::judge(&report, &spec.expect);
            (report, verdict)
        })
        .collect();
    for (report, verdict) in &rows {
        log_target(ctx, report, verdict);
        if let Some(alert) = alert_for(job, run_id, report, verdict) {
            ctx.alerts.deliver(alert, &ctx.alert_to);
        }
    }
    if ctx.foreground {
        // A closed stdout (`opsd run-job x | head -1`) is no reason to fail the run.
        let _ = std::io::stdout().lock().write_all(
            format!("{}\n{}", tls::render(&rows), tls::render_details(&rows)).as_bytes(),
        );
    }
    match outcome_line(&rows) {
        (true, line) => RunReport::success(Some(line)),
        (false, line) => RunReport::failed(line),
    }
}

/// The event of one target: `info` on a pass, `error` on a failure (its alert goes to the
/// sinks without a second journal line).
fn log_target(ctx: &RunContext, report: &ProbeReport, verdict: &Verdict) {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    let target = escape::control(&report.target.to_string()).into_owned();
    let line = escape::control(&verdict.line()).into_owned();
    let elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX);
    match (verdict.problems.first(), verdict.severity()) {
        (Some(worst), Some(severity)) => tracing::error!(
            job,
            run_id,
            target = target.as_str(),
            rule = worst.kind.rule(),
            severity = severity.as_str(),
            elapsed_ms,
            "{}: tls {target}: {line}",
            job
        ),
        _ => tracing::info!(
            job,
            run_id,
            target = target.as_str(),
            elapsed_ms,
            "{}: tls {target}: {line}",
            job
        ),
    }
}

/// The report of a run stopped from outside before every target was judged.
fn cancelled(when: &str) -> RunReport {
    RunReport::killed(format!("cancelled {when}"))
}
