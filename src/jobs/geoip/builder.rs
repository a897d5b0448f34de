//! The pluggable format step of a `geoip` run: the `GeoipBuilder` trait that turns a checked
//! zip into legacy files and verifies them, and `LegacyBuilder`, opsd's own `.dat` writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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

/// Turns a checked GeoLite2 CSV zip into legacy files; plugged into [`run_with`](super::run_with).
pub trait GeoipBuilder: Send + Sync + 'static {
    /// Builds the legacy files of the edition in `zip` (already checked by
    /// [`validate_zip`](crate::geoip::archive::validate_zip)) into the empty directory `out_dir`. `stop` is set when the run is
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
        let built = crate::geoip::build_zip(zip, &guard, out_dir).map_err(|e| e.to_string())?;
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
        crate::geoip::verify_file(candidate, &samples).map_err(|e| e.to_string())
    }
}
