//! Files under the state directory, always written atomically through
//! [`crate::atomic_file::write`] (temp file in the same directory, fsync, rename over the old
//! file, fsync the directory; no temp file left on failure); and the lock that keeps a second
//! daemon off a state directory already in use.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The lock file a running daemon holds in its state directory.
pub const DAEMON_LOCK: &str = "opsd.lock";

/// Held by the running daemon for its whole life; two daemons on one state directory would
/// fire every job twice and overwrite each other's checkpoints.
#[derive(Debug)]
pub struct DaemonLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("another opsd{holder} is already running with the state directory {dir}")]
    Busy {
        /// The state directory.
        dir: PathBuf,
        /// " (pid N)" when the lock file names its holder.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Takes the daemon lock on `dir` (which must exist) and records this process's pid in it.
pub fn lock_daemon(dir: &Path) -> Result<DaemonLock, LockError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join(DAEMON_LOCK);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0).map_err(io_err)?;
            writeln!(lock, "{}", std::process::id()).map_err(io_err)?;
            Ok(DaemonLock { _lock: lock })
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            Err(LockError::Busy {
                dir: dir.to_path_buf(),
                holder,
            })
        }
        Err((_, errno)) => Err(io_err(io::Error::from(errno))),
    }
}

/// Serializes `value` as pretty JSON and writes it atomically to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    crate::atomic_file::write(path, &json_bytes(value)?)
}

/// Like [`write_json`] without the fsyncs: readers still see the old or the new file, never a
/// mix, but after a power loss the file may be the old one, empty or missing. For records
/// rewritten at every run that cost little when lost (a job's last run): 1,000 `@every 1s`
/// jobs would otherwise fsync 2,000 times a second.
pub fn write_json_unsynced<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    crate::atomic_file::write_unsynced(path, &json_bytes(value)?)
}

/// `value` as pretty JSON ending in a newline, as the state files are written.
fn json_bytes<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The largest state record read; a larger one is as corrupt as one that is not JSON.
pub const MAX_STATE_FILE: u64 = 1 << 20;

/// Reads JSON state from `path`; `Ok(None)` when the file does not exist yet. It is read with
/// [`crate::bounded_read`]: something at `path` that is not a regular file (a FIFO, a symlink
/// to `/dev/zero`) or is larger than [`MAX_STATE_FILE`] is an error at once, as a record that
/// is not JSON is, never a wait or an endless read.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match crate::bounded_read::read(path, MAX_STATE_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_daemon(dir.path()).unwrap();
        let err = lock_daemon(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {})", std::process::id()))
                && err.contains("already running"),
            "{err}"
        );
        drop(first);
        lock_daemon(dir.path()).unwrap();
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(read_json::<u32>(&path).unwrap(), None);
        write_json(&path, &1u32).unwrap();
        write_json(&path, &2u32).unwrap();
        assert_eq!(read_json::<u32>(&path).unwrap(), Some(2));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files are left behind");
    }

    #[test]
    fn an_unsynced_write_replaces_the_file_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last.json");
        write_json_unsynced(&path, &vec![1u32; 1000]).unwrap();
        write_json_unsynced(&path, &vec![2u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![2]));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files are left behind");
    }

    #[test]
    fn a_fifo_a_device_or_a_huge_record_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking read would wait for a writer for good: this test would hang.
        let e = read_json::<u32>(&fifo).unwrap_err().to_string();
        assert!(e.contains("fifo.json") && e.contains("a FIFO"), "{e}");
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_json::<u32>(&zero).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let huge = dir.path().join("huge.json");
        fs::write(&huge, vec![b' '; MAX_STATE_FILE as usize + 1]).unwrap();
        let e = read_json::<u32>(&huge).unwrap_err().to_string();
        assert!(e.contains("larger than 1 MiB"), "{e}");
    }
}
