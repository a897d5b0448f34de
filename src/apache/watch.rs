//! The watcher: follows every file the configured globs name (re-scanned periodically), keeps
//! reading rotated-away files to their end, matches lines against the rules, and saves a
//! checkpoint every few seconds. One [`Watcher::poll`] is one pass; [`watch`] loops it.
//!
//! A periodic stat of each path is the source of truth for rotation: a path that now names
//! another inode (rename + create) or nothing (deleted, or renamed without create) retires the
//! open file, which is still read until it has been quiet for [`RETIRE_QUIET`] (Apache writes
//! to the old inode until its graceful restart). A file that shrank or whose first bytes changed
//! (copytruncate) is read again from the start.

use super::checkpoint::{Checkpoint, CheckpointError, FileMark, Fingerprint};
use super::follow::{identity, FollowedFile, Start};
use super::rules::{LogEvent, Rule, RuleError, RuleSet};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a rotated-away file must stay unchanged before it is closed.
pub const RETIRE_QUIET: Duration = Duration::from_secs(5);
/// Finished files remembered so a glob that also names rotated files does not read them again.
const FINISHED_MEMORY: usize = 1024;

/// What to watch and how.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The job's name, for log fields.
    pub job: String,
    /// Glob patterns of the files to follow.
    pub paths: Vec<String>,
    /// Read files seen for the first time from their beginning instead of their end.
    pub from_beginning: bool,
    /// The rules (built-in and custom) to match.
    pub rules: Vec<Rule>,
    /// Time between two passes.
    pub poll_interval: Duration,
    /// Time between two glob re-scans.
    pub rescan_interval: Duration,
    /// Time between two checkpoint writes (when something changed).
    pub checkpoint_interval: Duration,
}

impl WatchConfig {
    /// A configuration with the default intervals (poll 200 ms, rescan 1 s, checkpoint 2 s).
    pub fn new(job: impl Into<String>, paths: Vec<String>, rules: Vec<Rule>) -> Self {
        WatchConfig {
            job: job.into(),
            paths,
            from_beginning: false,
            rules,
            poll_interval: Duration::from_millis(200),
            rescan_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(2),
        }
    }
}

/// Errors that stop the watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A rule did not compile.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The blocking reader task failed.
    #[error("the log reader task failed: {0}")]
    Task(String),
    /// A path pattern is not a valid glob.
    #[error("invalid path pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: glob::PatternError,
    },
}

/// A rotated-away file still being read.
#[derive(Debug)]
struct Retired {
    file: FollowedFile,
    quiet_since: Instant,
}

/// Follows the configured files and turns their lines into events.
#[derive(Debug)]
pub struct Watcher {
    cfg: WatchConfig,
    patterns: Vec<glob::Pattern>,
    rules: RuleSet,
    active: BTreeMap<PathBuf, FollowedFile>,
    retired: Vec<Retired>,
    finished: VecDeque<(u64, u64, Fingerprint)>,
    /// Paths that could not be opened, logged once until they open.
    failing: BTreeSet<PathBuf>,
    checkpoint_path: PathBuf,
    buf: Vec<u8>,
    last_scan: Option<Instant>,
    last_save: Instant,
    saved: Option<Checkpoint>,
}

impl Watcher {
    /// Builds a watcher, resuming from the checkpoint at `checkpoint_path` when there is one.
    pub fn new(cfg: WatchConfig, checkpoint_path: PathBuf) -> Result<Self, WatchError> {
        let patterns = cfg
            .paths
            .iter()
            .map(|p| {
                glob::Pattern::new(p).map_err(|source| WatchError::Pattern {
                    pattern: p.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rules = RuleSet::new(cfg.rules.clone())?;
        let saved = Checkpoint::load(&checkpoint_path)?;
        let mut w = Watcher {
            cfg,
            patterns,
            rules,
            active: BTreeMap::new(),
            retired: Vec::new(),
            finished: VecDeque::new(),
            failing: BTreeSet::new(),
            checkpoint_path,
            buf: Vec::new(),
            last_scan: None,
            last_save: Instant::now(),
            saved: None,
        };
        if let Some(cp) = saved {
            for mark in &cp.files {
                w.resume(mark);
            }
        }
        Ok(w)
    }

    /// Reopens one file from the checkpoint, wherever it now is.
    fn resume(&mut self, mark: &FileMark) {
        let job = &self.cfg.job;
        let at_path = std::fs::metadata(&mark.path)
            .ok()
            .map(|m| identity(&m) == (mark.dev, mark.ino));
        let found = if at_path == Some(true) {
            Some(mark.path.clone())
        } else {
            find_by_inode(&mark.path, mark.dev, mark.ino)
        };
        let resumed = found.and_then(|p| {
            let f = FollowedFile::open(&p, Start::At(mark.offset)).ok()?;
            let file = std::fs::File::open(&p).ok()?;
            let same =
                f.line_offset() == mark.offset && mark.fingerprint.matches(&file).unwrap_or(false);
            same.then_some(f)
        });
        match resumed {
            Some(mut f) => {
                info!(job = %job, file = %mark.path.display(), offset = mark.offset, "resuming from checkpoint");
                f.path = mark.path.clone();
                if mark.retired || at_path != Some(true) {
                    self.retired.push(Retired {
                        file: f,
                        quiet_since: Instant::now(),
                    });
                } else {
                    self.active.insert(mark.path.clone(), f);
                }
            }
            None => warn!(
                job = %job,
                file = %mark.path.display(),
                "the file in the checkpoint is gone or was rewritten; lines written to it after the checkpoint are lost"
            ),
        }
        if !mark.retired && !self.active.contains_key(&mark.path) && mark.path.exists() {
            // Rotated or rewritten while we were away: the file now at the path is new.
            if let Some(f) = open_logged(&mut self.failing, job, &mark.path, Start::Beginning) {
                self.active.insert(mark.path.clone(), f);
            }
        }
    }

    /// The rules in use.
    pub fn rules(&self) -> &[Rule] {
        self.rules.rules()
    }

    /// The paths currently followed (not counting rotated-away files still being read).
    pub fn followed(&self) -> impl Iterator<Item = &Path> {
        self.active.keys().map(PathBuf::as_path)
    }

    /// One pass: re-scan the globs when due, read every file, detect rotation, match lines.
    /// Returns the events the new lines caused. Save the checkpoint only once they are handed
    /// on, so a crash repeats events rather than losing them.
    pub fn poll(&mut self) -> Result<Vec<LogEvent>, WatchError> {
        let mut events = Vec::new();
        let now = Instant::now();
        if self
            .last_scan
            .is_none_or(|t| now.duration_since(t) >= self.cfg.rescan_interval)
        {
            let first = self.last_scan.is_none();
            self.rescan(first);
            self.last_scan = Some(now);
        }
        let rules = &mut self.rules;
        let mut on_lines = |path: &Path, chunk: &[u8]| rules.scan(chunk, path, &mut events);
        let job = &self.cfg.job;

        // Rotated-away files first: their lines are older than those of the new files.
        let mut i = 0;
        while i < self.retired.len() {
            let r = &mut self.retired[i];
            match r.file.read_new(&mut self.buf, &mut on_lines) {
                Ok(0) => {}
                Ok(_) => r.quiet_since = now,
                Err(e) => {
                    warn!(job = %job, file = %r.file.path.display(), error = %e, "cannot read rotated file")
                }
            }
            if now.duration_since(r.quiet_since) >= RETIRE_QUIET {
                let mut r = self.retired.swap_remove(i);
                r.file.flush_partial(&mut on_lines);
                info!(job = %job, file = %r.file.path.display(), "finished the rotated file");
                let (dev, ino) = r.file.identity();
                if self.finished.len() >= FINISHED_MEMORY {
                    self.finished.pop_front();
                }
                self.finished
                    .push_back((dev, ino, r.file.fingerprint().clone()));
            } else {
                i += 1;
            }
        }

        let paths: Vec<PathBuf> = self.active.keys().cloned().collect();
        for path in paths {
            let Some(f) = self.active.get_mut(&path) else {
                continue;
            };
            match f.truncated() {
                Ok(true) => match f.restart_after_truncation(&mut self.buf, &mut on_lines) {
                    Ok(Some(copy)) => warn!(
                        job = %job,
                        file = %path.display(),
                        copy = %copy.display(),
                        "file was truncated (copytruncate); reading it again from the start"
                    ),
                    Ok(None) => warn!(
                        job = %job,
                        file = %path.display(),
                        "file was truncated (copytruncate); reading it again from the start"
                    ),
                    Err(e) => {
                        warn!(job = %job, file = %path.display(), error = %e, "cannot restart truncated file")
                    }
                },
                Ok(false) => {}
                Err(e) => {
                    warn!(job = %job, file = %path.display(), error = %e, "cannot check file")
                }
            }
            if let Err(e) = f.read_new(&mut self.buf, &mut on_lines) {
                warn!(job = %job, file = %path.display(), error = %e, "cannot read file");
            }
            let now_at_path = std::fs::metadata(&path).ok().map(|m| identity(&m));
            if now_at_path == Some(f.identity()) {
                continue;
            }
            // Rotated: keep reading the old inode until it is quiet, follow the new one.
            let old = self.active.remove(&path);
            if let Some(old) = old {
                info!(
                    job = %job,
                    file = %path.display(),
                    replaced = now_at_path.is_some(),
                    "file rotated; reading the old one to its end"
                );
                self.retired.push(Retired {
                    file: old,
                    quiet_since: now,
                });
            }
            if now_at_path.is_some() {
                if let Some(mut f) = open_logged(&mut self.failing, job, &path, Start::Beginning) {
                    if let Err(e) = f.read_new(&mut self.buf, &mut on_lines) {
                        warn!(job = %job, file = %path.display(), error = %e, "cannot read file");
                    }
                    self.active.insert(path, f);
                }
            }
        }
        Ok(events)
    }

    /// True when the checkpoint is due to be saved again.
    pub fn save_due(&self) -> bool {
        self.last_save.elapsed() >= self.cfg.checkpoint_interval
    }

    /// Saves the checkpoint now if anything moved since the last save.
    pub fn save(&mut self) -> Result<(), WatchError> {
        self.last_save = Instant::now();
        let cp = self.checkpoint();
        if self.saved.as_ref() != Some(&cp) {
            cp.save(&self.checkpoint_path)?;
            self.saved = Some(cp);
        }
        Ok(())
    }

    /// The current positions.
    pub fn checkpoint(&self) -> Checkpoint {
        let files = self
            .active
            .values()
            .map(|f| f.mark(false))
            .chain(self.retired.iter().map(|r| r.file.mark(true)))
            .collect();
        Checkpoint {
            version: Checkpoint::VERSION,
            files,
        }
    }

    /// Matches the globs again and starts following new files.
    fn rescan(&mut self, first: bool) {
        let mut seen = BTreeSet::new();
        for pattern in &self.patterns {
            let Ok(paths) = glob::glob(pattern.as_str()) else {
                continue;
            };
            for path in paths.flatten() {
                if path.is_file() {
                    seen.insert(path);
                }
            }
        }
        for path in seen {
            if self.active.contains_key(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = identity(&meta);
            let tracked = self
                .active
                .values()
                .chain(self.retired.iter().map(|r| &r.file))
                .any(|f| f.identity() == id);
            let done = self.finished.iter().any(|(dev, ino, fp)| {
                (*dev, *ino) == id
                    && std::fs::File::open(&path)
                        .and_then(|f| fp.matches(&f))
                        .unwrap_or(false)
            });
            if tracked || done {
                continue;
            }
            // Files there at start begin at their end; files that appear later are new: all of
            // them is unread.
            let start = if first && !self.cfg.from_beginning {
                Start::End
            } else {
                Start::Beginning
            };
            if let Some(f) = open_logged(&mut self.failing, &self.cfg.job, &path, start) {
                info!(job = %self.cfg.job, file = %path.display(), from = ?start, "following");
                self.active.insert(path, f);
            }
        }
    }
}

/// Opens `path` for following, logging a failure once (until it opens again).
fn open_logged(
    failing: &mut BTreeSet<PathBuf>,
    job: &str,
    path: &Path,
    start: Start,
) -> Option<FollowedFile> {
    match FollowedFile::open(path, start) {
        Ok(f) => {
            failing.remove(path);
            Some(f)
        }
        Err(e) => {
            if failing.insert(path.to_path_buf()) {
                warn!(job = %job, file = %path.display(), error = %e, "cannot open log file");
            } else {
                debug!(job = %job, file = %path.display(), error = %e, "still cannot open log file");
            }
            None
        }
    }
}

/// Looks in the directory of `path` for the file with this device and inode (a rotated file).
fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = e.metadata().ok()?;
        (m.dev() == dev && m.ino() == ino && m.is_file()).then(|| e.path())
    })
}

/// Runs `watcher` until `cancel` fires, sending every event to `events`, and saving the
/// checkpoint every few seconds (after the events of the lines it covers were sent) and at
/// the end. File reading runs on the blocking pool, one pass per poll interval.
pub async fn watch(
    mut watcher: Watcher,
    cancel: CancellationToken,
    events: tokio::sync::mpsc::Sender<LogEvent>,
) -> Result<(), WatchError> {
    let interval = watcher.cfg.poll_interval;
    loop {
        let (w, result) = blocking(move || {
            let r = watcher.poll();
            (watcher, r)
        })
        .await?;
        watcher = w;
        for ev in result? {
            if events.send(ev).await.is_err() {
                // Nobody listens any more: stop.
                cancel.cancel();
                break;
            }
        }
        if watcher.save_due() {
            let (w, result) = blocking(move || {
                let r = watcher.save();
                (watcher, r)
            })
            .await?;
            watcher = w;
            result?;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    blocking(move || watcher.save()).await?
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WatchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WatchError::Task(e.to_string()))
}
