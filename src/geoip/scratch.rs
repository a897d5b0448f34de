//! The scratch directory of `opsd geoip build` under `$TMPDIR`: named after the building
//! process (`opsd-geoip-build.<pid>.<random>`), removed when the build ends or is stopped by
//! a signal, and, for builds that could not clean up (killed, aborted, out of memory), removed
//! by the next build once the process its name gives is gone.

use super::error::GeoipError;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Every scratch directory's name starts with this.
const PREFIX: &str = "opsd-geoip-build.";

/// How old a scratch directory without a pid in its name (made before names carried one)
/// must be to count as abandoned.
const UNNAMED_AGE: Duration = Duration::from_secs(24 * 3600);

/// Removes abandoned scratch directories from `tmp`, then makes this build's own, removed
/// when the returned handle drops.
pub fn create(tmp: &Path) -> Result<tempfile::TempDir, GeoipError> {
    remove_stale(tmp);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}.", std::process::id()))
        .tempdir_in(tmp)
        .map_err(|e| GeoipError::io(tmp, e))
}

/// Removes the scratch directories in `tmp` that belong to this user and whose build is
/// over: no process has the pid in the name, or (older names) untouched for a day. A live pid
/// keeps its directory even if the pid was reused: leaving a stale directory a while longer
/// is better than removing a running build's.
/// Each removal is logged; failures are logged and left for the next build.
pub fn remove_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        // Not followed: a symbolic link or someone else's directory is never touched.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let owner = rest
            .split_once('.')
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let stale = match owner {
            Some(pid) => !is_running(pid),
            None => meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > UNNAMED_AGE),
        };
        if stale {
            remove(&entry.path(), owner);
        }
    }
}

/// Removes one abandoned directory and says so.
fn remove(dir: &PathBuf, owner: Option<u32>) {
    match fs::remove_dir_all(dir) {
        Ok(()) => tracing::info!(
            dir = %dir.display(),
            pid = owner,
            "removed the scratch directory of an earlier build that did not finish"
        ),
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot remove the scratch directory of an earlier build"
        ),
    }
}

/// True unless no process has `pid` (a process of another user counts as running).
fn is_running(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_abandoned_directories_of_this_user_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = create(tmp.path()).unwrap();
        let name = mine
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            name.starts_with(&format!("{PREFIX}{}.", std::process::id())),
            "{name}"
        );
        drop(mine);
        assert!(!tmp.path().join(name).exists());

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = tmp.path().join(format!("{PREFIX}{dead}.abc123"));
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join("GeoIPCity.dat"), "x").unwrap();
        // A live process's directory (this test's) is kept.
        let live = tmp
            .path()
            .join(format!("{PREFIX}{}.def456", std::process::id()));
        fs::create_dir(&live).unwrap();
        let unnamed = tmp.path().join(format!("{PREFIX}Xy7pQ2"));
        fs::create_dir(&unnamed).unwrap();
        let other = tmp.path().join("opsd-geoip-buildx");
        fs::create_dir(&other).unwrap();
        let link = tmp.path().join(format!("{PREFIX}{dead}.link"));
        std::os::unix::fs::symlink(&other, &link).unwrap();

        remove_stale(tmp.path());
        assert!(!stale.exists());
        assert!(live.exists());
        assert!(unnamed.exists(), "a fresh directory without a pid is kept");
        assert!(other.exists() && link.symlink_metadata().is_ok());
    }
}
