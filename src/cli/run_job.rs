//! `opsd run-job`: one job once, now, in the foreground, with its result as the exit code.

use super::job_file::load_config;
use super::show::{detail_text, shown_path};
use crate::alert::{Dispatcher, DispatcherOptions};
use crate::logging::{self, LogFormat};
use crate::scheduler::{self, RunMode, Trigger};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs job `name` of `job_file` once and exits with its result.
pub(super) fn run(
    name: &str,
    job_file: &Path,
    state_dir: Option<PathBuf>,
    log_format: LogFormat,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    logging::init(log_format);
    let cfg = load_config(job_file)?;
    let job = cfg.jobs.get(name).cloned().with_context(|| {
        let names: Vec<&str> = cfg.jobs.keys().map(String::as_str).collect();
        let hint = crate::field::did_you_mean_hint(name, names.iter().copied()).unwrap_or_default();
        format!(
            "no job named {name:?} in the loaded job files ({} and its \
             jobs.d/*.toml){hint}",
            shown_path(job_file)
        )
    })?;
    let state = super::state_dir(state_dir);
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let finished = rt.block_on(async move {
        let control = scheduler::RunControl {
            why: vec![scheduler::StopReason::default()],
            ..Default::default()
        };
        let (on_signal, why) = (control.stop.clone(), control.why[0].clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                why.set("interrupted (SIGINT)");
                on_signal.cancel();
            }
        });
        let alerts = Dispatcher::new(&cfg.alerts, DispatcherOptions::default())?;
        let mode = RunMode {
            dry_run,
            foreground: true,
        };
        let run = scheduler::Run::new(Trigger::Manual)
            .with_mode(mode)
            .with_control(control);
        let finished = scheduler::execute(&job, state, &alerts, run).await;
        alerts.shutdown(std::time::Duration::from_secs(30)).await;
        Ok::<_, anyhow::Error>(finished)
    })?;
    // Stdout holds the job's own output (`opsd run-job x > out`); the verdict goes
    // beside the log lines, with the last output again when the run failed.
    let r = &finished.report;
    eprintln!(
        "{}: {}{} ({} ms)",
        crate::escape::control(name),
        r.outcome,
        detail_text(r.detail.as_deref()),
        finished.duration.as_millis()
    );
    if r.outcome.is_error() {
        for line in &r.output {
            eprintln!("  | {}", crate::escape::control(line));
        }
    }
    Ok(match (r.outcome.is_error(), r.exit_code) {
        (false, _) => ExitCode::SUCCESS,
        (true, Some(code)) if (1..=255).contains(&code) => ExitCode::from(code as u8),
        (true, _) => ExitCode::FAILURE,
    })
}
