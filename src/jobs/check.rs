//! What a job type tells `opsd check` about one job beyond its preflight: each thing it looked
//! at, as a [`Finding`] that `opsd check` renders the same way for every type (`JOB: KEY: OK
//! (...)` when fine, else the file, line and column, the key `jobs.JOB.KEY` and the problem).
//! A type's check reads what a run would read (key files, environment files), never changes
//! anything and never shows a secret. [`JobType::check`](super::JobType::check) picks the
//! type's own check, in its folder (`jobs/TYPE/check.rs`).

use std::ops::Range;
use std::path::Path;

/// How a finding bears on the job's runs (not an alert's urgency: nothing is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine as far as check can see.
    Ok,
    /// May still work, or cannot be seen from here; does not change check's exit code.
    Warning,
    /// Every run fails until someone acts; check exits 1.
    Error,
}

/// Which part of `opsd check`'s report a finding is listed in, each part after the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// What a run needs in place before it starts: keys, directories.
    Prerequisites,
    /// What a run is started with: its environment file.
    Environment,
    /// What the systemd unit hides from the daemon, though check can see it: a warning, listed
    /// with the other hidden-path warnings at the end.
    Hidden,
}

/// Where in the job file a finding points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The value of the finding's key: shown as `FILE:LINE:COL`.
    Span(Range<usize>),
    /// The file the job is defined in, as a whole.
    File,
    /// Nowhere in a file (the job leaves the key out): shown as the job's name.
    Job,
}

/// One thing a job type's check looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How it bears on the job's runs.
    pub verdict: Verdict,
    /// Which part of the report lists it.
    pub section: Section,
    /// The job's key it concerns, below `jobs.NAME` (e.g. `output_dir`); empty for the job itself.
    pub key: &'static str,
    /// Where it points.
    pub place: Place,
    /// What check found, complete (a type says here why a problem is only a warning).
    pub message: String,
}

/// What a type's check may use besides the job's spec.
pub struct CheckContext<'a> {
    /// Whether the job is enabled: a disabled job's problems are only warnings.
    pub enabled: bool,
    /// `$CREDENTIALS_DIRECTORY` of the process running check (set under systemd only).
    pub credentials_dir: Option<&'a Path>,
    /// For a path the daemon will not see, the unit setting that hides it, as `SETTING in
    /// UNIT`; `None` for a path the daemon sees as check does.
    pub hidden_by: &'a dyn Fn(&Path) -> Option<String>,
}

/// What a disabled job's problem says after its message: it is then only a warning.
pub const DISABLED: &str = " (the job is disabled)";
