//! Reading a whole file that someone else put there (an `env_file`, a `jobs.d` drop-in, a
//! state record, a checkpoint) without letting it block the daemon or fill its memory.
//!
//! The contract of [`read`]: the file is opened with `O_NONBLOCK`, so a FIFO without a writer
//! returns at once instead of waiting for one; it must then be a regular file (checked with
//! `fstat` on the opened descriptor, so a symlink to a regular file is read and a symlink to
//! `/dev/zero` is not); and at most `cap + 1` bytes are read, so a file larger than `cap` is
//! refused without being read whole. Each way of failing is its own [`ReadError`] variant. The
//! error does not hold the path: callers name the file in their own message.
//!
//! `O_NONBLOCK` cannot help against an open that blocks in the kernel (a stale NFS mount):
//! callers on async threads still run [`read`] on a blocking thread.

use std::fs::FileType;
use std::io::{self, Read};
use std::path::Path;

/// Why a file could not be read with [`read`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It could not be opened (it does not exist, permission denied, ...).
    #[error("cannot open it: {0}")]
    Open(#[source] io::Error),
    /// It is not a regular file.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// It holds more than the cap.
    #[error("it is larger than {}", size(*.0))]
    TooLarge(u64),
    /// Reading it failed.
    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),
}

impl ReadError {
    /// True when there is no file at the path.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Open(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// The kind of I/O error this is, for callers that report an `io::Error`: the open's or
    /// the read's own kind, `InvalidData` for a file that is not regular or too large.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            ReadError::Open(e) | ReadError::Read(e) => e.kind(),
            ReadError::NotRegular(_) | ReadError::TooLarge(_) => io::ErrorKind::InvalidData,
        }
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// Reads the regular file at `path` whole, refusing one larger than `cap` bytes (see the
/// module doc). Blocking: call it off the async threads.
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(ReadError::Open)?;
    let kind = file.metadata().map_err(ReadError::Read)?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(describe(kind)));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Read)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// What a file type that is not a regular file is, for messages: "a directory", "a FIFO", ...
pub fn describe(kind: FileType) -> &'static str {
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

/// `bytes` for a message: "1 MiB", "16 KiB", "100 bytes".
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_without_a_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Without O_NONBLOCK the open would wait for a writer for good, hanging this test.
        let err = read(&fifo, 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("a FIFO")), "{err}");
        assert_eq!(err.to_string(), "it is a FIFO, not a regular file");
    }

    #[test]
    fn a_device_is_refused_even_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read(&link, 1024).unwrap_err();
        assert!(
            matches!(err, ReadError::NotRegular("a character device")),
            "{err}"
        );
        let err = read(dir.path(), 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("a directory")), "{err}");
    }

    #[test]
    fn a_file_of_cap_bytes_is_read_and_one_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 1024]).unwrap();
        assert_eq!(read(&path, 1024).unwrap().len(), 1024);
        std::fs::write(&path, vec![b'x'; 1025]).unwrap();
        let err = read(&path, 1024).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge(1024)), "{err}");
        assert_eq!(err.to_string(), "it is larger than 1 KiB");
        assert_eq!(
            ReadError::TooLarge(1 << 20).to_string(),
            "it is larger than 1 MiB"
        );
        assert_eq!(
            ReadError::TooLarge(100).to_string(),
            "it is larger than 100 bytes"
        );
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"A=1\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read(&link, 1024).unwrap(), b"A=1\n");
    }

    #[test]
    fn a_missing_file_is_not_found_and_keeps_its_kind_as_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(&dir.path().join("none"), 1024).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        let io: io::Error = ReadError::TooLarge(1).into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    }
}
