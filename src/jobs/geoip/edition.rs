//! One edition's pass through a `geoip` run: HEAD, download, check, build, install, and the
//! state record that lets the next run skip a release already installed.

use super::builder::GeoipBuilder;
use crate::geoip::archive::{validate_zip, ZipLimits};
use crate::geoip::download::{DownloadError, MaxMindClient};
use crate::geoip::install::{install, Staged, LOCK_WAIT};
use crate::geoip::state::{self, EditionState, StateFile};
use crate::jobs::RunContext;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What happened to one edition in a run.
pub(super) enum EditionResult {
    /// The installed release is current.
    UpToDate,
    /// Dry run: a newer release would be downloaded.
    WouldDownload(String),
    /// Installed; the names of the files that changed (may be none).
    Installed { date: String, changed: Vec<String> },
}

/// Why one edition failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Archive(#[from] crate::geoip::archive::ArchiveError),
    #[error(transparent)]
    Install(#[from] crate::geoip::install::InstallError),
    #[error("{0}")]
    Other(String),
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    /// The error as one line naming `edition` once: download errors already begin with it.
    pub(super) fn describe(&self, edition: &str) -> String {
        match self {
            StepError::Download(e) => e.to_string(),
            other => format!("{edition}: {other}"),
        }
    }
}

/// One edition's pass through HEAD, download, check, build and install.
pub(super) struct Edition<'a, B> {
    pub(super) ctx: &'a RunContext,
    pub(super) client: &'a MaxMindClient,
    pub(super) builder: &'a Arc<B>,
    pub(super) output_dir: &'a Path,
    pub(super) work: &'a Path,
    pub(super) zip_limits: ZipLimits,
    pub(super) edition: &'a str,
}

impl<B: GeoipBuilder> Edition<'_, B> {
    /// Takes the edition from HEAD to a saved state record (or stops early when up to date).
    pub(super) async fn run(&self) -> Result<EditionResult, StepError> {
        let (ctx, edition) = (self.ctx, self.edition);
        let state_path = state::state_path(&ctx.state_dir, &ctx.job, edition);
        let previous = state::load(&state_path).unwrap_or_else(|e| {
            tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, edition, error = %e,
                "{}: ignoring unreadable state file {}", ctx.job, state_path.display());
            None
        });
        let release = self.client.head(edition, &ctx.cancel).await?;
        if let Some(prev) = &previous {
            if prev.release.same_as(&release) && prev.files_present(self.output_dir) {
                tracing::info!(job = %ctx.job, run_id = %ctx.run_id, edition,
                    date = release.label(), "{}: {edition} {} is already installed", ctx.job, release.label());
                return Ok(EditionResult::UpToDate);
            }
        }
        if ctx.dry_run {
            tracing::info!(job = %ctx.job, run_id = %ctx.run_id, edition, date = release.label(),
                "{}: dry run: would download {edition} {}", ctx.job, release.label());
            return Ok(EditionResult::WouldDownload(release.label().to_string()));
        }

        let zip = self
            .client
            .download(edition, self.work, &ctx.cancel)
            .await?;
        let date = zip.release.label().to_string();
        tracing::info!(job = %ctx.job, run_id = %ctx.run_id, edition, date = %date, size = zip.size,
            sha256 = %zip.sha256, "{}: downloaded {edition} {date} ({} bytes, checksum ok)", ctx.job, zip.size);

        let (zip_path, limits) = (zip.path.clone(), self.zip_limits);
        let summary = self
            .blocking(move || validate_zip(&zip_path, &limits))
            .await??;
        tracing::debug!(job = %ctx.job, run_id = %ctx.run_id, edition,
            files = summary.files.len(), unpacked = summary.total_size, "{}: zip checked", ctx.job);

        let out = self.work.join(format!("{edition}.out"));
        std::fs::create_dir_all(&out)
            .map_err(|e| StepError::Other(format!("{}: {e}", out.display())))?;
        let (b, zip_path, out_dir) = (Arc::clone(self.builder), zip.path.clone(), out.clone());
        let built = self
            .stoppable(move |stop| b.build(&zip_path, &out_dir, stop))
            .await?
            .map_err(|e| StepError::Other(format!("build failed: {e}")))?;

        let staged: Vec<Staged> = built
            .iter()
            .map(|f| Staged {
                name: f.name.clone(),
                source: f.path.clone(),
            })
            .collect();
        let (b, zip_path, dir, files) = (
            Arc::clone(self.builder),
            zip.path.clone(),
            self.output_dir.to_path_buf(),
            built.clone(),
        );
        // Not abandoned on cancel: an install is short and all-or-nothing.
        let report = tokio::task::spawn_blocking(move || {
            install(&dir, &staged, LOCK_WAIT, |staged, candidate| {
                let file = files
                    .iter()
                    .find(|f| f.name == staged.name)
                    .ok_or_else(|| format!("{} was not built", staged.name))?;
                b.verify(&zip_path, file, candidate)
            })
        })
        .await
        .map_err(|e| StepError::Other(format!("install task failed: {e}")))??;

        for file in &report.changed {
            let networks = built
                .iter()
                .find(|b| b.name == file.name)
                .map_or(0, |b| b.networks);
            tracing::info!(job = %ctx.job, run_id = %ctx.run_id, edition, date = %date, file = %file.name,
                networks, size = file.size, previous_size = file.previous_size,
                "{}: installed {} from {edition} {date}: {networks} networks, {} bytes", ctx.job, file.name, file.size);
        }
        for name in &report.unchanged {
            tracing::info!(job = %ctx.job, run_id = %ctx.run_id, edition, date = %date, file = %name,
                "{}: {name} unchanged", ctx.job);
        }

        let files = built
            .iter()
            .map(|f| StateFile {
                name: f.name.clone(),
                size: std::fs::metadata(self.output_dir.join(&f.name)).map_or(0, |m| m.len()),
            })
            .collect();
        let record = EditionState {
            edition: edition.to_string(),
            release: zip.release.clone(),
            zip_sha256: zip.sha256.clone(),
            files,
            installed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        if let Err(e) = state::save(&state_path, &record) {
            // The files are installed; the next run will only download this release again.
            tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, edition, error = %e,
                "{}: cannot save {}", ctx.job, state_path.display());
        }
        Ok(EditionResult::Installed {
            date,
            changed: report.changed.into_iter().map(|f| f.name).collect(),
        })
    }

    /// Runs work that takes a stop flag off the async threads; when the run is cancelled, sets
    /// the flag and waits for the work to end (a build ends at its next read), so nothing
    /// is left writing into the run's scratch directory when it is removed.
    async fn stoppable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Arc<AtomicBool>) -> T + Send + 'static,
    ) -> Result<T, StepError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut task = tokio::task::spawn_blocking(move || f(&flag));
        let failed =
            |e: tokio::task::JoinError| StepError::Other(format!("worker task failed: {e}"));
        tokio::select! {
            r = &mut task => r.map_err(failed),
            () = self.ctx.cancel.cancelled() => {
                stop.store(true, Ordering::SeqCst);
                let _ = task.await;
                Err(StepError::Cancelled)
            }
        }
    }

    /// Runs CPU or disk work off the async threads; gives up waiting when the run is cancelled
    /// (the work then ends on its own in the run's scratch directory, nothing is installed).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StepError> {
        let task = tokio::task::spawn_blocking(f);
        tokio::select! {
            r = task => r.map_err(|e| StepError::Other(format!("worker task failed: {e}"))),
            () = self.ctx.cancel.cancelled() => Err(StepError::Cancelled),
        }
    }
}
