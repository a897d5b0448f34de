//! Safe install of built files into an output directory: under the directory's lock, each
//! changed file is copied to a temporary name beside its target, fsynced, checked by the
//! caller, and only when every file passed are they renamed into place and the directory
//! fsynced. Any failure leaves the installed files exactly as they were.

use super::lock::{DirLock, LockError};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Marks temporary files of an install; leftovers of a crashed install are removed next time.
const TMP_MARKER: &str = ".opsd-tmp.";

/// How long an install waits for another holder of the output directory's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// A built file waiting to be installed under `name` in the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The file name in the output directory, e.g. `GeoIP.dat` (no `/`).
    pub name: String,
    /// Where the builder wrote it.
    pub source: PathBuf,
}

/// A file that the install put in place because it differed from the installed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// The file name in the output directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// The size of the file it replaced, `None` when there was none.
    pub previous_size: Option<u64>,
}

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Files written because they were new or different.
    pub changed: Vec<InstalledFile>,
    /// Files left alone because the installed copy was byte-for-byte the same.
    pub unchanged: Vec<String>,
}

/// Why an install failed; the output directory is as it was before.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The output directory does not exist (opsd never creates it).
    #[error(
        "output directory {} does not exist; create it first (opsd does not create it, so a \
         mistyped path cannot scatter files)",
        .0.display()
    )]
    MissingDir(PathBuf),
    /// The output directory's path names something else than a directory.
    #[error("output directory {} is not a directory", .0.display())]
    NotADir(PathBuf),
    /// The output directory's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A file name is not a plain name in the directory.
    #[error("refusing to install {0:?}: not a plain file name")]
    BadName(String),
    /// Reading, writing or renaming a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is printed once).
        error: io::Error,
    },
    /// The output directory exists but this process cannot create files in it.
    #[error(
        "output directory {} is not writable: {error} (checked before building, so nothing \
         was built or installed)",
        path.display()
    )]
    NotWritable {
        /// The output directory.
        path: PathBuf,
        /// Why a test file could not be created (printed once, not chained).
        error: io::Error,
    },
    /// The caller's check of a written file failed.
    #[error("{name}: check of the new file failed, nothing installed: {message}")]
    Verify {
        /// The file name.
        name: String,
        /// What the check said.
        message: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> InstallError + '_ {
    move |error| InstallError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Checks that `dir` exists and is a directory (following symbolic links).
pub fn check_dir(dir: &Path) -> Result<(), InstallError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(InstallError::NotADir(dir.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(InstallError::MissingDir(dir.to_path_buf()))
        }
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// [`check_dir`], then creates and removes a hidden test file in `dir`, so that a directory
/// this process cannot write (permissions, a read-only mount, an immutable flag) is found
/// before a build spends minutes on files it could not install.
pub fn check_output_dir(dir: &Path) -> Result<(), InstallError> {
    check_dir(dir)?;
    // Named like an install's temporary file, so a crash between the two calls leaves
    // nothing the next install does not remove.
    let probe = dir.join(format!(
        ".probe{TMP_MARKER}{}.{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|error| InstallError::NotWritable {
            path: dir.to_path_buf(),
            error,
        })?;
    fs::remove_file(&probe).map_err(io_at(&probe))
}

/// Installs `files` into `dir` (which must exist, see [`check_dir`]). Takes the directory's lock (waiting up to
/// `lock_wait`), skips files identical to the installed ones, writes the others to temporary
/// names in `dir`, fsyncs them, runs `verify(file, temp_path)` on each, then renames them all
/// into place and fsyncs `dir`. Blocking: call from `spawn_blocking` in async code.
pub fn install<V>(
    dir: &Path,
    files: &[Staged],
    lock_wait: Duration,
    mut verify: V,
) -> Result<InstallReport, InstallError>
where
    V: FnMut(&Staged, &Path) -> Result<(), String>,
{
    if let Some(bad) = files.iter().find(|f| !is_plain_name(&f.name)) {
        return Err(InstallError::BadName(bad.name.clone()));
    }
    check_dir(dir)?;
    let _lock = DirLock::acquire(dir, lock_wait)?;
    remove_leftovers(dir);

    let mut report = InstallReport::default();
    let mut pending = TempFiles::default();
    for file in files {
        let target = dir.join(&file.name);
        let previous_size = match fs::metadata(&target) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(&target)(e)),
        };
        if previous_size.is_some() && same_contents(&file.source, &target)? {
            report.unchanged.push(file.name.clone());
            continue;
        }
        let tmp = dir.join(format!(
            ".{}{TMP_MARKER}{}.{:08x}",
            file.name,
            std::process::id(),
            fastrand::u32(..)
        ));
        pending.0.push(tmp.clone());
        let (size, sha256) = copy_synced(&file.source, &tmp)?;
        verify(file, &tmp).map_err(|message| InstallError::Verify {
            name: file.name.clone(),
            message,
        })?;
        report.changed.push(InstalledFile {
            name: file.name.clone(),
            size,
            sha256,
            previous_size,
        });
    }

    for (tmp, installed) in pending.0.iter().zip(&report.changed) {
        let target = dir.join(&installed.name);
        fs::rename(tmp, &target).map_err(io_at(&target))?;
    }
    pending.0.clear();
    if !report.changed.is_empty() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    Ok(report)
}

/// Temporary files not yet renamed; removed when dropped (on any early return).
#[derive(Default)]
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// A name that stays in the directory: no separator, not `.`/`..`, not hidden.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
}

/// Removes temporary files a crashed install left behind (the caller holds the lock).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TMP_MARKER) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Copies `from` to a new file `to` (mode 0644), fsyncs it, and returns its size and SHA-256.
fn copy_synced(from: &Path, to: &Path) -> Result<(u64, String), InstallError> {
    let mut src = File::open(from).map_err(io_at(from))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(to)
        .map_err(io_at(to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io_at(from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(io_at(to))?;
        size += n as u64;
    }
    dst.sync_all().map_err(io_at(to))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// True when the two files hold the same bytes.
fn same_contents(a: &Path, b: &Path) -> Result<bool, InstallError> {
    let ma = fs::metadata(a).map_err(io_at(a))?;
    let mb = fs::metadata(b).map_err(io_at(b))?;
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut ra = BufReader::with_capacity(256 * 1024, File::open(a).map_err(io_at(a))?);
    let mut rb = BufReader::with_capacity(256 * 1024, File::open(b).map_err(io_at(b))?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut ra, &mut ba).map_err(io_at(a))?;
        let m = read_full(&mut rb, &mut bb).map_err(io_at(b))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the reader ends; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
