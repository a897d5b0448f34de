//! `opsd check` for a `command` job: its `env_file` read as a run would read it, OK with its
//! number of variables or the problem (never a value) at the `env_file` key.

use super::CommandSpec;
use crate::jobs::check::{CheckContext, Finding, Place, Section, Verdict, DISABLED};
use crate::process::env::{read_env_file, EnvFileError};
use std::io::ErrorKind;

/// The `env_file` of `spec`, when it has one: an error when every run of the enabled job
/// would fail; a file check may not read (not root) is only a warning.
pub fn check(spec: &CommandSpec, ctx: &CheckContext) -> Vec<Finding> {
    let (Some(key), Some((path, optional))) = (&spec.env_file, spec.env_file_path()) else {
        return Vec::new();
    };
    let shown = crate::escape::control(&path.to_string_lossy()).into_owned();
    let (verdict, place, message) = match read_env_file(&path, optional) {
        Ok(vars) if vars.is_empty() && optional && !path.exists() => (
            Verdict::Ok,
            Place::Job,
            format!("{shown} does not exist (optional: runs get none)"),
        ),
        Ok(vars) => (
            Verdict::Ok,
            Place::Job,
            format!("OK ({shown}, {} variable(s))", vars.len()),
        ),
        Err(e) => {
            let denied = matches!(&e, EnvFileError::Read { source, .. }
                if source.kind() == ErrorKind::PermissionDenied);
            let (verdict, suffix) = if denied {
                (Verdict::Warning, " (the daemon reads it as root)")
            } else if !ctx.enabled {
                (Verdict::Warning, DISABLED)
            } else {
                (Verdict::Error, "; every run fails until it is fixed")
            };
            (verdict, Place::Span(key.span()), format!("{e}{suffix}"))
        }
    };
    vec![Finding {
        verdict,
        section: Section::Environment,
        key: "env_file",
        place,
        message,
    }]
}
