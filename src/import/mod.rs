//! `opsd import`: crontabs, `/etc/cron.d` files and anacron setups turned into `command` jobs
//! for a jobs.d drop-in. Every line is either mapped to a job that fires when cron would have
//! run it, or reported with its file, line and why; nothing is dropped silently. A leaf-ish
//! library: it reads text and renders TOML, using only [`crate::schedule`] (to check each
//! expression and to verify a rezone), [`crate::field`] (the job-name rule) and
//! [`crate::account`] (a user's home, where cron started the command).
//!
//! - `cron_field.rs` and `times.rs`: the time fields as Debian's cron reads them, and the
//!   expression croner reads the same way
//! - `crontab.rs`: the lines of a crontab or cron.d file (variables, `%`, the user field)
//! - `anacron.rs`: anacrontab lines and the scripts of `/etc/cron.daily` and the like
//! - `rezone.rs`: a hand-converted schedule moved to its real zone, when exactly equivalent
//! - `name.rs`: job names; `render.rs`: the TOML

mod anacron;
mod cron_field;
mod crontab;
mod name;
mod render;
mod rezone;
mod times;

pub use anacron::{import_anacrontab, run_parts_name, Script};
pub use crontab::import_crontab;
pub use render::{render, report_text};

use chrono_tz::Tz;

/// Where a line came from: the file as named on the command line, the line number (from 1)
/// and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file, as given.
    pub file: String,
    /// The line number, from 1; 0 for a whole file.
    pub line: usize,
    /// The line's text.
    pub text: String,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            // A whole file (a run-parts script), not one of its lines.
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// What an imported job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A line for `/bin/sh -c` (cron's default shell).
    Shell(String),
    /// An argv: another `SHELL` with `-c`, or a script run directly.
    Argv(Vec<String>),
}

/// One imported job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its unique, valid name.
    pub name: String,
    /// The line it comes from.
    pub source: Source,
    /// The schedule expression opsd runs.
    pub schedule: String,
    /// The zone the schedule is read in.
    pub timezone: Tz,
    /// The user it runs as (the cron.d user field, or `--user`).
    pub user: Option<String>,
    /// What it runs.
    pub command: Command,
    /// The crontab's variables set above the line, in order.
    pub env: Vec<(String, String)>,
    /// An anacron job (anacron's own lines and the cron.daily-style scripts): `catch_up =
    /// "once"`, and `overlap = "skip"`, since anacron never runs one job twice at once (cron's
    /// jobs get `overlap = "allow"`: cron starts a run even while the last one goes on).
    pub anacron: bool,
    /// anacron's `RANDOM_DELAY` in minutes, written as `jitter`.
    pub jitter_minutes: Option<u32>,
    /// Comment lines written above the job (rezone, `@reboot`, `%`).
    pub notes: Vec<String>,
    /// The `MAILTO` in force for the line, if any.
    pub mailto: Option<String>,
    /// The directory it starts in: cron's `$HOME` (the crontab's `HOME=`, else the user's
    /// passwd home); `None` when neither is known.
    pub working_dir: Option<String>,
}

/// A line not mapped, with why.
#[derive(Debug, Clone)]
pub struct Report {
    /// The line.
    pub source: Source,
    /// Why it was not mapped.
    pub why: String,
}

/// A note on a line that was mapped (a rezone kept in the original zone, a variable).
#[derive(Debug, Clone)]
pub struct Note {
    /// The line.
    pub source: Source,
    /// What the reader should know.
    pub text: String,
}

/// How to read the input.
#[derive(Debug, Clone)]
pub struct Options {
    /// The zone the cron daemon ran in (`--zone`, else the machine's).
    pub zone: Tz,
    /// The zone to rewrite schedules into (`--rezone`).
    pub rezone: Option<Tz>,
    /// The user of a user crontab (`--user`); cron.d lines name their own.
    pub user: Option<String>,
    /// True for `/etc/crontab` and cron.d files: a user field after the times.
    pub user_field: bool,
    /// When the rezone comparison starts (now, in practice).
    pub start: chrono::DateTime<chrono::Utc>,
}

/// Everything one `opsd import` found: jobs, unmapped lines, notes, and the MAILTO addresses.
#[derive(Debug, Default)]
pub struct Import {
    /// The jobs, in input order.
    pub jobs: Vec<Job>,
    /// Lines not mapped.
    pub reports: Vec<Report>,
    /// Things to know about mapped lines.
    pub notes: Vec<Note>,
    /// Each `MAILTO` address and where it was set.
    pub mailtos: Vec<(String, Source)>,
    names: name::Names,
}

impl Import {
    /// Records that `source` was not mapped, and why.
    fn report(&mut self, source: &Source, why: impl Into<String>) {
        self.reports.push(Report {
            source: source.clone(),
            why: why.into(),
        });
    }

    /// Records that the whole file `file` was not read, and why.
    pub fn report_file(&mut self, file: &str, why: impl Into<String>) {
        let source = Source {
            file: file.to_string(),
            line: 0,
            text: String::new(),
        };
        self.report(&source, why);
    }

    /// Records a note on the mapped line `source`, once (the scripts of one run-parts line
    /// share their line's note).
    fn note(&mut self, source: &Source, text: impl Into<String>) {
        let text = text.into();
        if !self
            .notes
            .iter()
            .any(|n| n.source == *source && n.text == text)
        {
            self.notes.push(Note {
                source: source.clone(),
                text,
            });
        }
    }
}
