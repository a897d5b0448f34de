//! The watcher: follows every file the configured globs name (re-scanned periodically), keeps
//! reading rotated-away files to their end, matches lines against the rules, and saves a
//! checkpoint. One [`Watcher::poll`] is one pass; [`watch`] runs a pass whenever the kernel
//! says a followed file or its directory changed ([`changes`], inotify), and at least every
//! [`SAFETY_POLL`] for what inotify cannot see (files written over NFS by another host, a
//! rotation racing the watches being set up, lost events). While the watch is idle those safety
//! passes run on a thread of the watch's own (not tokio's shared blocking pool) that keeps the
//! watcher until one finds something or the kernel reports a change that concerns it
//! (`idle_wait`), so an idle watch wakes no runtime worker and holds no pool thread, and
//! changes beside the followed files never hold a safety pass off.
//!
//! Reading never waits on delivery: [`watch`] hands events on without waiting, and when the
//! consumer is behind it drops *events* (counted and logged), never lines. Passes are at least
//! [`PASS_GAP`] apart, so a burst of writes is read in a few large reads rather than one per
//! write. The checkpoint never runs ahead of the consumer ([`acks`]): a file's saved offset is
//! the start of the line of its oldest event the consumer has not finished with (logged and
//! queued for the sinks), so a `kill -9` loses no event handed on; what a restart reads again
//! is reported again (at least once). It is saved as soon as the consumer has finished with a
//! pass's events and at least every second while lines flow, on a task of its own so that no
//! pass waits for its fsyncs; a failed save is logged and the watch goes on.
//!
//! When inotify cannot be used (no instance left, `fs.inotify.max_user_watches` reached, a
//! file it refuses), that is logged once at warn and passes run every `poll_interval` as well,
//! as before inotify: slower to alert, losing nothing.
//!
//! A stat of each path at every pass is the source of truth for rotation: a path that now names
//! another inode (rename + create) or nothing (deleted, or renamed without create) retires the
//! open file, which is still read until it has been quiet for [`RETIRE_QUIET`] (Apache writes
//! to the old inode until its graceful restart). A file that shrank or whose first bytes changed
//! (copytruncate) is read again from the start.

use super::checkpoint::{Checkpoint, CheckpointError, FileMark, Fingerprint};
use super::follow::{compressed, find_copy, identity, FollowedFile, LineAt, Start};
use super::rules::{LogEvent, Rule, RuleError, RuleSet};
use acks::{AckReader, InFlight, Position};
use changes::{Change, Changes, FileTarget};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub mod acks;
pub mod changes;

/// How long a rotated-away file must stay unchanged before it is closed.
pub const RETIRE_QUIET: Duration = Duration::from_secs(5);
/// The longest time between two passes while inotify watches everything: the bound on how late
/// a change inotify cannot see (NFS, a missed rotation) is noticed.
pub const SAFETY_POLL: Duration = Duration::from_secs(5);
/// The shortest time between the starts of two passes: a burst of writes wakes the watcher
/// once per gap, not once per write.
pub const PASS_GAP: Duration = Duration::from_millis(5);
/// Finished files remembered so a glob that also names rotated files does not read them again.
const FINISHED_MEMORY: usize = 1024;
/// How far a file's modification time may lag the clock (the kernel stamps files with a coarse
/// clock), when telling files written since the last pass from older ones.
const MTIME_SLACK: Duration = Duration::from_millis(100);
/// The shortest time between two log lines about dropped events or failed checkpoint saves.
const REPORT_EVERY: Duration = Duration::from_secs(10);

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
    /// Time between two passes when inotify cannot watch every file (polling).
    pub poll_interval: Duration,
    /// Time between two glob re-scans.
    pub rescan_interval: Duration,
    /// Longest time between two checkpoint writes while lines flow (a pass that produced
    /// events saves at once).
    pub checkpoint_interval: Duration,
}

impl WatchConfig {
    /// A configuration with the default intervals (poll 200 ms, rescan 1 s, checkpoint 1 s).
    pub fn new(job: impl Into<String>, paths: Vec<String>, rules: Vec<Rule>) -> Self {
        WatchConfig {
            job: job.into(),
            paths,
            from_beginning: false,
            rules,
            poll_interval: Duration::from_millis(200),
            rescan_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// The patterns of a watcher and the paths it follows, copied out of it: an idle watch tells
/// with it which changes concern it while its watcher is away running safety passes.
#[derive(Debug, Clone)]
pub struct Interest {
    patterns: Vec<glob::Pattern>,
    /// The paths followed, active or rotated away.
    followed: Vec<PathBuf>,
}

impl Interest {
    /// True when a name that changed in a watched directory may matter: a pattern matches it,
    /// or it is named like a followed file (`error.log.1` beside `error.log`).
    pub fn concerns(&self, path: &Path) -> bool {
        if self.patterns.iter().any(|p| p.matches_path(path)) {
            return true;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        self.followed.iter().any(|p| {
            p.parent() == path.parent()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| name.starts_with(n))
        })
    }
}

/// Errors that stop the watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint cannot be read and could not be moved aside, so no save could replace it.
    #[error("{cause}, and it could not be moved aside ({rename}); move or remove it and the job starts as on a first start")]
    CheckpointStuck {
        /// Why it cannot be read.
        cause: CheckpointError,
        /// Why it could not be moved.
        rename: std::io::Error,
    },
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

/// What a watch did, returned by [`watch`] when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Complete lines read and matched.
    pub lines: u64,
    /// Events the rules produced.
    pub events: u64,
    /// Matches a rule's cooldown held back (each counted in the next event of its rule and key).
    pub suppressed: u64,
    /// Events dropped because their consumer was behind.
    pub dropped: u64,
    /// Checkpoint saves that failed.
    pub failed_saves: u64,
}

/// Follows the configured files and turns their lines into events.
#[derive(Debug)]
pub struct Watcher {
    cfg: WatchConfig,
    patterns: Vec<glob::Pattern>,
    /// Each pattern's directory up to its first wildcard, watched for new files.
    literal_dirs: Vec<PathBuf>,
    rules: RuleSet,
    active: BTreeMap<PathBuf, FollowedFile>,
    /// When each active path was last `stat`ed (taken just before), to tell the files rotated
    /// since then from older ones.
    checked: BTreeMap<PathBuf, SystemTime>,
    lines: u64,
    retired: Vec<Retired>,
    finished: VecDeque<(u64, u64, Fingerprint)>,
    /// Paths that could not be opened, logged once until they open.
    failing: BTreeSet<PathBuf>,
    checkpoint_path: PathBuf,
    buf: Vec<u8>,
    last_scan: Instant,
    last_save: Instant,
    saved: Option<Checkpoint>,
    /// Events handed on that the consumer has not finished with: the checkpoint stays at
    /// their lines.
    inflight: InFlight,
}

impl Watcher {
    /// Builds a watcher, resuming from the checkpoint at `checkpoint_path` when there is one.
    /// A corrupt checkpoint, or anything at its path that cannot be read as a file (a
    /// directory, a FIFO, ...), is moved aside (`<name>.corrupt-<unix time>`), logged at error,
    /// and the watch starts as on a first start; an unreadable one that cannot be moved aside
    /// is [`WatchError::CheckpointStuck`].
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
        let literal_dirs = cfg.paths.iter().map(|p| literal_dir(p)).collect();
        let rules = RuleSet::new(cfg.rules.clone())?.with_job(&cfg.job);
        let saved = match Checkpoint::load(&checkpoint_path) {
            Ok(saved) => saved,
            Err(e @ CheckpointError::Corrupt { .. }) => {
                if let Err(rename) = set_aside(&cfg.job, &checkpoint_path, &e, "is corrupt") {
                    error!(
                        job = %cfg.job,
                        checkpoint = %checkpoint_path.display(),
                        error = %e,
                        rename_error = %rename,
                        "{}: the checkpoint {} is corrupt and could not be moved aside; starting as on a first start, the next save replaces it", cfg.job, checkpoint_path.display()
                    );
                }
                None
            }
            Err(e @ CheckpointError::Unreadable { .. }) => {
                // When it cannot be moved aside, no save could replace it either (a rename
                // cannot replace a directory): the job fails with one error saying what to do.
                set_aside(&cfg.job, &checkpoint_path, &e, "cannot be read as a file")
                    .map_err(|rename| WatchError::CheckpointStuck { cause: e, rename })?;
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut w = Watcher {
            cfg,
            patterns,
            literal_dirs,
            rules,
            active: BTreeMap::new(),
            checked: BTreeMap::new(),
            lines: 0,
            retired: Vec::new(),
            finished: VecDeque::new(),
            failing: BTreeSet::new(),
            checkpoint_path,
            buf: Vec::new(),
            last_scan: Instant::now(),
            last_save: Instant::now(),
            saved: None,
            inflight: InFlight::default(),
        };
        if let Some(cp) = saved {
            for mark in &cp.files {
                w.resume(mark);
            }
        }
        // Open the files now, not at the first pass: a rotation between the two is then
        // noticed like any other.
        w.rescan(true);
        w.last_scan = Instant::now();
        Ok(w)
    }

    /// Reopens one file from the checkpoint, wherever it now is.
    fn resume(&mut self, mark: &FileMark) {
        let job = self.cfg.job.clone();
        self.checked.insert(mark.path.clone(), SystemTime::now());
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
                info!(job = %job, file = %mark.path.display(), offset = mark.offset, "{}: resuming from checkpoint", job);
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
            None => self.resume_from_copy(mark),
        }
        if !mark.retired && !self.active.contains_key(&mark.path) && mark.path.exists() {
            // Rotated or rewritten while we were away: the file now at the path is new.
            if let Some(f) = open_logged(&mut self.failing, &job, &mark.path, Start::Beginning) {
                self.active.insert(mark.path.clone(), f);
            }
        }
    }

    /// Resumes a file truncated or replaced while opsd was stopped from the copy a rotation
    /// left beside it (found as the live path finds a copytruncate copy), as a rotated file.
    fn resume_from_copy(&mut self, mark: &FileMark) {
        let job = &self.cfg.job;
        let copy = find_copy(
            &mark.path,
            &mark.fingerprint,
            mark.offset,
            (mark.dev, mark.ino),
        );
        let opened = copy.and_then(|c| {
            let f = FollowedFile::open(&c, Start::At(mark.offset)).ok()?;
            (f.line_offset() == mark.offset).then_some((c, f))
        });
        match opened {
            Some((copy, mut f)) => {
                warn!(
                    job = %job,
                    file = %mark.path.display(),
                    copy = %copy.display(),
                    offset = mark.offset,
                    "{}: the file in the checkpoint was truncated or replaced while opsd was stopped; reading the rest of its copy first", job
                );
                f.path = mark.path.clone();
                self.retired.push(Retired {
                    file: f,
                    quiet_since: Instant::now(),
                });
            }
            None => warn!(
                job = %job,
                file = %mark.path.display(),
                "{}: the file in the checkpoint is gone or was rewritten, and no copy of it was found beside it; lines written to it after the checkpoint are lost", job
            ),
        }
    }

    /// Complete lines read and matched since the watcher was built.
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// Matches held back by a rule's cooldown since the watcher was built.
    pub fn suppressed(&self) -> u64 {
        self.rules.suppressed()
    }

    /// [`Self::suppressed`] per rule, in the order of [`Self::rules`].
    pub fn suppressed_by_rule(&self) -> &[u64] {
        self.rules.suppressed_by_rule()
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
        self.pass(false)
    }

    /// [`Watcher::poll`], re-scanning the globs now when `rescan` (a name appeared in a watched
    /// directory) as well as when due.
    pub fn pass(&mut self, rescan: bool) -> Result<Vec<LogEvent>, WatchError> {
        self.pass_marked(rescan).map(|(events, _)| events)
    }

    /// [`Watcher::pass`], with where the line of each event starts (same order).
    fn pass_marked(&mut self, rescan: bool) -> Result<(Vec<LogEvent>, Vec<Position>), WatchError> {
        let mut events = Vec::new();
        let mut marks = Vec::new();
        let now = Instant::now();
        if rescan || now.duration_since(self.last_scan) >= self.cfg.rescan_interval {
            self.rescan(false);
            self.last_scan = now;
        }
        let rules = &mut self.rules;
        let lines = &mut self.lines;
        let mut on_lines = |path: &Path, at: LineAt, chunk: &[u8]| {
            *lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
            rules.scan_marked(chunk, path, &mut events, &mut |start| {
                marks.push((at.id, at.offset + start as u64));
            });
        };
        let job = &self.cfg.job;

        // Rotated-away files first: their lines are older than those of the new files.
        let mut i = 0;
        while i < self.retired.len() {
            let r = &mut self.retired[i];
            match r.file.read_new(&mut self.buf, &mut on_lines) {
                Ok(0) => {}
                Ok(_) => r.quiet_since = now,
                Err(e) => {
                    warn!(job = %job, file = %r.file.path.display(), error = %e, "{}: cannot read rotated file", job)
                }
            }
            // Kept open while an event of its lines is unacknowledged, so the checkpoint
            // still names it.
            if now.duration_since(r.quiet_since) >= RETIRE_QUIET
                && !self.inflight.holds(r.file.identity())
            {
                let mut r = self.retired.swap_remove(i);
                r.file.flush_partial(&mut on_lines);
                info!(job = %job, file = %r.file.path.display(), "{}: finished the rotated file", job);
                remember_finished(&mut self.finished, &r.file);
            } else {
                i += 1;
            }
        }

        let paths: Vec<PathBuf> = self.active.keys().cloned().collect();
        for path in paths {
            let Some(f) = self.active.get_mut(&path) else {
                continue;
            };
            let truncated = f.truncated();
            if matches!(truncated, Ok(true)) {
                // The offsets of its unacknowledged events name bytes that are gone.
                self.inflight.forget(f.identity());
            }
            // The copytruncate copy whose tail was just read: a file named like the log and
            // written since its last check, which must not be read again whole as a file
            // rotated away unseen when the path is next replaced.
            let mut copied = None;
            match truncated {
                Ok(true) => match f.restart_after_truncation(&mut self.buf, &mut on_lines) {
                    Ok(Some((copy_path, copy))) => {
                        warn!(
                            job = %job,
                            file = %path.display(),
                            copy = %copy_path.display(),
                            "{}: file was truncated (copytruncate); reading it again from the start", job
                        );
                        copied = Some(copy);
                    }
                    Ok(None) => warn!(
                        job = %job,
                        file = %path.display(),
                        "{}: file was truncated (copytruncate); reading it again from the start", job
                    ),
                    Err(e) => {
                        warn!(job = %job, file = %path.display(), error = %e, "{}: cannot restart truncated file", job)
                    }
                },
                Ok(false) => {}
                Err(e) => {
                    warn!(job = %job, file = %path.display(), error = %e, "{}: cannot check file", job)
                }
            }
            if let Err(e) = f.read_new(&mut self.buf, &mut on_lines) {
                warn!(job = %job, file = %path.display(), error = %e, "{}: cannot read file", job);
            }
            let checked_at = SystemTime::now();
            let previous_check = self.checked.insert(path.clone(), checked_at);
            let now_at_path = std::fs::metadata(&path).ok().map(|m| identity(&m));
            let unchanged = now_at_path == Some(f.identity());
            if let Some(copy) = copied {
                remember_finished(&mut self.finished, &copy);
            }
            if unchanged {
                continue;
            }
            // Rotated: keep reading the old inode until it is quiet, follow the new one.
            let old = self.active.remove(&path);
            if let Some(old) = old {
                info!(
                    job = %job,
                    file = %path.display(),
                    replaced = now_at_path.is_some(),
                    "{}: file rotated; reading the old one to its end", job
                );
                self.retired.push(Retired {
                    file: old,
                    quiet_since: now,
                });
            }
            // Open the new file at once: while older files are read, it may be rotated too.
            let new_file = now_at_path
                .and_then(|_| open_logged(&mut self.failing, job, &path, Start::Beginning));
            // When the path is gone, its last check stays in `checked`: the rescan that finds
            // it again reads what was rotated away from it in between.
            if let (Some(since), Some(new)) = (previous_check, &new_file) {
                // Files rotated away between two checks were never seen at the path: find them
                // beside it and read them whole, oldest first, before the new file.
                let known: Vec<(u64, u64)> = self
                    .active
                    .values()
                    .chain(self.retired.iter().map(|r| &r.file))
                    .chain(std::iter::once(new))
                    .map(FollowedFile::identity)
                    .chain(self.finished.iter().map(|(dev, ino, _)| (*dev, *ino)))
                    .collect();
                for (unseen, mut f) in rotated_unseen(&path, since, &known) {
                    warn!(
                        job = %job,
                        file = %path.display(),
                        rotated = %unseen.display(),
                        "{}: the file was rotated more than once between two checks; reading the file rotated before it was seen from its start", job
                    );
                    if let Err(e) = f.read_new(&mut self.buf, &mut on_lines) {
                        warn!(job = %job, file = %unseen.display(), error = %e, "{}: cannot read rotated file", job);
                    }
                    self.retired.push(Retired {
                        file: f,
                        quiet_since: now,
                    });
                }
            }
            if let Some(mut f) = new_file {
                if let Err(e) = f.read_new(&mut self.buf, &mut on_lines) {
                    warn!(job = %job, file = %path.display(), error = %e, "{}: cannot read file", job);
                }
                self.active.insert(path, f);
            }
        }
        Ok((events, marks))
    }

    /// What the kernel should watch for this watcher: the directory of every followed path and
    /// the deepest existing directory of each pattern's literal part (for names appearing), and
    /// every open file, active or rotated away (for writes).
    pub fn targets(&self) -> (BTreeSet<PathBuf>, Vec<FileTarget>) {
        let files: Vec<&FollowedFile> = self
            .active
            .values()
            .chain(self.retired.iter().map(|r| &r.file))
            .collect();
        let mut dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.path.parent().map(Path::to_path_buf))
            .collect();
        for lit in &self.literal_dirs {
            if let Some(d) = lit.ancestors().find(|d| d.is_dir()) {
                dirs.insert(d.to_path_buf());
            }
        }
        let targets = files
            .iter()
            .map(|f| FileTarget {
                id: f.identity(),
                via: f.fd_path(),
                name: f.path.clone(),
            })
            .collect();
        (dirs, targets)
    }

    /// What tells whether a name that changed in a watched directory may matter to this
    /// watcher now ([`Interest::concerns`]), as a copy that needs no access to the watcher.
    pub fn interest(&self) -> Interest {
        Interest {
            patterns: self.patterns.clone(),
            followed: self
                .active
                .keys()
                .chain(self.retired.iter().map(|r| &r.file.path))
                .cloned()
                .collect(),
        }
    }

    /// The next time a pass is due whatever the files do: a rotated file's quiet time ending,
    /// or an unsaved checkpoint's save.
    fn next_due(&self) -> Option<Instant> {
        let retire = self
            .retired
            .iter()
            .map(|r| r.quiet_since + RETIRE_QUIET)
            .min();
        let save = (self.saved.as_ref() != Some(&self.checkpoint()))
            .then(|| self.last_save + self.cfg.checkpoint_interval);
        retire.into_iter().chain(save).min()
    }

    /// True when the checkpoint is due to be saved again: the interval passed and a position
    /// moved since the last save (an idle watch saves nothing and hops to no blocking thread).
    pub fn save_due(&self) -> bool {
        self.last_save.elapsed() >= self.cfg.checkpoint_interval
            && self.saved.as_ref() != Some(&self.checkpoint())
    }

    /// The checkpoint to save when it moved since the last save (counted as saved from now:
    /// the caller saves it), restarting the checkpoint interval either way.
    fn take_unsaved(&mut self) -> Option<Checkpoint> {
        self.last_save = Instant::now();
        let cp = self.checkpoint();
        (self.saved.as_ref() != Some(&cp)).then(|| {
            self.saved = Some(cp.clone());
            cp
        })
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

    /// The current positions: where reading is in each file, or the start of the line of its
    /// oldest event the consumer has not finished with.
    pub fn checkpoint(&self) -> Checkpoint {
        let holds = self.inflight.holds_by_file();
        let mark = |f: &FollowedFile, retired: bool| {
            let mut m = f.mark(retired);
            if let Some(&held) = holds.get(&f.identity()) {
                m.offset = m.offset.min(held);
            }
            m
        };
        let files = self
            .active
            .values()
            .map(|f| mark(f, false))
            .chain(self.retired.iter().map(|r| mark(&r.file, true)))
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
            let previous_check = self.checked.get(&path).copied();
            let checked_at = SystemTime::now();
            if let Some(f) = open_logged(&mut self.failing, &self.cfg.job, &path, start) {
                info!(job = %self.cfg.job, file = %path.display(), from = ?start, "{}: following", self.cfg.job);
                if let (Some(since), false) = (previous_check, first) {
                    self.retire_unseen(&path, since, &f);
                }
                self.checked.insert(path.clone(), checked_at);
                self.active.insert(path, f);
            }
        }
    }
}

impl Watcher {
    /// A path followed before was missing at a pass and is back as `new`: the files rotated
    /// away from it while it was missing (two renames between two passes) are read whole,
    /// oldest first, as rotated files (the pass reads rotated files before the live ones).
    fn retire_unseen(&mut self, path: &Path, since: SystemTime, new: &FollowedFile) {
        let known: Vec<(u64, u64)> = self
            .active
            .values()
            .chain(self.retired.iter().map(|r| &r.file))
            .chain(std::iter::once(new))
            .map(FollowedFile::identity)
            .chain(self.finished.iter().map(|(dev, ino, _)| (*dev, *ino)))
            .collect();
        for (unseen, f) in rotated_unseen(path, since, &known) {
            warn!(
                job = %self.cfg.job,
                file = %path.display(),
                rotated = %unseen.display(),
                "{}: the file was rotated while its path was missing; reading the file rotated before it was seen from its start", self.cfg.job
            );
            self.retired.push(Retired {
                file: f,
                quiet_since: Instant::now(),
            });
        }
    }
}

/// Keeps `file` among the files read to their end (the last [`FINISHED_MEMORY`]), which are
/// never read again as files rotated away unseen or resumed at the next start.
fn remember_finished(finished: &mut VecDeque<(u64, u64, Fingerprint)>, file: &FollowedFile) {
    let (dev, ino) = file.identity();
    if finished.len() >= FINISHED_MEMORY {
        finished.pop_front();
    }
    finished.push_back((dev, ino, file.fingerprint().clone()));
}

/// The directory of glob `pattern` up to its first component with a wildcard
/// (`/var/log/*/error.log` → `/var/log`).
fn literal_dir(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    let path = Path::new(pattern);
    let parent = path.parent().unwrap_or(path);
    for c in parent.components() {
        if c.as_os_str()
            .to_str()
            .is_some_and(|s| s.contains(['*', '?', '[']))
        {
            break;
        }
        dir.push(c);
    }
    dir
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
                warn!(job = %job, file = %path.display(), error = %e, "{}: cannot open log file", job);
            } else {
                debug!(job = %job, file = %path.display(), error = %e, "{}: still cannot open log file", job);
            }
            None
        }
    }
}

/// The files beside `path` that a rotation moved away from it since `since` without the
/// watcher seeing them there: named like it (`error.log.1`, `error.log-20261201`), not
/// compressed, not `known` (followed, rotated or finished), written to since `since`. Oldest
/// first, each opened at its beginning with `path` as the path its events name.
fn rotated_unseen(
    path: &Path,
    since: SystemTime,
    known: &[(u64, u64)],
) -> Vec<(PathBuf, FollowedFile)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let since = since.checked_sub(MTIME_SLACK).unwrap_or(since);
    let mut found: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let fname = e.file_name();
            let fname = fname.to_str()?;
            if fname == name || !fname.starts_with(name) || compressed(fname) {
                return None;
            }
            let meta = e.metadata().ok()?;
            let mtime = meta.modified().ok()?;
            (meta.is_file() && !known.contains(&identity(&meta)) && mtime >= since)
                .then(|| (mtime, e.path()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .filter_map(|(_, p)| {
            let mut f = FollowedFile::open(&p, Start::Beginning).ok()?;
            f.path = path.to_path_buf();
            Some((p, f))
        })
        .collect()
}

/// Moves a checkpoint that is corrupt or cannot be read (`what` says which) aside as
/// `<name>.corrupt-<unix time>` and says so at error; returns the rename's error (unlogged)
/// when it could not be moved.
fn set_aside(
    job: &str,
    path: &Path,
    cause: &CheckpointError,
    what: &str,
) -> Result<(), std::io::Error> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{secs}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    error!(
        job = %job,
        checkpoint = %path.display(),
        kept_as = %aside.display(),
        error = %cause,
        "{}: the checkpoint {} {what}; kept it aside as {} and starting as on a first start (files not read before begin at their end unless from_beginning is set)", job, path.display(), aside.display()
    );
    Ok(())
}

/// Looks in the directory of `path` for the file with this device and inode (a rotated file).
fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let m = e.metadata().ok()?;
        (identity(&m) == (dev, ino) && m.is_file()).then(|| e.path())
    })
}

/// Counts the events dropped because their consumer was behind and logs them, at most once
/// per [`REPORT_EVERY`].
#[derive(Debug, Default)]
struct Drops {
    total: u64,
    /// Dropped since the last report, per rule.
    pending: BTreeMap<String, u64>,
    last_report: Option<Instant>,
}

impl Drops {
    /// Counts one dropped event.
    fn drop_event(&mut self, ev: &LogEvent) {
        self.total += 1;
        *self.pending.entry(ev.rule.clone()).or_default() += 1;
    }

    /// When the drops not yet reported are due to be (the watch does not go idle before).
    fn due(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(
            self.last_report
                .map_or_else(Instant::now, |t| t + REPORT_EVERY),
        )
    }

    /// Logs what was dropped since the last report, when there is any and a report is due
    /// (or `now_anyway`).
    fn report(&mut self, job: &str, now_anyway: bool) {
        if self.pending.is_empty() {
            return;
        }
        let due = self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if !due && !now_anyway {
            return;
        }
        let dropped: u64 = self.pending.values().sum();
        let rules = self
            .pending
            .iter()
            .map(|(rule, n)| format!("{rule}={n}"))
            .collect::<Vec<_>>()
            .join(", ");
        warn!(
            job = %job,
            dropped,
            total_dropped = self.total,
            rules = %rules,
            "{job}: alert events came faster than they could be logged and sent; dropped {dropped} events (every line is still read)"
        );
        self.pending.clear();
        self.last_report = Some(Instant::now());
    }
}

/// Keeps a failing checkpoint from silencing or stopping the watch: the first failure is
/// logged at error, later ones at most once per [`REPORT_EVERY`] with their count, and the
/// recovery at info.
#[derive(Debug, Default)]
struct SaveFailures {
    /// Failures since the last success.
    since_ok: u64,
    last_report: Option<Instant>,
}

impl SaveFailures {
    /// Notes the result of one save.
    fn note(&mut self, job: &str, result: Result<(), WatchError>) {
        match result {
            Ok(()) => {
                if self.since_ok > 0 {
                    info!(job = %job, failed = self.since_ok, "{job}: the checkpoint is saved again");
                }
                self.since_ok = 0;
            }
            Err(e) => {
                self.since_ok += 1;
                if self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                    error!(
                        job = %job,
                        error = %e,
                        failed = self.since_ok,
                        "{job}: cannot save the checkpoint; the watch goes on, but a restart would read again from the last saved position"
                    );
                    self.last_report = Some(Instant::now());
                }
            }
        }
    }
}

/// How long a stopping watch waits for its consumer to finish with the events handed on, so
/// that the last checkpoint covers them (a stuck consumer must not hold up the stop).
pub const STOP_ACK_WAIT: Duration = Duration::from_secs(2);

/// Runs `watcher` until `cancel` fires, handing every event to `events` without waiting (an
/// event the consumer has no room for is dropped, counted and logged: reading never waits on
/// delivery). The consumer counts on `acks` the events it has finished with ([`acks`]); the
/// checkpoint never passes the line of an event it has not. A pass runs when inotify reports a
/// change to a followed file or a name in a watched directory that concerns it ([`Interest`]),
/// at least every [`SAFETY_POLL`] (every `poll_interval` when inotify cannot watch
/// everything), when a rotated file's quiet time ends, when a checkpoint save is due and when
/// a report of dropped events is (an idle watch has none waiting). Saves the checkpoint (as
/// far as the consumer got) after every pass while events are out, as soon as the consumer
/// has finished with every event handed on, at least every `checkpoint_interval` while lines
/// flow, and at the end (after waiting up to
/// [`STOP_ACK_WAIT`] for the consumer); a failed save is logged and the watch goes on from
/// where it is. Saves run on a task of their own (`Saver`): no pass waits for one, except
/// that the watch ends once its last save is done. File reading runs on the blocking pool,
/// the safety passes of an idle watch on a thread of its own.
/// Ends when `cancel` fires or nobody receives events any more.
pub async fn watch(
    watcher: Watcher,
    cancel: CancellationToken,
    events: tokio::sync::mpsc::Sender<LogEvent>,
    acks: AckReader,
) -> Result<WatchStats, WatchError> {
    watch_reporting(watcher, cancel, events, acks, |_, _| {}).await
}

/// What ended a wait between passes.
enum Woken {
    /// Files changed or a pass is due; true when the globs should be re-scanned.
    Pass(bool),
    /// The consumer has finished with every event handed on.
    Acked,
    /// The watch is cancelled.
    Cancelled,
}

/// [`watch`], telling `on_pass` after every pass where the watch is (for `opsd status`).
pub async fn watch_reporting(
    watcher: Watcher,
    cancel: CancellationToken,
    events: tokio::sync::mpsc::Sender<LogEvent>,
    acks: AckReader,
    on_pass: impl FnMut(&Watcher, &WatchStats) + Send + 'static,
) -> Result<WatchStats, WatchError> {
    let mut saver = Saver::start(&watcher.cfg.job, &watcher);
    let ended = run_passes(watcher, cancel, events, acks, on_pass, &mut saver).await;
    // However the watch ended (an error too), the last checkpoint handed over is saved, or its
    // failure counted, before it returns.
    let failed_saves = saver.finish().await;
    let stats = ended?;
    Ok(WatchStats {
        failed_saves: failed_saves?,
        ..stats
    })
}

/// The passes of [`watch_reporting`] until the watch ends, handing its checkpoints to `saver`
/// (which the caller finishes, an error or not).
async fn run_passes(
    mut watcher: Watcher,
    cancel: CancellationToken,
    events: tokio::sync::mpsc::Sender<LogEvent>,
    mut acks: AckReader,
    mut on_pass: impl FnMut(&Watcher, &WatchStats) + Send + 'static,
    saver: &mut Saver,
) -> Result<WatchStats, WatchError> {
    let job = watcher.cfg.job.clone();
    let mut waiter = Waiter::new(&job, watcher.cfg.poll_interval)?;
    let mut drops = Drops::default();
    let mut produced = 0u64;
    let mut rescan = false;
    // Events were handed on since the last save that covered them all.
    let mut unsaved = false;
    // A pass an idle wait ran that found something (its start and result), to hand on.
    let mut found: Option<(Instant, PassResult)> = None;
    // A pass is due at once after that one (the kernel reported a change meanwhile).
    let mut again: Option<bool> = None;
    'watch: loop {
        let (pass_start, result) = match found.take() {
            Some(f) => f,
            None => {
                let pass_start = Instant::now();
                watcher.inflight.acked(*acks.borrow_and_update());
                let (w, result) = blocking(move || {
                    let r = watcher.pass_marked(rescan);
                    (watcher, r)
                })
                .await?;
                watcher = w;
                (pass_start, result)
            }
        };
        let (batch, marks) = result?;
        produced += batch.len() as u64;
        for (ev, at) in batch.into_iter().zip(marks) {
            match events.try_send(ev) {
                Ok(()) => {
                    watcher.inflight.sent(at);
                    unsaved = true;
                }
                Err(TrySendError::Full(ev)) => drops.drop_event(&ev),
                Err(TrySendError::Closed(_)) => cancel.cancel(),
            }
        }
        drops.report(&job, false);
        watcher.inflight.acked(*acks.borrow_and_update());
        // While events are out, every pass saves how far the consumer got.
        if unsaved || watcher.save_due() {
            saver.submit(&mut watcher);
            unsaved = !watcher.inflight.caught_up();
        }
        let stats = WatchStats {
            lines: watcher.lines_read(),
            events: produced,
            suppressed: watcher.suppressed(),
            dropped: drops.total,
            failed_saves: saver.failed(),
        };
        on_pass(&watcher, &stats);
        if cancel.is_cancelled() {
            break;
        }
        // Watches set after the pass: what changed between the pass and a new watch is read by
        // one more pass at once.
        let added = waiter.update(&job, &watcher);
        rescan = if added.new_dir || added.new_file {
            added.new_dir
        } else if let Some(r) = again.take() {
            r
        } else {
            loop {
                let awaiting_acks = unsaved && !watcher.inflight.caught_up();
                // A pass when a rotated file's quiet time ends, a save or a drop report is due.
                let due = watcher.next_due().into_iter().chain(drops.due()).min();
                // Idle (inotify watches everything, no event out, nothing due): the safety
                // passes run off the runtime, which sleeps until the kernel reports a change.
                if waiter.watching_all() && !awaiting_acks && due.is_none() {
                    let first = pass_start + SAFETY_POLL;
                    let (w, f, end) =
                        idle_wait(watcher, on_pass, stats, first, &mut waiter, &cancel, saver)
                            .await?;
                    (watcher, on_pass) = (w, f);
                    match end {
                        IdleEnd::Found(start, result, then) => {
                            found = Some((start, result));
                            again = then;
                            break false;
                        }
                        IdleEnd::Changed(r) => break r,
                        IdleEnd::Cancelled => break 'watch,
                    }
                }
                let mut deadline = pass_start + waiter.longest_wait();
                if let Some(due) = due {
                    deadline = deadline.min(due);
                }
                let sent = watcher.inflight.sent_count();
                let woken = tokio::select! {
                    () = cancel.cancelled() => Woken::Cancelled,
                    r = waiter.wait(&job, &watcher, deadline) => Woken::Pass(r),
                    () = all_acked(&mut acks, sent), if awaiting_acks => Woken::Acked,
                };
                match woken {
                    Woken::Cancelled => break 'watch,
                    Woken::Pass(r) => break r,
                    // Saved without a pass: nothing was read, the checkpoint catches up.
                    Woken::Acked => {
                        watcher.inflight.acked(*acks.borrow_and_update());
                        saver.submit(&mut watcher);
                        unsaved = !watcher.inflight.caught_up();
                    }
                }
            }
        };
        // A burst is read in a few large passes rather than one per write.
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until((pass_start + PASS_GAP).into()) => {}
        }
    }
    drops.report(&job, true);
    if !watcher.inflight.caught_up() {
        let sent = watcher.inflight.sent_count();
        let consumer = async {
            tokio::select! {
                () = all_acked(&mut acks, sent) => {}
                () = events.closed() => {}
            }
        };
        let _ = tokio::time::timeout(STOP_ACK_WAIT, consumer).await;
        watcher.inflight.acked(*acks.borrow_and_update());
    }
    saver.submit(&mut watcher);
    Ok(WatchStats {
        lines: watcher.lines_read(),
        events: produced,
        suppressed: watcher.suppressed(),
        dropped: drops.total,
        failed_saves: saver.failed(),
    })
}

/// Waits until the consumer has finished with `sent` events (forever when it is gone).
async fn all_acked(acks: &mut AckReader, sent: u64) {
    let gone = acks.wait_for(|&n| n >= sent).await.is_err();
    if gone {
        std::future::pending::<()>().await;
    }
}

/// Saves the checkpoints the watch loop hands it on a task of its own, so that no pass waits
/// for a save's two fsyncs (tens of milliseconds on a loaded disk, once on the path from a
/// line to its alert). One save runs at a time, always of the newest checkpoint handed over
/// (older ones not yet saved are skipped: the newest covers them), so the file never goes back
/// to an older position; a failed save is logged ([`SaveFailures`]) and tried again after
/// `checkpoint_interval` unless a newer checkpoint comes first.
#[derive(Debug)]
struct Saver {
    tx: tokio::sync::watch::Sender<Option<Checkpoint>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Saver {
    /// Starts the saving task for `watcher`'s checkpoint path.
    fn start(job: &str, watcher: &Watcher) -> Saver {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let failed = std::sync::Arc::default();
        let task = tokio::spawn(save_loop(
            job.to_string(),
            watcher.checkpoint_path.clone(),
            watcher.cfg.checkpoint_interval,
            rx,
            std::sync::Arc::clone(&failed),
        ));
        Saver { tx, failed, task }
    }

    /// Hands `watcher`'s checkpoint over to be saved, when it moved since the last one handed
    /// over; never waits.
    fn submit(&mut self, watcher: &mut Watcher) {
        if let Some(cp) = watcher.take_unsaved() {
            self.tx.send_replace(Some(cp));
        }
    }

    /// Saves that failed so far.
    fn failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the last checkpoint handed over to be saved (or to fail); returns the count
    /// of failed saves. Every watch ends with it, whatever ended the watch: dropped unfinished,
    /// the saver's last try could still be running after the watch ended, or never run.
    async fn finish(self) -> Result<u64, WatchError> {
        let Saver { tx, failed, task } = self;
        drop(tx);
        task.await.map_err(|e| WatchError::Task(e.to_string()))?;
        Ok(failed.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The task of a [`Saver`]: saves the newest checkpoint of `rx` on the blocking pool until
/// the loop's side is gone, retrying a failed one every `retry` meanwhile and once at the end.
async fn save_loop(
    job: String,
    path: PathBuf,
    retry: Duration,
    mut rx: tokio::sync::watch::Receiver<Option<Checkpoint>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut saves = SaveFailures::default();
    // The newest checkpoint, when its save failed.
    let mut unsaved: Option<Checkpoint> = None;
    loop {
        let closed = match &unsaved {
            Some(_) => tokio::select! {
                r = rx.changed() => r.is_err(),
                () = tokio::time::sleep(retry) => false,
            },
            None => rx.changed().await.is_err(),
        };
        let newer = rx.borrow_and_update().clone();
        let Some(cp) = newer.filter(|_| !closed).or_else(|| unsaved.take()) else {
            if closed {
                break;
            }
            continue;
        };
        let at = path.clone();
        let attempt = cp.clone();
        let result = match tokio::task::spawn_blocking(move || attempt.save(&at)).await {
            Ok(r) => r.map_err(WatchError::from),
            Err(e) => Err(WatchError::Task(e.to_string())),
        };
        unsaved = result.is_err().then_some(cp);
        if unsaved.is_some() {
            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        saves.note(&job, result);
        if closed {
            break;
        }
    }
}

/// How the watch loop waits between passes: on inotify when every target is watched, by
/// polling every `poll_interval` as well when something is not (logged once).
#[derive(Debug)]
struct Waiter {
    changes: Option<Changes>,
    /// Where the safety passes run while the watch is idle.
    idle: IdleThread,
    poll_interval: Duration,
    /// Something is not watched: passes run every poll interval too.
    polling: bool,
    /// The fallback to polling was logged.
    warned: bool,
}

/// Which new watches [`Waiter::update`] set.
#[derive(Debug, Default)]
struct Added {
    new_dir: bool,
    new_file: bool,
}

impl Waiter {
    /// Starts inotify, or says once that the watch polls, and the thread of its idle passes.
    fn new(job: &str, poll_interval: Duration) -> Result<Self, WatchError> {
        let mut w = Waiter {
            changes: None,
            idle: IdleThread::start(job)?,
            poll_interval,
            polling: true,
            warned: false,
        };
        match Changes::new() {
            Ok(c) => w.changes = Some(c),
            Err(e) => w.fall_back(job, &e),
        }
        Ok(w)
    }

    /// Logs, once, that the watch polls because of `why`.
    fn fall_back(&mut self, job: &str, why: &dyn std::fmt::Display) {
        self.polling = true;
        if !self.warned {
            self.warned = true;
            warn!(
                job = %job,
                error = %why,
                poll_interval_ms = self.poll_interval.as_millis() as u64,
                "{job}: {why}; what inotify cannot watch is checked every poll_interval ({} ms) instead", self.poll_interval.as_millis()
            );
        }
    }

    /// The longest time between two passes: the safety poll, or the poll interval while
    /// something is not watched.
    fn longest_wait(&self) -> Duration {
        if self.polling {
            self.poll_interval
        } else {
            SAFETY_POLL
        }
    }

    /// Watches what `watcher` follows now.
    fn update(&mut self, job: &str, watcher: &Watcher) -> Added {
        let Some(changes) = &mut self.changes else {
            return Added::default();
        };
        let (dirs, files) = watcher.targets();
        let out = changes.set(&dirs, &files);
        match &out.error {
            Some(e) => self.fall_back(job, e),
            None => self.polling = false,
        }
        Added {
            new_dir: out.new_dir,
            new_file: out.new_file,
        }
    }

    /// True when inotify watches every target: only the safety passes need a timer.
    fn watching_all(&self) -> bool {
        self.changes.is_some() && !self.polling
    }

    /// Waits until a change that concerns `watcher` or `deadline`; true when the globs should
    /// be re-scanned at once (a name arrived, a directory went, events were lost).
    async fn wait(&mut self, job: &str, watcher: &Watcher, deadline: Instant) -> bool {
        let deadline = tokio::time::Instant::from(deadline);
        let interest = watcher.interest();
        loop {
            let next = tokio::select! {
                r = self.next(job) => r,
                () = tokio::time::sleep_until(deadline) => return false,
            };
            if let Some(rescan) = relevance(next, &interest) {
                return rescan;
            }
        }
    }

    /// Waits for what the kernel reports next (forever without inotify); `None` when reading
    /// it failed, which falls back to polling.
    async fn next(&mut self, job: &str) -> Option<Vec<Change>> {
        let Some(changes) = &mut self.changes else {
            return std::future::pending().await;
        };
        match changes.next().await {
            Ok(list) => Some(list),
            Err(e) => {
                self.changes = None;
                self.fall_back(job, &format!("reading inotify events failed ({e})"));
                None
            }
        }
    }
}

/// Whether what the kernel reported (`None`: reading it failed) calls for a pass of the
/// watcher whose `interest` it is: `Some(true)` when the globs should be re-scanned at once too
/// (a name arrived, a directory went, events were lost), `None` when nothing of it concerns
/// the watch.
fn relevance(reported: Option<Vec<Change>>, interest: &Interest) -> Option<bool> {
    let Some(list) = reported else {
        return Some(true);
    };
    let mut relevant = false;
    let mut rescan = false;
    for change in list {
        match change {
            Change::File => relevant = true,
            Change::Overflow | Change::DirGone => {
                relevant = true;
                rescan = true;
            }
            Change::Name { path, arrived, dir } => {
                if dir || interest.concerns(&path) {
                    relevant = true;
                    rescan |= arrived || dir;
                }
            }
        }
    }
    relevant.then_some(rescan)
}

/// What a pass returns: its events, and where the line of each starts.
type PassResult = Result<(Vec<LogEvent>, Vec<Position>), WatchError>;

/// What ended an [`idle_wait`].
enum IdleEnd {
    /// A safety pass found something: its start and result, to hand on as any pass's; then
    /// a pass at once when `Some` (true: re-scanning), for a change reported meanwhile.
    Found(Instant, PassResult, Option<bool>),
    /// A change concerns the watch; true when the globs should be re-scanned at once.
    Changed(bool),
    /// The watch is cancelled.
    Cancelled,
}

/// Waits, while the watch is idle, for a change that concerns it or its cancellation, running
/// the safety passes from `first` on (every [`SAFETY_POLL`]) on the watch's [`IdleThread`],
/// which keeps `watcher` and `on_pass` meanwhile ([`idle_passes`]): an idle watch wakes that
/// one thread once per safety poll and no runtime worker (no tokio timer, whose wheel wakes
/// its thread two or three times for a 5 s sleep, and no hop to a thread and back). The thread
/// is asked back only for a change that concerns the watch (told by its [`Interest`], which
/// an idle pass does not change: a pass that changes it ends the wait); the others, however
/// many (a busy directory beside the followed files), leave it where it is, so they never hold
/// a safety pass off.
async fn idle_wait<F>(
    mut watcher: Watcher,
    mut on_pass: F,
    stats: WatchStats,
    first: Instant,
    waiter: &mut Waiter,
    cancel: &CancellationToken,
    saver: &Saver,
) -> Result<(Watcher, F, IdleEnd), WatchError>
where
    F: FnMut(&Watcher, &WatchStats) + Send + 'static,
{
    let job = watcher.cfg.job.clone();
    let interest = watcher.interest();
    let failed_saves = std::sync::Arc::clone(&saver.failed);
    let (back, asked) = std::sync::mpsc::channel::<()>();
    let lent = waiter.idle.run(move || {
        let found = idle_passes(
            &mut watcher,
            &mut on_pass,
            stats,
            &failed_saves,
            first,
            &asked,
        );
        (watcher, on_pass, found)
    });
    tokio::pin!(lent);
    // `None`: cancelled.
    let changed = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            r = waiter.next(&job) => {
                if let Some(rescan) = relevance(r, &interest) {
                    break Some(rescan);
                }
            }
            done = &mut lent => {
                let (w, f, found) = done?;
                // It ends by itself only with a pass that found something.
                let end = match found {
                    Some((start, result)) => IdleEnd::Found(start, result, None),
                    None => IdleEnd::Changed(false),
                };
                return Ok((w, f, end));
            }
        }
    };
    let _ = back.send(());
    let (w, f, found) = lent.await?;
    let end = match (found, changed) {
        (Some((start, result)), then) => IdleEnd::Found(start, result, then),
        (None, Some(rescan)) => IdleEnd::Changed(rescan),
        (None, None) => IdleEnd::Cancelled,
    };
    Ok((w, f, end))
}

/// The safety passes of an idle watch, on the thread that runs it: a pass at `first`, then
/// one [`SAFETY_POLL`] after the start of the last, each told to `on_pass` with `stats` as
/// they are now (the lines and held-back matches; the saves failed so far, `failed_saves`,
/// which goes on growing while the saver retries a failing save), until one finds something
/// (returned with its start): an event, a line, a file followed, rotated away or truncated, a
/// directory to watch, anything due. Returns `None` as soon as `asked` says the watch wants
/// `watcher` back (or is gone).
fn idle_passes<F: FnMut(&Watcher, &WatchStats)>(
    watcher: &mut Watcher,
    on_pass: &mut F,
    stats: WatchStats,
    failed_saves: &std::sync::atomic::AtomicU64,
    first: Instant,
    asked: &std::sync::mpsc::Receiver<()>,
) -> Option<(Instant, PassResult)> {
    use std::sync::mpsc::RecvTimeoutError;
    let mut next = first;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        if !matches!(asked.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
            return None;
        }
        let start = Instant::now();
        let before = (
            watcher.checkpoint(),
            watcher.lines_read(),
            watcher.targets().0,
        );
        let result = watcher.pass_marked(false);
        let quiet = matches!(&result, Ok((events, _)) if events.is_empty())
            && watcher.next_due().is_none()
            && (
                watcher.checkpoint(),
                watcher.lines_read(),
                watcher.targets().0,
            ) == before;
        if !quiet {
            return Some((start, result));
        }
        let stats = WatchStats {
            lines: watcher.lines_read(),
            suppressed: watcher.suppressed(),
            failed_saves: failed_saves.load(std::sync::atomic::Ordering::Relaxed),
            ..stats
        };
        on_pass(watcher, &stats);
        next = start + SAFETY_POLL;
    }
}

/// Work for an [`IdleThread`].
type IdleWork = Box<dyn FnOnce() + Send>;

/// The thread of one watch on which its idle safety passes run ([`idle_wait`]), started with
/// the watch and ended with it; it sleeps on its queue while the watch is not idle. Not tokio's
/// blocking pool: an idle watch holds its thread for as long as it is idle, and that pool is
/// shared and bounded, so idle watches would hold the threads that other blocking work (the
/// passes and saves of every watch, other jobs) waits for.
#[derive(Debug)]
struct IdleThread {
    queue: std::sync::mpsc::Sender<IdleWork>,
}

impl IdleThread {
    /// Starts the idle thread of `job`'s watch.
    fn start(job: &str) -> Result<IdleThread, WatchError> {
        let (queue, work) = std::sync::mpsc::channel::<IdleWork>();
        std::thread::Builder::new()
            .name("opsd-idle-watch".to_string())
            .spawn(move || work.into_iter().for_each(|w| w()))
            .map_err(|e| {
                WatchError::Task(format!(
                    "cannot start the thread of the {job} watch's idle passes: {e}"
                ))
            })?;
        Ok(IdleThread { queue })
    }

    /// Hands `f` to the thread at once; the future it returns (which does not borrow the
    /// thread) gives what `f` returned, or an error when it panicked.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, WatchError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work: IdleWork = Box::new(move || {
            let _ = tx.send(f());
        });
        let queued = self.queue.send(work);
        async move {
            let failed = || WatchError::Task("the idle passes of the watch failed".to_string());
            queued.map_err(|_| failed())?;
            rx.await.map_err(|_| failed())
        }
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WatchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WatchError::Task(e.to_string()))
}
