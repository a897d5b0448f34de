//! Wake-ups from the kernel (inotify) when a followed file or a directory that holds one
//! changes, so the watcher reads a line as soon as it is written instead of polling for it.
//!
//! Why: polling 100 files every 200 ms woke the daemon 34 times a second with nothing written
//! and kept a line from its alert for up to a poll. This is only a trigger: what changed is
//! still found by the watcher's own pass (stat, fingerprint, read to the end), so a missed,
//! merged or overflowed event (`IN_Q_OVERFLOW`) costs latency, never a line.
//!
//! Files are watched through their open descriptor (`/proc/self/fd/N`), so the watch stays on
//! the inode the watcher reads: a file renamed away by a rotation, or named through a
//! symlink, still wakes it. Directories are watched for names appearing, moving and going
//! (rotation, a new virtual host's log, the directory itself removed). A leaf: it knows
//! nothing of globs or rules; [`Changes::set`] is told what to watch.

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What a directory is watched for: names created, moved in or out, deleted; itself going.
const DIR_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);
/// What a file is watched for: written or truncated (`IN_MODIFY`), its metadata changed.
const FILE_MASK: AddWatchFlags = AddWatchFlags::IN_MODIFY.union(AddWatchFlags::IN_ATTRIB);

/// A file's identity: device and inode.
pub type FileId = (u64, u64);

/// A file to watch.
#[derive(Debug, Clone)]
pub struct FileTarget {
    /// Its identity.
    pub id: FileId,
    /// A path that names this very inode, such as `/proc/self/fd/N` of a descriptor open on it.
    pub via: PathBuf,
    /// The name it is known by, for errors.
    pub name: PathBuf,
}

/// One thing the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A name in a watched directory was created, moved or deleted; `dir` is set when it names
    /// a directory.
    Name {
        /// The directory joined with the name.
        path: PathBuf,
        /// True for a name created or moved in (something new may be there to follow).
        arrived: bool,
        /// True when the name is a directory.
        dir: bool,
    },
    /// A watched file was written, truncated or had its metadata changed.
    File,
    /// A watched directory was removed or moved: the set of files may have changed.
    DirGone,
    /// The kernel's queue overflowed and events were lost: everything must be looked at.
    Overflow,
}

/// Why something could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// No inotify instance could be made (`fs.inotify.max_user_instances`, or no inotify).
    #[error("cannot start inotify ({0}); raise fs.inotify.max_user_instances if it is reached")]
    Init(#[source] io::Error),
    /// The per-user watch limit is reached.
    #[error("the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}) watching {path}")]
    Limit {
        /// What could not be watched.
        path: String,
        /// The limit, as `/proc/sys/fs/inotify/max_user_watches` says.
        limit: String,
    },
    /// Any other failure to watch a path.
    #[error("cannot watch {path} with inotify: {source}")]
    Watch {
        /// What could not be watched.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What a watch descriptor stands for.
#[derive(Debug, Clone)]
enum Watched {
    Dir(PathBuf),
    File(FileId),
}

/// An inotify instance as tokio's readiness wants it (`AsRawFd`).
#[derive(Debug)]
struct Instance(Inotify);

impl AsRawFd for Instance {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify instance and what it watches.
#[derive(Debug)]
pub struct Changes {
    fd: AsyncFd<Instance>,
    by_wd: HashMap<WatchDescriptor, Watched>,
    dirs: BTreeMap<PathBuf, WatchDescriptor>,
    files: BTreeMap<FileId, WatchDescriptor>,
}

/// What [`Changes::set`] did.
#[derive(Debug, Default)]
pub struct SetOutcome {
    /// A directory watch was added (a file may have appeared there before it).
    pub new_dir: bool,
    /// A file watch was added (the file may have been written before it).
    pub new_file: bool,
    /// The first thing that could not be watched, when any could not.
    pub error: Option<ChangesError>,
}

impl Changes {
    /// A new inotify instance watching nothing; needs a tokio runtime with I/O enabled.
    pub fn new() -> Result<Self, ChangesError> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| ChangesError::Init(e.into()))?;
        // SAFETY: `Instance` owns the inotify descriptor and hands out that same descriptor for
        // as long as it lives, which is as long as the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(Instance(ino), Interest::READABLE) }
            .map_err(|e| ChangesError::Init(e.into()))?;
        Ok(Changes {
            fd,
            by_wd: HashMap::new(),
            dirs: BTreeMap::new(),
            files: BTreeMap::new(),
        })
    }

    /// Watches exactly `dirs` and `files`, dropping the watches no longer wanted. A directory
    /// that does not exist is skipped (its parent is the caller's to watch).
    pub fn set(&mut self, dirs: &BTreeSet<PathBuf>, files: &[FileTarget]) -> SetOutcome {
        let mut out = SetOutcome::default();
        let stale_dirs: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| !dirs.contains(*d))
            .cloned()
            .collect();
        for d in stale_dirs {
            if let Some(wd) = self.dirs.remove(&d) {
                self.forget(wd);
            }
        }
        let wanted: BTreeSet<FileId> = files.iter().map(|f| f.id).collect();
        let stale_files: Vec<FileId> = self
            .files
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in stale_files {
            if let Some(wd) = self.files.remove(&id) {
                self.forget(wd);
            }
        }
        for d in dirs {
            if self.dirs.contains_key(d) {
                continue;
            }
            match self.fd.get_ref().0.add_watch(d.as_path(), DIR_MASK) {
                Ok(wd) => {
                    self.dirs.insert(d.clone(), wd);
                    self.by_wd.insert(wd, Watched::Dir(d.clone()));
                    out.new_dir = true;
                }
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(e) => {
                    out.error.get_or_insert(failure(d, e));
                }
            }
        }
        for f in files {
            if self.files.contains_key(&f.id) {
                continue;
            }
            match self.fd.get_ref().0.add_watch(f.via.as_path(), FILE_MASK) {
                Ok(wd) => {
                    self.files.insert(f.id, wd);
                    self.by_wd.insert(wd, Watched::File(f.id));
                    out.new_file = true;
                }
                Err(e) => {
                    out.error.get_or_insert(failure(&f.name, e));
                }
            }
        }
        out
    }

    /// Removes a watch no longer wanted (the kernel may have dropped it already).
    fn forget(&mut self, wd: WatchDescriptor) {
        // Two paths naming one inode share a descriptor: keep it while the other is wanted.
        let other = self
            .dirs
            .iter()
            .find(|(_, w)| **w == wd)
            .map(|(d, _)| Watched::Dir(d.clone()))
            .or_else(|| {
                self.files
                    .iter()
                    .find(|(_, w)| **w == wd)
                    .map(|(id, _)| Watched::File(*id))
            });
        match other {
            Some(other) => {
                self.by_wd.insert(wd, other);
            }
            None => {
                self.by_wd.remove(&wd);
                let _ = self.fd.get_ref().0.rm_watch(wd);
            }
        }
    }

    /// Waits for the kernel to report something, and returns all it has queued.
    pub async fn next(&mut self) -> io::Result<Vec<Change>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                let mut all = fd.get_ref().0.read_events().map_err(io::Error::from)?;
                // Take what else is queued now, so one pass answers a burst.
                loop {
                    match fd.get_ref().0.read_events() {
                        Ok(more) => all.extend(more),
                        Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(all)
            });
            match read {
                Ok(Ok(events)) => {
                    let changes: Vec<Change> =
                        events.into_iter().filter_map(|e| self.change(e)).collect();
                    if !changes.is_empty() {
                        return Ok(changes);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    /// What one raw event means, updating the bookkeeping of watches the kernel dropped.
    fn change(&mut self, e: nix::sys::inotify::InotifyEvent) -> Option<Change> {
        if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return Some(Change::Overflow);
        }
        let watched = self.by_wd.get(&e.wd)?.clone();
        if e.mask.contains(AddWatchFlags::IN_IGNORED) {
            // The kernel removed the watch (file deleted, directory gone, file system away).
            self.by_wd.remove(&e.wd);
            return match watched {
                Watched::Dir(d) => {
                    self.dirs.remove(&d);
                    Some(Change::DirGone)
                }
                Watched::File(id) => {
                    self.files.remove(&id);
                    Some(Change::File)
                }
            };
        }
        match watched {
            Watched::File(_) => Some(Change::File),
            Watched::Dir(_)
                if e.mask
                    .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF) =>
            {
                Some(Change::DirGone)
            }
            Watched::Dir(d) => Some(Change::Name {
                path: d.join(e.name?),
                arrived: e
                    .mask
                    .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO),
                dir: e.mask.contains(AddWatchFlags::IN_ISDIR),
            }),
        }
    }

    /// How many watches are in place (directories, files).
    pub fn watching(&self) -> (usize, usize) {
        (self.dirs.len(), self.files.len())
    }
}

/// The error for a path that could not be watched; the watch limit is told apart.
fn failure(path: &Path, e: Errno) -> ChangesError {
    if e == Errno::ENOSPC {
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map_or_else(|_| "unknown".to_string(), |s| s.trim().to_string());
        ChangesError::Limit {
            path: path.display().to_string(),
            limit,
        }
    } else {
        ChangesError::Watch {
            path: path.display().to_string(),
            source: e.into(),
        }
    }
}

#[cfg(test)]
mod tests;
