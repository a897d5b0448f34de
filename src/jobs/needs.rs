//! The paths a job needs to find when it runs, each with the key that names it, as the job
//! types list them ([`super::kind::JobSpec::needs`]).

use std::ops::Range;
use std::path::PathBuf;

/// One path a job needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The key that names it, below `jobs.NAME`.
    pub key: &'static str,
    /// The path (for a glob, the directory part before its first wildcard).
    pub path: PathBuf,
    /// The value as the file writes it (the glob itself, the program with `-` cut).
    pub written: String,
    /// Where the key's value is in the job's file, when it has one.
    pub span: Option<Range<usize>>,
    /// Whether the job writes there (a geoip `output_dir`), not only reads.
    pub written_to: bool,
}

/// The paths a job needs, in the order its type lists them; relative ones are left out.
#[derive(Debug, Default)]
pub struct Needs(Vec<Needed>);

impl Needs {
    /// Adds `path` (named by `key`) when it is absolute, shown as `written` when given.
    pub fn add(
        &mut self,
        key: &'static str,
        path: PathBuf,
        written: Option<&str>,
        span: Option<Range<usize>>,
    ) {
        self.push(key, path, written, span, false);
    }

    /// As [`Needs::add`], for a directory the job writes to.
    pub fn add_written_to(&mut self, key: &'static str, path: PathBuf, span: Option<Range<usize>>) {
        self.push(key, path, None, span, true);
    }

    fn push(
        &mut self,
        key: &'static str,
        path: PathBuf,
        written: Option<&str>,
        span: Option<Range<usize>>,
        written_to: bool,
    ) {
        if path.is_absolute() {
            let written = written.map_or_else(|| path.display().to_string(), str::to_string);
            self.0.push(Needed {
                key,
                path,
                written,
                span,
                written_to,
            });
        }
    }

    /// The paths added.
    pub fn into_vec(self) -> Vec<Needed> {
        self.0
    }
}
