//! Where the watcher is in each file, saved atomically to `state_dir/apache/<job>.json` so a
//! restart resumes exactly there: device, inode, offset and a fingerprint of the first bytes
//! (which tells a reused inode or a truncated file from the one that was being read).

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes at the start of a file that identify it.
pub const FINGERPRINT_LEN: usize = 256;

/// The first bytes of a file, hex-encoded SHA-256, with how many bytes were hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// Bytes hashed (less than [`FINGERPRINT_LEN`] while the file is shorter). A checkpoint
    /// with more is corrupt: the length is read back from a file, and is allocated.
    #[serde(deserialize_with = "at_most_fingerprint_len")]
    pub len: u64,
    /// Hex SHA-256 of those bytes.
    pub sha256: String,
}

/// Deserializes a fingerprint's length, refusing one above [`FINGERPRINT_LEN`].
fn at_most_fingerprint_len<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let len = u64::deserialize(d)?;
    if len > FINGERPRINT_LEN as u64 {
        return Err(serde::de::Error::custom(format!(
            "fingerprint length {len} is above {FINGERPRINT_LEN}"
        )));
    }
    Ok(len)
}

impl Fingerprint {
    /// Fingerprints the first `len` bytes of `file` (fewer if it is shorter), at most
    /// [`FINGERPRINT_LEN`].
    pub fn of(file: &File, len: u64) -> io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len.min(FINGERPRINT_LEN as u64) as usize];
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

/// The largest checkpoint read: some 40,000 files' marks; a larger file is set aside.
pub const MAX_CHECKPOINT: u64 = 16 << 20;

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
    /// cannot be read as a regular file of at most [`MAX_CHECKPOINT`] bytes (a directory, a
    /// FIFO, a socket, a device, a read error, a larger file) is
    /// [`CheckpointError::Unreadable`]; it is read with [`crate::bounded_read`], so a FIFO
    /// with no writer cannot hang the job nor `/dev/zero` fill the memory. A checkpoint that
    /// is not JSON, or holds a fingerprint longer than [`FINGERPRINT_LEN`], is
    /// [`CheckpointError::Corrupt`].
    pub fn load(path: &Path) -> Result<Option<Self>, CheckpointError> {
        let text = match crate::bounded_read::read(path, MAX_CHECKPOINT) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => {
                return Err(CheckpointError::Unreadable {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        };
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
    fn a_fingerprint_longer_than_fingerprint_len_makes_the_checkpoint_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let with_len = |len: u64| {
            format!(
                "{{\"version\":1,\"files\":[{{\"path\":\"/x\",\"dev\":1,\"ino\":2,\
                 \"offset\":0,\"fingerprint\":{{\"len\":{len},\"sha256\":\"00\"}}}}]}}"
            )
        };
        std::fs::write(&path, with_len(FINGERPRINT_LEN as u64)).unwrap();
        assert!(Checkpoint::load(&path).unwrap().is_some());
        // Once allocated whole by the first comparison: the daemon aborted.
        std::fs::write(&path, with_len(1_000_000_000_000_000)).unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Corrupt { .. })
                && err.to_string().contains("fingerprint length"),
            "{err}"
        );
        // And a fingerprint taken with a length above it hashes FINGERPRINT_LEN bytes at most.
        std::fs::write(&path, vec![b'x'; 2 * FINGERPRINT_LEN]).unwrap();
        let fp = Fingerprint::of(&File::open(&path).unwrap(), u64::MAX).unwrap();
        assert_eq!(fp.len, FINGERPRINT_LEN as u64);
    }

    #[test]
    fn a_checkpoint_above_the_cap_or_a_device_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, vec![b' '; MAX_CHECKPOINT as usize + 1]).unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Unreadable { .. }) && err.to_string().contains("16 MiB"),
            "{err}"
        );
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = Checkpoint::load(&zero).unwrap_err();
        assert!(err.to_string().contains("a character device"), "{err}");
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
