//! The `apache_log` type's row in the job registry: reading its spec, naming the files its globs
//! match before it starts, watching them continuously, and the paths it needs.

use super::ApacheLogSpec;
use crate::field::{struct_fields, FieldError};
use crate::jobs::kind::{BoxFuture, JobKind, JobSpec, SpecTable};
use crate::jobs::needs::Needs;
use crate::jobs::{JobType, RunContext, RunReport};
use std::path::PathBuf;

/// The `apache_log` job type, which runs continuously from start.
pub static KIND: JobKind = JobKind {
    name: "apache_log",
    continuous: true,
    fields: struct_fields::<ApacheLogSpec>,
    parse,
};

fn parse(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<JobType> {
    let spec: ApacheLogSpec = table.read(errors)?;
    errors.extend(spec.validate(table.prefix));
    Some(JobType::ApacheLog(spec))
}

impl JobSpec for ApacheLogSpec {
    fn kind(&self) -> &'static JobKind {
        &KIND
    }

    /// The files the globs match today.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async { Ok(Some(self.files_today())) })
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport> {
        Box::pin(super::run(self, ctx))
    }

    /// The directory of each glob before its first wildcard, and the Apache program.
    fn needs(&self, out: &mut Needs) {
        for pattern in self.paths.get_ref() {
            let base = glob_base(pattern);
            out.add("paths", base, Some(pattern), Some(self.paths.span()));
        }
        if let Some(bin) = &self.apache_bin {
            out.add("apache_bin", bin.clone(), None, None);
        }
    }
}

/// The part of a glob before its first wildcard, cut back to a whole directory:
/// `/home/*/logs/error.log` gives `/home`.
fn glob_base(pattern: &str) -> PathBuf {
    match pattern.find(['*', '?', '[']) {
        None => PathBuf::from(pattern),
        Some(i) => match pattern[..i].rsplit_once('/') {
            Some(("", _)) | None => PathBuf::from("/"),
            Some((dir, _)) => PathBuf::from(dir),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_globs_base_is_its_directory_before_the_first_wildcard() {
        assert_eq!(glob_base("/home/*/error.log"), Path::new("/home"));
        assert_eq!(
            glob_base("/var/log/apache2/*error.log"),
            Path::new("/var/log/apache2")
        );
        assert_eq!(glob_base("/tmp/a.log"), Path::new("/tmp/a.log"));
    }
}
