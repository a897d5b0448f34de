//! The library half of `opsd geoip build`: build every input zip in a scratch directory, then
//! install the files into the output directory the same safe way the `geoip` job does.

use super::build::WrittenDat;
use super::build_zip::build_zip;
use super::error::GeoipError;
use super::guard::BuildGuard;
use super::install::{self, InstallReport, Staged};
use super::reader::verify_file;
use super::scratch;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What [`build`] built and what its install changed.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Every file built, with the sample answers it was checked against.
    pub files: Vec<WrittenDat>,
    /// Which files were installed and which were already identical.
    pub install: InstallReport,
}

/// Builds the legacy files of every zip in `inputs` in a scratch directory (under `$TMPDIR`),
/// then installs them all into `out_dir` with [`install::install`]: under the directory's
/// lock, each changed file is copied to a temporary name beside its target, fsynced, checked
/// with sample lookups, and renamed into place, and the directory fsynced. A failed build or
/// check installs nothing.
pub fn build(inputs: &[PathBuf], out_dir: &Path) -> Result<BuildReport, GeoipError> {
    build_guarded(inputs, out_dir, &BuildGuard::default())
}

/// [`build`] reading the zips under `guard`'s caps; when its stop flag is set the build ends
/// at its next read with [`super::guard::Stop::Signal`], its scratch directory removed and
/// nothing installed.
pub fn build_guarded(
    inputs: &[PathBuf],
    out_dir: &Path,
    guard: &BuildGuard,
) -> Result<BuildReport, GeoipError> {
    build_waiting(inputs, out_dir, install::LOCK_WAIT, guard)
}

/// [`build_guarded`], waiting up to `lock_wait` for another holder of the output directory's
/// lock.
fn build_waiting(
    inputs: &[PathBuf],
    out_dir: &Path,
    lock_wait: Duration,
    guard: &BuildGuard,
) -> Result<BuildReport, GeoipError> {
    install::check_output_dir(out_dir)?;
    let scratch = scratch::create(&std::env::temp_dir())?;
    let mut files: Vec<WrittenDat> = Vec::new();
    let mut sources: Vec<&Path> = Vec::new();
    for zip in inputs {
        let built = build_zip(zip, guard, scratch.path())?;
        for b in built {
            if let Some(i) = files.iter().position(|f| f.file_name == b.file_name) {
                return Err(GeoipError::DuplicateInput {
                    file: b.file_name,
                    first: sources[i].to_path_buf(),
                    second: zip.clone(),
                });
            }
            files.push(b);
            sources.push(zip);
        }
    }
    let staged: Vec<Staged> = files
        .iter()
        .map(|b| Staged {
            name: b.file_name.to_string(),
            source: scratch.path().join(b.file_name),
        })
        .collect();
    let install = install::install(out_dir, &staged, lock_wait, |file, candidate| {
        let built = files
            .iter()
            .find(|b| b.file_name == file.name)
            .ok_or_else(|| format!("{} was not built", file.name))?;
        verify_file(candidate, &built.samples).map_err(|e| e.to_string())
    })?;
    Ok(BuildReport { files, install })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geoip::install::InstallError;
    use crate::geoip::lock::{DirLock, LockError, LOCK_FILE_NAME};

    fn country_zip() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/geoip/GeoLite2-Country-CSV_20191224.zip")
    }

    /// The directory's file names, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_build_waits_for_the_directory_lock_and_installs_nothing_while_it_is_held() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("GeoIP.dat"), "old").unwrap();
        let held = DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let err = build_waiting(
            &[country_zip()],
            dir.path(),
            Duration::ZERO,
            &BuildGuard::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                GeoipError::Install(InstallError::Lock(LockError::Busy { .. }))
            ),
            "{err}"
        );
        assert_eq!(listing(dir.path()), [LOCK_FILE_NAME, "GeoIP.dat"]);
        assert_eq!(std::fs::read(dir.path().join("GeoIP.dat")).unwrap(), b"old");
        drop(held);

        let report = build_waiting(
            &[country_zip()],
            dir.path(),
            Duration::ZERO,
            &BuildGuard::default(),
        )
        .unwrap();
        let names: Vec<&str> = report
            .install
            .changed
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["GeoIP.dat", "GeoIPv6.dat"]);
        assert_eq!(
            listing(dir.path()),
            [LOCK_FILE_NAME, "GeoIP.dat", "GeoIPv6.dat"]
        );
        let installed = std::fs::metadata(dir.path().join("GeoIP.dat"))
            .unwrap()
            .len();
        assert_eq!(installed, report.files[0].size);
        assert_eq!(report.install.changed[0].previous_size, Some(3));

        let again = build_waiting(
            &[country_zip()],
            dir.path(),
            Duration::ZERO,
            &BuildGuard::default(),
        )
        .unwrap();
        assert!(again.install.changed.is_empty(), "{:?}", again.install);
        assert_eq!(again.install.unchanged, ["GeoIP.dat", "GeoIPv6.dat"]);
    }

    #[test]
    fn a_missing_output_dir_is_named_and_the_same_edition_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = build(&[country_zip()], &missing).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!missing.exists());

        let err = build(&[country_zip(), country_zip()], dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                GeoipError::DuplicateInput {
                    file: "GeoIP.dat",
                    ..
                }
            ),
            "{err}"
        );
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }
}
