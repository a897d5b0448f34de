//! Where the watcher is in each file, saved atomically to `state_dir/apache/<job>.json` so a
//! restart resumes exactly there: device, inode, offset and a fingerprint of the first bytes
//! (which tells a reused inode or a truncated file from the one that was being read).

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_LEN: usize = 256;

/// The first bytes of a file, hex-encoded SHA-256, with how many bytes were hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// Bytes hashed (less than [`FINGERPRINT_LEN`] while the file is shorter).
    pub len: u64,
    /// Hex SHA-256 of those bytes.
    pub sha256: String,
}

impl Fingerprint {
    /// Fingerprints the first `len` bytes of `file` (fewer if it is shorter).
    pub fn of(file: &File, len: u64) -> io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(FINGERPRINT_LEN)];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(Self::of_bytes(&buf))
    }

    /// Fingerprints `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Fingerprint {
            len: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    /// True when `file` still starts with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        Ok(Self::of(file, self.len)? == *self)
    }
}

/// The position in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    /// The path it was last seen at.
    pub path: PathBuf,
    /// Its device.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
    /// Bytes consumed (always at a line boundary).
    pub offset: u64,
    /// Its first bytes.
    pub fingerprint: Fingerprint,
    /// True for a file rotated away that is being read to its end.
    #[serde(default)]
    pub retired: bool,
}

/// Everything the watcher needs to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    /// The format version.
    pub version: u32,
    /// Every file being followed.
    pub files: Vec<FileMark>,
}

/// What kind of thing a file type is, for messages: "a directory", "a FIFO", ...
fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Errors reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Something is at the checkpoint's path that cannot be read as a file.
    #[error("checkpoint {path} cannot be read: {source}")]
    Unreadable {
        /// The checkpoint path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not a checkpoint.
    #[error("checkpoint {path} is corrupt: {source}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Checkpoint {
    /// The current format version.
    pub const VERSION: u32 = 1;

    /// Reads the checkpoint at `path`; `None` when there is none yet. Anything at `path` that
    /// cannot be read as a regular file (a directory, a FIFO, a socket, a device, a read
    /// error) is [`CheckpointError::Unreadable`]; it is opened without blocking, so a FIFO
    /// with no writer cannot hang the job.
    pub fn load(path: &Path) -> Result<Option<Self>, CheckpointError> {
        use std::os::unix::fs::OpenOptionsExt;
        let unreadable = |source| CheckpointError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e)),
        };
        let kind = file.metadata().map_err(unreadable)?.file_type();
        if !kind.is_file() {
            return Err(unreadable(io::Error::other(format!(
                "it is {}, not a regular file",
                describe(kind)
            ))));
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(unreadable)?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| CheckpointError::Corrupt {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Writes the checkpoint to `path` with [`crate::atomic_file::write`] (temp file, fsync,
    /// rename, fsync dir; no temp file left when it fails).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io_err = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        };
        let body = serde_json::to_vec_pretty(self).map_err(|e| io_err(io::Error::other(e)))?;
        crate::atomic_file::write(path, &body).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apache/job.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let cp = Checkpoint {
            version: Checkpoint::VERSION,
            files: vec![FileMark {
                path: "/var/log/apache2/error.log".into(),
                dev: 1,
                ino: 2,
                offset: 3,
                fingerprint: Fingerprint::of_bytes(b"[Wed"),
                retired: false,
            }],
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(cp));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left");
    }

    #[test]
    fn a_failed_save_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::create_dir_all(path.join("sub")).unwrap();
        let err = Checkpoint::default().save(&path).unwrap_err();
        assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["job.json"], "a temp file was left");
    }

    #[test]
    fn corrupt_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Checkpoint::load(&path),
            Err(CheckpointError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_directory_or_a_fifo_is_unreadable_and_a_fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = Checkpoint::load(&fifo).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Unreadable { .. }) && err.to_string().contains("a FIFO"),
            "{err}"
        );
        let sub = dir.path().join("dir.json");
        std::fs::create_dir(&sub).unwrap();
        let err = Checkpoint::load(&sub).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn fingerprint_tells_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first line\n").unwrap();
        let f = File::open(&path).unwrap();
        let fp = Fingerprint::of(&f, FINGERPRINT_LEN as u64).unwrap();
        assert_eq!(fp.len, 11);
        assert!(fp.matches(&f).unwrap());
        std::fs::write(&path, b"other line\n").unwrap();
        assert!(!fp.matches(&File::open(&path).unwrap()).unwrap());
    }
}
