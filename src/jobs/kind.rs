//! The registry of job types: one [`JobKind`] row per type ([`super::REGISTRY`]), which `config`
//! consults to parse a job without naming any type, and the [`JobSpec`] trait each type's spec
//! implements to be run.
//!
//! Two faces, because they answer different questions. Before a job is parsed there is no spec
//! to ask, only a `type = "..."` string: the row (a plain struct of a name, a flag and two
//! function pointers, in a `static` in the type's own folder) is what can be looked up by that
//! string. Once parsed, the spec itself is asked to run, preflight and list what it needs,
//! through a trait object ([`super::JobType::as_spec`]), so that [`super::JobType`] holds one
//! `match`, not one per method. Adding a type: its folder with a `KIND` row and a `JobSpec`
//! impl, one line in [`super::REGISTRY`], one variant of [`super::JobType`].

use super::check::{CheckContext, Finding};
use super::needs::Needs;
use super::{JobType, RunContext, RunReport};
use crate::field::{de_table, FieldError};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use toml::de::DeValue;
use toml::Spanned;

/// A boxed future that may move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One job type as the configuration sees it.
#[derive(Debug)]
pub struct JobKind {
    /// Its `type = "..."` name.
    pub name: &'static str,
    /// True when its jobs run continuously from start (no `schedule`).
    pub continuous: bool,
    /// The keys of its table beyond the common ones (`struct_fields` of its spec).
    pub fields: fn() -> &'static [&'static str],
    /// Reads and validates its spec from a job's table, adding what is wrong to the errors.
    pub parse: fn(&SpecTable<'_, '_>, &mut Vec<FieldError>) -> Option<JobType>,
}

/// A job's table as handed to its type's [`JobKind::parse`].
#[derive(Debug)]
pub struct SpecTable<'a, 'v> {
    /// The job's table.
    pub value: &'a Spanned<DeValue<'v>>,
    /// The job's key, `jobs.NAME`.
    pub prefix: &'a str,
    /// Known keys that unknown keys of the table look like misspellings of.
    pub misspelt: &'a [&'a str],
    /// The job's zone: its `timezone`, else the defaults'.
    pub timezone: Tz,
}

impl SpecTable<'_, '_> {
    /// Deserializes the spec `T` from the table, each bad key reported ([`de_table`]).
    pub fn read<T: DeserializeOwned>(&self, errors: &mut Vec<FieldError>) -> Option<T> {
        self.read_from(self.value, errors)
    }

    /// As [`SpecTable::read`], from `value`: the table with keys already reported left out.
    pub fn read_from<T: DeserializeOwned>(
        &self,
        value: &Spanned<DeValue<'_>>,
        errors: &mut Vec<FieldError>,
    ) -> Option<T> {
        de_table(value, self.prefix, self.misspelt, errors)
    }
}

/// What a job type's validated spec does.
pub trait JobSpec: Send + Sync {
    /// Its type's row in the registry.
    fn kind(&self) -> &'static JobKind;

    /// Checks what a run will need from outside before the first run comes due:
    /// `Ok(Some(what))` names what was checked, `Ok(None)` means there is nothing to check, and
    /// `Err` says what will make runs fail.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }

    /// Runs the job once; returns promptly after `ctx.cancel` fires. Boxed, so that a run
    /// takes the memory its own type needs, not the largest type's.
    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport>;

    /// Adds the absolute paths a run needs to find (`opsd check` compares them with what the
    /// unit's sandbox hides).
    fn needs(&self, _out: &mut Needs) {}

    /// What `opsd check` can tell about the job's runs beyond its preflight (files a run
    /// reads, keys it needs), as findings `opsd check` renders the same way for every type.
    fn check(&self, _ctx: &CheckContext) -> Vec<Finding> {
        Vec::new()
    }

    /// What makes every run fail as things stand (a file each run reads that is not there or
    /// cannot be read), as `(file, why)`, for the daemon to warn about at start and reload
    /// rather than at the first run. Called on a thread of its own: it may block on a dead
    /// mount.
    fn unusable_files(&self) -> Vec<(PathBuf, String)> {
        Vec::new()
    }
}
