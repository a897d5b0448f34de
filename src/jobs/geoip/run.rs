//! A whole `geoip` run: load the key, check the output directory, pass each edition through
//! `edition.rs`, then run `after` when a file changed and sum it all up in one report.

use super::builder::{GeoipBuilder, LegacyBuilder};
use super::edition::{Edition, EditionResult, StepError};
use super::spec::{GeoipSpec, RunSettings};
use crate::geoip::download::{DownloadError, MaxMindClient};
use crate::geoip::install::{check_dir, check_output_dir};
use crate::geoip::license::LicenseKey;
use crate::geoip::state;
use crate::jobs::command::{self, CommandLine, CommandSpec};
use crate::jobs::{Outcome, RunContext, RunReport};
use std::collections::BTreeMap;
use std::sync::Arc;
use toml::Spanned;

/// Runs the job once with `builder` for the format work and `settings` for the downloads
/// (normally `spec.settings()`). Editions are handled one after another; a failed
/// edition leaves its installed files as they were and does not stop the others (except on
/// a refused account or the daily limit, which stop the run). `after` runs when any file
/// changed, even if another edition failed.
pub async fn run_with<B: GeoipBuilder>(
    spec: &GeoipSpec,
    ctx: &RunContext,
    builder: Arc<B>,
    settings: RunSettings,
) -> RunReport {
    let key = match LicenseKey::load(
        spec.license_key_file
            .as_ref()
            .map(|f| f.get_ref().as_path()),
    ) {
        Ok(k) => k,
        Err(e) => return fail(ctx, e.to_string()),
    };
    let output_dir = spec.output_dir.get_ref().clone();
    // A real run also checks the directory is writable before downloading; a dry run writes
    // nothing, not even a test file.
    let checked = if ctx.dry_run {
        check_dir(&output_dir)
    } else {
        check_output_dir(&output_dir)
    };
    if let Err(e) = checked {
        return fail(ctx, format!("output_dir: {e}"));
    }
    let account_id = match u64::try_from(*spec.account_id.get_ref()) {
        Ok(id) => id,
        Err(_) => return fail(ctx, "account_id must be a positive integer".into()),
    };
    let client = match MaxMindClient::new(account_id, key, settings.download) {
        Ok(c) => c,
        Err(e) => return fail(ctx, format!("cannot set up the HTTP client: {e}")),
    };
    let work = state::job_dir(&ctx.state_dir, &ctx.job).join("work");
    if !ctx.dry_run {
        // A crashed run may have left a download behind; start clean.
        let _ = std::fs::remove_dir_all(&work);
        if let Err(e) = std::fs::create_dir_all(&work) {
            return fail(ctx, format!("cannot create {}: {e}", work.display()));
        }
    }

    let mut changed: Vec<String> = Vec::new();
    let mut would: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut cancelled = false;
    for edition in spec.editions.get_ref() {
        let edition = edition.get_ref().as_str();
        let step = Edition {
            ctx,
            client: &client,
            builder: &builder,
            output_dir: &output_dir,
            work: &work,
            zip_limits: settings.zip,
            edition,
        };
        match step.run().await {
            Ok(EditionResult::UpToDate) => {}
            Ok(EditionResult::WouldDownload(label)) => would.push(format!("{edition} ({label})")),
            Ok(EditionResult::Installed { date, changed: c }) => {
                changed.extend(
                    c.into_iter()
                        .map(|name| format!("{name} ({edition} {date})")),
                );
            }
            Err(StepError::Download(DownloadError::Cancelled)) | Err(StepError::Cancelled) => {
                cancelled = true;
                break;
            }
            Err(e) => {
                let message = e.describe(edition);
                tracing::error!(job = %ctx.job, run_id = %ctx.run_id, edition, error = %e,
                    "{}: {message}; the installed files are unchanged", ctx.job);
                failures.push(message);
                if matches!(
                    e,
                    StepError::Download(
                        DownloadError::Unauthorized { .. } | DownloadError::RateLimited { .. }
                    )
                ) {
                    break;
                }
            }
        }
    }
    if !ctx.dry_run {
        let _ = std::fs::remove_dir_all(&work);
    }

    if cancelled {
        return RunReport::killed("cancelled; the installed files are complete (old or new)");
    }
    if ctx.dry_run {
        let detail = if would.is_empty() {
            "dry run: every edition is up to date".to_string()
        } else {
            format!("dry run: would download {}", would.join(", "))
        };
        return finish(failures, Some(detail));
    }
    let mut detail = if changed.is_empty() {
        "no file changed".to_string()
    } else {
        format!("changed: {}", changed.join(", "))
    };
    if !changed.is_empty() {
        if let Some(after) = &spec.after {
            let report = run_after(after, ctx).await;
            if report.outcome == Outcome::Killed {
                return report;
            }
            if report.outcome != Outcome::Success {
                failures.push(format!(
                    "after command {:?} {}",
                    after.get_ref().join(" "),
                    report.detail.as_deref().unwrap_or("failed")
                ));
            } else {
                detail.push_str("; after command succeeded");
            }
        }
    }
    finish(failures, Some(detail))
}

/// Logs `detail` as the run's error and returns a failed report.
fn fail(ctx: &RunContext, detail: String) -> RunReport {
    tracing::error!(job = %ctx.job, run_id = %ctx.run_id, "{}: {detail}", ctx.job);
    RunReport::failed(detail)
}

/// Success with `detail`, or failure naming every failure first.
fn finish(failures: Vec<String>, detail: Option<String>) -> RunReport {
    if failures.is_empty() {
        RunReport::success(detail)
    } else {
        let mut text = failures.join("; ");
        if let Some(d) = detail {
            text.push_str(&format!(" ({d})"));
        }
        RunReport::failed(text)
    }
}

/// Runs the `after` argv like a command job (output logged, stopped on cancel).
async fn run_after(after: &Spanned<Vec<String>>, ctx: &RunContext) -> RunReport {
    let spec = CommandSpec {
        command: Spanned::new(after.span(), CommandLine::Argv(after.get_ref().clone())),
        env: BTreeMap::new(),
        pass_env: Vec::new(),
        env_file: None,
        // No zone of its own: the run keeps the machine's local time.
        timezone: String::new(),
        working_dir: None,
        user: None,
        group: None,
    };
    tracing::info!(job = %ctx.job, run_id = %ctx.run_id, command = %spec.describe(),
        "{}: files changed; running the after command", ctx.job);
    command::run(&spec, ctx).await
}

/// Runs the `geoip` job once: download what is new, build, check, install, run `after`.
pub async fn run(spec: &GeoipSpec, ctx: &RunContext) -> RunReport {
    run_with(
        spec,
        ctx,
        Arc::new(LegacyBuilder::default()),
        spec.settings(),
    )
    .await
}
