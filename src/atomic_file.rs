//! Replacing a file so that readers see either the old or the new content, never a mix or a
//! torn write, even across a crash or a power loss; and never a temporary file left behind by
//! a write that failed. The one writer of state files, checkpoints and GeoIP install records.
//!
//! The contract of [`write()`]: the bytes go to a new temporary file in the target's own
//! directory (a rename is atomic only within one file system), which is fsynced, renamed over
//! the target, and the directory fsynced so the rename itself survives a power loss
//! ([`write_unsynced`] skips both fsyncs: whole across a crash of opsd, not across a power
//! loss, for records written too often to pay two fsyncs each). On any
//! failure the temporary file is removed and the target is as it was. Only a `kill -9` or a
//! crash between the temporary file's creation and the rename can leave one behind, named
//! `.<name>.<pid>.<n>.tmp` so it is recognisable.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells apart the temporary files of writes running at once in this process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (see the module doc), creating its directory first
/// when it does not exist.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// As [`write()`] without the fsyncs: survives a crash of opsd, not a power loss.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Both writers: the temporary file, the rename and, when `sync`, the fsyncs.
fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = File::options().write(true).create_new(true).open(&tmp)?;
    let result = (|| {
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if sync {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Gone already when the rename succeeded and only the directory's fsync failed.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn writes_replaces_and_creates_the_directory_leaving_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(path.parent().unwrap()), ["state.json"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temp_file_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("job.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"kept").unwrap();
        let err = write(&target, b"new").unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty
            ),
            "{err}"
        );
        assert_eq!(names(dir.path()), ["job.json"], "a temp file was left");
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"kept");
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(write(&dir.path().join("file/state.json"), b"new").is_err());
        assert!(write(Path::new("/"), b"new").is_err(), "no file name");
        assert_eq!(names(dir.path()), ["file"]);
    }

    #[test]
    fn a_read_only_directory_leaves_nothing_behind() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::write(ro.join("state.json"), b"old").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // Root may write anyway; either way the target is old or new and no temp file stays.
        let result = write(&ro.join("state.json"), b"new");
        let content = fs::read(ro.join("state.json")).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        match result {
            Ok(()) => assert_eq!(content, b"new"),
            Err(_) => assert_eq!(content, b"old"),
        }
        assert_eq!(names(&ro), ["state.json"]);
    }
}
