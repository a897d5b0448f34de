//! What a GeoIP job last installed per edition, kept as JSON under
//! `state_dir/geoip/<job>/<edition>.json` (beside the run's `work/` download folder, in
//! [`job_dir`]) and written atomically.

use super::download::Release;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The record of one edition's last install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditionState {
    /// The edition, e.g. `GeoLite2-Country-CSV`.
    pub edition: String,
    /// The release installed.
    pub release: Release,
    /// SHA-256 of the zip it came from.
    pub zip_sha256: String,
    /// The files built from it, in the output directory.
    pub files: Vec<StateFile>,
    /// When it was installed, RFC 3339.
    pub installed_at: String,
}

/// One installed file as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// The file name in the output directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

impl EditionState {
    /// True when every recorded file is still in `output_dir` with its recorded size, so
    /// skipping a download cannot leave a deleted or replaced file missing.
    pub fn files_present(&self, output_dir: &Path) -> bool {
        self.files.iter().all(|f| {
            fs::metadata(output_dir.join(&f.name)).is_ok_and(|m| m.is_file() && m.len() == f.size)
        })
    }
}

/// The folder where geoip job `job` keeps its state files and its download work area.
pub fn job_dir(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("geoip").join(job)
}

/// The state file of `edition` for job `job`.
pub fn state_path(state_dir: &Path, job: &str, edition: &str) -> PathBuf {
    job_dir(state_dir, job).join(format!("{edition}.json"))
}

/// Reads a state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> io::Result<Option<EditionState>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a state file atomically with [`crate::atomic_file::write`].
pub fn save(path: &Path, state: &EditionState) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    json.push(b'\n');
    crate::atomic_file::write(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EditionState {
        EditionState {
            edition: "GeoLite2-Country-CSV".into(),
            release: Release {
                file_name: Some("GeoLite2-Country-CSV_20191224.zip".into()),
                date: Some("20191224".into()),
                last_modified: None,
            },
            zip_sha256: "00".repeat(32),
            files: vec![StateFile {
                name: "GeoIP.dat".into(),
                size: 3,
            }],
            installed_at: "2019-12-29T04:00:00Z".into(),
        }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), "geo", "GeoLite2-Country-CSV");
        assert_eq!(load(&path).unwrap(), None);
        save(&path, &sample()).unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn state_files_stay_where_earlier_releases_wrote_them() {
        // Moving them would make every edition download again after an upgrade.
        let root = Path::new("/var/lib/opsd");
        assert_eq!(job_dir(root, "geo"), Path::new("/var/lib/opsd/geoip/geo"));
        assert_eq!(
            state_path(root, "geo", "GeoLite2-ASN-CSV"),
            Path::new("/var/lib/opsd/geoip/geo/GeoLite2-ASN-CSV.json")
        );
    }

    #[test]
    fn corrupt_state_is_an_error_and_files_present_checks_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let state = sample();
        assert!(!state.files_present(dir.path()));
        fs::write(dir.path().join("GeoIP.dat"), b"abc").unwrap();
        assert!(state.files_present(dir.path()));
        fs::write(dir.path().join("GeoIP.dat"), b"abcd").unwrap();
        assert!(!state.files_present(dir.path()));
    }
}
