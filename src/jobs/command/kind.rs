//! The `command` type's row in the job registry: reading its spec from a job's table (the `env`
//! table checked key by key, the job's zone as a run's `TZ`), running it, and the paths it needs.

use super::{CommandLine, CommandSpec};
use crate::field::{shown, struct_fields, FieldError};
use crate::jobs::check::{CheckContext, Finding};
use crate::jobs::kind::{BoxFuture, JobKind, JobSpec, SpecTable};
use crate::jobs::needs::Needs;
use crate::jobs::{JobType, RunContext, RunReport};
use std::path::PathBuf;
use toml::de::DeValue;
use toml::Spanned;

/// The `command` job type.
pub static KIND: JobKind = JobKind {
    name: "command",
    continuous: false,
    fields: struct_fields::<CommandSpec>,
    parse,
};

/// Directories the unit's `PrivateTmp=` gives the daemon afresh: a run may start in one (it
/// exists, empty), though not in a directory below it that the host has.
const PRIVATE_TMP: &[&str] = &["/tmp", "/var/tmp"];

fn parse(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<JobType> {
    let value = checked_env(table.value, table.prefix, errors);
    let mut spec: CommandSpec = table.read_from(&value, errors)?;
    errors.extend(spec.validate(table.prefix));
    spec.timezone = table.timezone.name().to_string();
    Some(JobType::Command(spec))
}

impl JobSpec for CommandSpec {
    fn kind(&self) -> &'static JobKind {
        &KIND
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport> {
        Box::pin(super::run(self, ctx))
    }

    /// The program and every absolute argument of an argv (the script of
    /// `["bash", "/home/u/job.sh"]`), the working directory, the home of the `user` a run runs
    /// as (its `HOME`) and the env file. A bare program name is looked up in `PATH` at run
    /// time and is not listed.
    fn needs(&self, out: &mut Needs) {
        let paths: Vec<String> = match self.command.get_ref() {
            CommandLine::Argv(argv) => argv.clone(),
            shell => shell.program().map(str::to_string).into_iter().collect(),
        };
        for p in paths {
            out.add("command", p.into(), None, Some(self.command.span()));
        }
        if let Some(dir) = &self.working_dir {
            let path = dir.get_ref().clone();
            if !PRIVATE_TMP.iter().any(|t| path == std::path::Path::new(t)) {
                out.add("working_dir", path, None, Some(dir.span()));
            }
        }
        if let Some(user) = &self.user {
            if let Some(u) = crate::account::user(user.get_ref()) {
                let written = format!(
                    "{}, the home of user {} and so the run's HOME,",
                    u.dir.display(),
                    u.name
                );
                out.add("user", u.dir, Some(&written), Some(user.span()));
            }
        }
        if let (Some(file), Some((path, _))) = (&self.env_file, self.env_file_path()) {
            out.add("env_file", path, None, Some(file.span()));
        }
    }

    fn check(&self, ctx: &CheckContext) -> Vec<Finding> {
        super::check::check(self, ctx)
    }

    /// Its `env_file`, read as a run reads it (a FIFO is refused without waiting for a writer).
    fn unusable_files(&self) -> Vec<(PathBuf, String)> {
        let Some((path, optional)) = self.env_file_path() else {
            return Vec::new();
        };
        match crate::process::env::read_env_file(&path, optional) {
            Ok(_) => Vec::new(),
            Err(e) => vec![(path, e.to_string())],
        }
    }
}

/// Checks a command job's `env` table here rather than through serde, whose errors have no
/// span for a key and echo a value: each name must be one a program can be given (not
/// `PATH=/evil:`, not `OPSD_JOB`), each value a string, and no value (often a secret) is ever
/// put in a message. Returns the job's table with `env` left out when it has a problem, so
/// that serde does not report it again.
fn checked_env<'a>(
    value: &Spanned<DeValue<'a>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Spanned<DeValue<'a>> {
    let key = format!("{prefix}.env");
    let Some(env) = value.get_ref().as_table().and_then(|t| t.get("env")) else {
        return value.clone();
    };
    let before = errors.len();
    match env.get_ref().as_table() {
        None => errors.push(FieldError::new(
            env.span(),
            &key,
            "`env` must be a table of NAME = \"value\" (e.g. env = { LANG = \"C\" })",
        )),
        Some(table) => {
            for (name, v) in table {
                if let Some(problem) = env_name_problem(name.get_ref()) {
                    errors.push(FieldError::new(name.span(), &key, problem));
                }
                if !matches!(v.get_ref(), DeValue::String(_)) {
                    errors.push(FieldError::new(
                        v.span(),
                        format!("{key}.{}", name.get_ref()),
                        "an env value must be a string, in quotes (the value is not shown: it \
                         may be a secret)",
                    ));
                }
            }
        }
    }
    let mut rest = value.clone();
    if errors.len() > before {
        if let DeValue::Table(t) = rest.get_mut() {
            t.remove("env");
        }
    }
    rest
}

/// Why `name` cannot be an `env` key: one opsd sets itself or that holds `=` (as for
/// `pass_env`), or one that is not a variable name (letters, digits and `_`, not starting
/// with a digit), which a shell could not read and systemd's `Environment=` refuses.
fn env_name_problem(name: &str) -> Option<String> {
    crate::process::env::name_problem(name).or_else(|| {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        (!valid).then(|| {
            format!(
                "{} is not an environment variable name (letters, digits and '_', not \
                 starting with a digit)",
                shown(name)
            )
        })
    })
}
