//! Following one log file: read what was appended since last time, hand on complete lines only
//! (a partial last line waits for its newline), cut overlong lines, and notice truncation
//! (copytruncate), recovering the unread tail from the copy when one is found next to the file.

use super::checkpoint::{FileMark, Fingerprint, FINGERPRINT_LEN};
use super::line::MAX_LINE;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Bytes read from a file at a time.
pub const READ_SIZE: usize = 256 * 1024;

/// Where reading a newly opened file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At its current end: only lines appended from now on.
    End,
    /// At its first byte.
    Beginning,
    /// At this offset, from a checkpoint.
    At(u64),
}

/// Where a chunk of lines handed on by [`FollowedFile`] starts: the file's device and inode and
/// the offset of the chunk's first byte, from which a restart reads its first line again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAt {
    /// The file's device and inode.
    pub id: (u64, u64),
    /// The offset of the first byte.
    pub offset: u64,
}

/// What complete lines are handed to: the path they name, where they start, the lines (each
/// ending in `\n`).
pub type OnLines<'a> = dyn FnMut(&Path, LineAt, &[u8]) + 'a;

/// The identity of a file: device and inode.
pub fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// The copy a copytruncate rotation of `path` left beside it: a file whose name starts with
/// the log's, not compressed, other than the file `except` (device, inode), at least `min_len`
/// bytes long and starting with the bytes `fingerprint` was taken of; the newest if several.
/// The live path (a truncation noticed while following) and the start path (a truncation while
/// opsd was stopped) both look for the unread rest of a file this way.
pub fn find_copy(
    path: &Path,
    fingerprint: &Fingerprint,
    min_len: u64,
    except: (u64, u64),
) -> Option<PathBuf> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    let mut best: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        if fname == name || !fname.starts_with(name) || compressed(fname) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else { continue };
        if !meta.is_file() || meta.len() < min_len || identity(&meta) == except {
            continue;
        }
        if !fingerprint.matches(&file).unwrap_or(false) {
            continue;
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
            best = Some((mtime, path));
        }
    }
    best.map(|(_, p)| p)
}

/// True for a file name of a compressed rotated log, which is never read.
pub fn compressed(name: &str) -> bool {
    [".gz", ".bz2", ".xz", ".zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// One open file being followed.
#[derive(Debug)]
pub struct FollowedFile {
    /// The path it was opened at (it may since have been renamed).
    pub path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read so far, including `partial`.
    offset: u64,
    /// The size at the last check, to skip the fingerprint check when nothing changed.
    last_size: u64,
    fingerprint: Fingerprint,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
    /// True inside an overlong line whose first [`MAX_LINE`] bytes were already handed on.
    skipping: bool,
}

impl FollowedFile {
    /// Opens `path` for following from `start`; `At` beyond the end starts at the end.
    pub fn open(path: &Path, start: Start) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let size = meta.len();
        let offset = match start {
            Start::End => size,
            Start::Beginning => 0,
            Start::At(o) => o.min(size),
        };
        let fingerprint = Fingerprint::of(&file, FINGERPRINT_LEN as u64)?;
        Ok(FollowedFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            last_size: size,
            fingerprint,
            partial: Vec::new(),
            skipping: false,
            file,
        })
    }

    /// The file's device and inode.
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// A path naming the open file itself (`/proc/self/fd/N`), wherever it was moved since.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The first bytes of the file as last checked.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Bytes consumed up to the last complete line: where a restart resumes.
    pub fn line_offset(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// The position to save in a checkpoint.
    pub fn mark(&self, retired: bool) -> FileMark {
        FileMark {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
            offset: self.line_offset(),
            fingerprint: self.fingerprint.clone(),
            retired,
        }
    }

    /// The open file's current metadata (it may differ from what the path now names).
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// True when the file was truncated or rewritten since it was read (size below the read
    /// offset, or different first bytes).
    pub fn truncated(&mut self) -> io::Result<bool> {
        let size = self.file.metadata()?.len();
        if size < self.offset {
            return Ok(true);
        }
        if size == self.last_size {
            return Ok(false);
        }
        self.last_size = size;
        Ok(!self.fingerprint.matches(&self.file)?)
    }

    /// Starts over at the beginning of the (truncated) file, after handing on the lines that
    /// were appended before the truncation when the copy is found beside the file. Returns
    /// the copy read, with its path: the file as opened, so its caller knows which file it
    /// was even if the copy is renamed afterwards.
    pub fn restart_after_truncation(
        &mut self,
        buf: &mut Vec<u8>,
        on_lines: &mut OnLines<'_>,
    ) -> io::Result<Option<(PathBuf, FollowedFile)>> {
        let copy = find_copy(
            &self.path,
            &self.fingerprint,
            self.line_offset(),
            self.identity(),
        );
        let copy = match copy {
            Some(copy_path) => {
                let mut from_copy = FollowedFile::open(&copy_path, Start::At(self.line_offset()))?;
                from_copy.path = self.path.clone();
                from_copy.read_new(buf, on_lines)?;
                from_copy.flush_partial(on_lines);
                Some((copy_path, from_copy))
            }
            None => None,
        };
        self.offset = 0;
        self.last_size = 0;
        self.partial.clear();
        self.skipping = false;
        self.fingerprint = Fingerprint::of(&self.file, FINGERPRINT_LEN as u64)?;
        Ok(copy)
    }

    /// Reads everything appended since the last call and hands complete lines on, in chunks
    /// of whole lines (each ending in `\n`). Returns the bytes read.
    pub fn read_new(&mut self, buf: &mut Vec<u8>, on_lines: &mut OnLines<'_>) -> io::Result<u64> {
        buf.resize(READ_SIZE, 0);
        let mut total = 0u64;
        loop {
            let n = match self.file.read_at(buf, self.offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let at = self.offset;
            self.offset += n as u64;
            total += n as u64;
            self.take(&buf[..n], at, on_lines);
        }
        if total > 0 {
            self.last_size = self.last_size.max(self.offset);
            if self.fingerprint.len < FINGERPRINT_LEN as u64 {
                self.fingerprint = Fingerprint::of(&self.file, FINGERPRINT_LEN as u64)?;
            }
        }
        Ok(total)
    }

    /// Hands on a partial last line as if it were complete (the file will not grow again).
    pub fn flush_partial(&mut self, on_lines: &mut OnLines<'_>) {
        if !self.partial.is_empty() {
            let at = self.at(self.line_offset());
            self.partial.push(b'\n');
            on_lines(&self.path, at, &self.partial);
            self.partial.clear();
        }
    }

    /// Where `offset` of this file is.
    fn at(&self, offset: u64) -> LineAt {
        LineAt {
            id: self.identity(),
            offset,
        }
    }

    /// Splits freshly read bytes (read at offset `data_at`) into complete lines, keeping the
    /// unfinished tail.
    fn take(&mut self, mut data: &[u8], mut data_at: u64, on_lines: &mut OnLines<'_>) {
        if self.skipping {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    data = &data[i + 1..];
                    data_at += i as u64 + 1;
                    self.skipping = false;
                }
                None => return,
            }
        }
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let at = self.at(data_at - self.partial.len() as u64);
                    let room = MAX_LINE.saturating_sub(self.partial.len());
                    if i > room {
                        // The line ends here but is too long: keep its first MAX_LINE bytes.
                        self.partial.extend_from_slice(&data[..room]);
                        self.partial.push(b'\n');
                    } else {
                        self.partial.extend_from_slice(&data[..=i]);
                    }
                    on_lines(&self.path, at, &self.partial);
                    self.partial.clear();
                    data = &data[i + 1..];
                    data_at += i as u64 + 1;
                }
                None => {
                    self.partial.extend_from_slice(data);
                    self.cut_overlong(on_lines);
                    return;
                }
            }
        }
        let rest = match memchr::memrchr(b'\n', data) {
            Some(i) => {
                on_lines(&self.path, self.at(data_at), &data[..=i]);
                &data[i + 1..]
            }
            None => data,
        };
        self.partial.extend_from_slice(rest);
        self.cut_overlong(on_lines);
    }

    /// Hands on the first [`MAX_LINE`] bytes of an overlong unfinished line and skips the rest.
    fn cut_overlong(&mut self, on_lines: &mut OnLines<'_>) {
        if self.partial.len() > MAX_LINE {
            let at = self.at(self.line_offset());
            self.partial.truncate(MAX_LINE);
            self.partial.push(b'\n');
            on_lines(&self.path, at, &self.partial);
            self.partial.clear();
            self.skipping = true;
        }
    }
}

#[cfg(test)]
mod tests;
