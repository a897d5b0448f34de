//! The files and directories a job needs to find when it runs, each with the key that names
//! it: what `opsd check` compares with the places the unit's sandbox hides.

use super::JobConfig;
use crate::jobs::command::CommandLine;
use crate::jobs::JobType;
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

/// Directories the unit's `PrivateTmp=` gives the daemon afresh: a run may start in one (it
/// exists, empty), though not in a directory below it that the host has.
const PRIVATE_TMP: &[&str] = &["/tmp", "/var/tmp"];

/// The absolute paths `job` names: programs and every absolute argument of an argv (the
/// script of `["bash", "/home/u/job.sh"]`), directories, key and environment files, logs, and
/// the home of the `user` a run runs as (its `HOME`). A bare program name is looked up in
/// `PATH` at run time and is not listed.
pub fn files_needed(job: &JobConfig) -> Vec<Needed> {
    let mut out = Vec::new();
    match &job.job {
        JobType::Command(spec) => {
            let paths: Vec<String> = match spec.command.get_ref() {
                CommandLine::Argv(argv) => argv.clone(),
                CommandLine::Shell(line) => line
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            };
            for p in paths {
                add(
                    &mut out,
                    "command",
                    p.into(),
                    None,
                    Some(spec.command.span()),
                );
            }
            if let Some(dir) = &spec.working_dir {
                let path = dir.get_ref().clone();
                if !PRIVATE_TMP.iter().any(|t| path == std::path::Path::new(t)) {
                    add(&mut out, "working_dir", path, None, Some(dir.span()));
                }
            }
            if let Some(user) = &spec.user {
                if let Some(u) = crate::account::user(user.get_ref()) {
                    let written = format!(
                        "{}, the home of user {} and so the run's HOME,",
                        u.dir.display(),
                        u.name
                    );
                    add(&mut out, "user", u.dir, Some(&written), Some(user.span()));
                }
            }
            if let (Some(file), Some((path, _))) = (&spec.env_file, spec.env_file_path()) {
                add(&mut out, "env_file", path, None, Some(file.span()));
            }
        }
        JobType::Geoip(spec) => {
            if let Some(file) = &spec.license_key_file {
                let path = file.get_ref().clone();
                add(&mut out, "license_key_file", path, None, Some(file.span()));
            }
            let dir = &spec.output_dir;
            add(
                &mut out,
                "output_dir",
                dir.get_ref().clone(),
                None,
                Some(dir.span()),
            );
            if let Some(after) = &spec.after {
                if let Some(program) = after.get_ref().first() {
                    add(&mut out, "after", program.into(), None, Some(after.span()));
                }
            }
        }
        JobType::ApacheLog(spec) => {
            for pattern in spec.paths.get_ref() {
                let base = glob_base(pattern);
                add(
                    &mut out,
                    "paths",
                    base,
                    Some(pattern),
                    Some(spec.paths.span()),
                );
            }
            if let Some(bin) = &spec.apache_bin {
                add(&mut out, "apache_bin", bin.clone(), None, None);
            }
        }
        JobType::Ec2(_) => {}
    }
    out
}

/// Adds `path` to `out` when it is absolute, shown as `written` when given.
fn add(
    out: &mut Vec<Needed>,
    key: &'static str,
    path: PathBuf,
    written: Option<&str>,
    span: Option<Range<usize>>,
) {
    if path.is_absolute() {
        let written = written.map_or_else(|| path.display().to_string(), str::to_string);
        out.push(Needed {
            key,
            path,
            written,
            span,
            written_to: key == "output_dir",
        });
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

    #[test]
    fn each_absolute_path_a_job_names_is_listed_with_its_key() {
        let text = r#"
[jobs.a]
type = "command"
schedule = "@daily"
command = "/root/bin/backup --all /home/not-a-program"
working_dir = "/home/ops"
env_file = "-/tmp/a.env"

[jobs.b]
type = "command"
schedule = "@daily"
command = ["backup"]
working_dir = "/tmp"

[jobs.c]
type = "command"
schedule = "@daily"
command = ["bash", "-e", "/home/u/job.sh"]
working_dir = "/tmp/sub"
user = "root"
"#;
        let cfg = crate::config::parse(Path::new("jobs.toml"), text).expect("valid");
        let a: Vec<(&str, PathBuf)> = files_needed(&cfg.jobs["a"])
            .into_iter()
            .map(|n| (n.key, n.path))
            .collect();
        assert_eq!(
            a,
            [
                ("command", "/root/bin/backup".into()),
                ("working_dir", "/home/ops".into()),
                ("env_file", "/tmp/a.env".into()),
            ]
        );
        assert!(files_needed(&cfg.jobs["b"]).is_empty());
        let c: Vec<(&str, PathBuf, String)> = files_needed(&cfg.jobs["c"])
            .into_iter()
            .map(|n| (n.key, n.path, n.written))
            .collect();
        assert_eq!(
            c,
            [
                ("command", "/home/u/job.sh".into(), "/home/u/job.sh".into()),
                ("working_dir", "/tmp/sub".into(), "/tmp/sub".into()),
                (
                    "user",
                    "/root".into(),
                    "/root, the home of user root and so the run's HOME,".into()
                ),
            ]
        );
    }
}
