//! An exclusive `flock` on an output directory, so two installs (a job run and an
//! `opsd geoip build`, or two jobs) never interleave their renames.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file created in the output directory.
pub const LOCK_FILE_NAME: &str = ".opsd-geoip.lock";

/// How often a busy lock is tried again while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Holds the directory's lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else held the lock for the whole wait.
    #[error("{path} is locked by another opsd GeoIP install (waited {waited:?}); try again later")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {error}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
}

impl DirLock {
    /// Takes the exclusive lock on `dir`, waiting up to `wait` while another process holds it.
    /// Blocking: call from `spawn_blocking` in async code.
    pub fn acquire(dir: &Path, wait: Duration) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE_NAME);
        let io_err = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        let started = Instant::now();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(DirLock { _lock: lock, path }),
                Err((f, Errno::EWOULDBLOCK)) if started.elapsed() < wait => {
                    file = f;
                    std::thread::sleep(POLL);
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(LockError::Busy {
                        path,
                        waited: started.elapsed(),
                    })
                }
                Err((_, errno)) => return Err(io_err(std::io::Error::from(errno))),
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_waits_then_fails_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE_NAME));
        let err = DirLock::acquire(dir.path(), Duration::from_millis(250)).unwrap_err();
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        drop(first);
        DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DirLock::acquire(&dir.path().join("nope"), Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
