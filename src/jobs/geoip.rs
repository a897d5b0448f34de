//! The `geoip` job type: for each configured GeoLite2 edition, ask MaxMind (HEAD) whether a new
//! release is out, download and check it, build the legacy files with a pluggable builder,
//! install them safely, and run `after` when something changed.

use super::command::{self, CommandLine, CommandSpec};
use super::{Outcome, RunContext, RunReport};
use crate::field::{did_you_mean_hint, FieldError};
use crate::geoip::archive::{validate_zip, ZipLimits};
use crate::geoip::download::{DownloadConfig, DownloadError, MaxMindClient, DEFAULT_BASE_URL};
use crate::geoip::install::{check_dir, check_output_dir, install, Staged, LOCK_WAIT};
use crate::geoip::license::LicenseKey;
use crate::geoip::state::{self, EditionState, StateFile};
use crate::geoip::EDITIONS;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use toml::Spanned;

/// A size in bytes written as a number or as `"512MiB"`, `"1 GB"`, `"300k"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses a whole number with an optional unit (k/M/G, KB/MB/GB = 1000s; KiB/MiB/GiB = 1024s).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {text:?} (examples: 536870912, \"512MiB\")"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit {other:?} in {text:?}")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size in bytes, or a string such as \"512MiB\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `type = "geoip"` keys of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeoipSpec {
    /// The MaxMind account id (the basic-auth user name).
    pub account_id: Spanned<i64>,
    /// File holding the license key; default `$CREDENTIALS_DIRECTORY/maxmind-license`.
    pub license_key_file: Option<Spanned<PathBuf>>,
    /// The GeoLite2 CSV editions to fetch, from [`crate::geoip::EDITIONS`].
    pub editions: Spanned<Vec<Spanned<String>>>,
    /// Where the legacy `.dat` files are installed, e.g. `/usr/share/GeoIP`.
    pub output_dir: Spanned<PathBuf>,
    /// A program and arguments run (no shell) after a run that changed some file.
    pub after: Option<Spanned<Vec<String>>>,
    /// The download service (default `https://download.maxmind.com`).
    pub base_url: Option<Spanned<String>>,
    /// The largest zip accepted (default 512 MiB).
    pub max_download_size: Option<Spanned<ByteSize>>,
}

impl GeoipSpec {
    /// Checks what serde cannot: known editions, absolute paths, a usable URL and argv.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |span, key: &str, msg: String| {
            errors.push(FieldError::new(span, format!("{prefix}.{key}"), msg));
        };
        if *self.account_id.get_ref() <= 0 {
            err(
                self.account_id.span(),
                "account_id",
                "account_id must be your MaxMind account number (a positive integer)".into(),
            );
        }
        if let Some(file) = &self.license_key_file {
            if !file.get_ref().is_absolute() {
                err(
                    file.span(),
                    "license_key_file",
                    "license_key_file must be an absolute path".into(),
                );
            }
        }
        if self.editions.get_ref().is_empty() {
            err(
                self.editions.span(),
                "editions",
                format!("list at least one edition (known: {})", EDITIONS.join(", ")),
            );
        }
        let mut seen = Vec::new();
        for edition in self.editions.get_ref() {
            let name = edition.get_ref().as_str();
            if !EDITIONS.contains(&name) {
                let hint = did_you_mean_hint(name, EDITIONS.iter().copied()).unwrap_or_default();
                err(
                    edition.span(),
                    "editions",
                    format!(
                        "unknown edition {name:?}{hint} (known: {})",
                        EDITIONS.join(", ")
                    ),
                );
            } else if seen.contains(&name) {
                err(
                    edition.span(),
                    "editions",
                    format!("{name} is listed twice"),
                );
            }
            seen.push(name);
        }
        if !self.output_dir.get_ref().is_absolute() {
            err(
                self.output_dir.span(),
                "output_dir",
                "output_dir must be an absolute path".into(),
            );
        }
        if let Some(after) = &self.after {
            if after.get_ref().first().is_none_or(|p| p.trim().is_empty()) {
                err(
                    after.span(),
                    "after",
                    "after is empty; give a program and its arguments, e.g. [\"apachectl\", \"graceful\"]"
                        .into(),
                );
            }
        }
        if let Some(url) = &self.base_url {
            let ok = reqwest::Url::parse(url.get_ref())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                err(
                    url.span(),
                    "base_url",
                    format!(
                        "base_url must be an http(s) URL such as {DEFAULT_BASE_URL:?}, not {:?}",
                        url.get_ref()
                    ),
                );
            }
        }
        if let Some(size) = &self.max_download_size {
            if size.get_ref().0 == 0 {
                err(
                    size.span(),
                    "max_download_size",
                    "max_download_size must be more than 0".into(),
                );
            }
        }
        errors
    }

    /// The run settings this spec asks for (defaults for what it leaves out).
    pub fn settings(&self) -> RunSettings {
        let mut download = DownloadConfig::default();
        if let Some(url) = &self.base_url {
            download.base_url = url.get_ref().trim_end_matches('/').to_string();
        }
        if let Some(size) = &self.max_download_size {
            download.max_download_size = size.get_ref().0;
        }
        RunSettings {
            download,
            zip: ZipLimits::default(),
        }
    }
}

/// Limits and network settings of a run, from [`GeoipSpec::settings`] (tests shrink them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// How to talk to MaxMind.
    pub download: DownloadConfig,
    /// What a downloaded zip may unpack to.
    pub zip: ZipLimits,
}

/// One legacy file a builder wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltFile {
    /// Its name in the output directory, e.g. `GeoIP.dat`.
    pub name: String,
    /// Where the builder wrote it.
    pub path: PathBuf,
    /// How many networks it holds, for the log.
    pub networks: u64,
}

/// Turns a checked GeoLite2 CSV zip into legacy files; plugged into [`run_with`].
pub trait GeoipBuilder: Send + Sync + 'static {
    /// Builds the legacy files of the edition in `zip` (already checked by
    /// [`validate_zip`]) into the empty directory `out_dir`. `stop` is set when the run is
    /// cancelled (timeout, reload, shutdown): the build should then end soon, with any error;
    /// the run waits for it before removing its scratch directory.
    fn build(
        &self,
        zip: &Path,
        out_dir: &Path,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<BuiltFile>, String>;

    /// Checks `candidate` (a copy of `file` about to be installed) with sample lookups
    /// against `zip`; an error stops the whole edition's install.
    fn verify(&self, zip: &Path, file: &BuiltFile, candidate: &Path) -> Result<(), String>;
}

/// What happened to one edition in a run.
enum EditionResult {
    /// The installed release is current.
    UpToDate,
    /// Dry run: a newer release would be downloaded.
    WouldDownload(String),
    /// Installed; the names of the files that changed (may be none).
    Installed { date: String, changed: Vec<String> },
}

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
    let work = ctx.state_dir.join("geoip").join(&*ctx.job).join("work");
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
        return RunReport {
            outcome: Outcome::Killed,
            exit_code: None,
            signal: None,
            detail: Some("cancelled; the installed files are complete (old or new)".into()),
            output: Vec::new(),
        };
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

/// Why one edition failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
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
    fn describe(&self, edition: &str) -> String {
        match self {
            StepError::Download(e) => e.to_string(),
            other => format!("{edition}: {other}"),
        }
    }
}

/// One edition's pass through HEAD, download, check, build and install.
struct Edition<'a, B> {
    ctx: &'a RunContext,
    client: &'a MaxMindClient,
    builder: &'a Arc<B>,
    output_dir: &'a Path,
    work: &'a Path,
    zip_limits: ZipLimits,
    edition: &'a str,
}

impl<B: GeoipBuilder> Edition<'_, B> {
    async fn run(&self) -> Result<EditionResult, StepError> {
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

pub use kind::KIND;
mod kind;
pub mod preflight;
#[cfg(test)]
mod tests;

/// The real builder: opsd's own legacy `.dat` writer, checked by sample lookups it keeps
/// from the build until the installer asks for them.
#[derive(Debug, Default)]
pub struct LegacyBuilder {
    samples: std::sync::Mutex<std::collections::HashMap<PathBuf, Vec<crate::geoip::Sample>>>,
}

impl GeoipBuilder for LegacyBuilder {
    fn build(
        &self,
        zip: &Path,
        out_dir: &Path,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<BuiltFile>, String> {
        // The zip passed `validate_zip` with the job's limits; the default caps are at least
        // those, and the row cap of the CSV reader holds whatever they are.
        let guard = crate::geoip::BuildGuard {
            stop: Arc::clone(stop),
            ..Default::default()
        };
        let built = crate::geoip::build_zip(zip, &guard, |name| {
            std::fs::File::create(out_dir.join(name))
                .map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
        })
        .map_err(|e| e.to_string())?;
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        Ok(built
            .into_iter()
            .map(|b| {
                let path = out_dir.join(b.file_name);
                samples.insert(path.clone(), b.samples);
                BuiltFile {
                    name: b.file_name.to_string(),
                    path,
                    networks: b.networks,
                }
            })
            .collect())
    }

    fn verify(&self, _zip: &Path, file: &BuiltFile, candidate: &Path) -> Result<(), String> {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&file.path)
            .ok_or_else(|| format!("no build samples kept for {}", file.name))?;
        let bytes =
            std::fs::read(candidate).map_err(|e| format!("{}: {e}", candidate.display()))?;
        crate::geoip::verify_samples(&bytes, &samples).map_err(|e| e.to_string())
    }
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
