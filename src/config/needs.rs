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
    /// Where the key's value is in the job's file, when it has one.
    pub span: Option<Range<usize>>,
}

/// The absolute paths `job` names: programs, directories, key and environment files, logs.
/// A bare program name is looked up in `PATH` at run time and is not listed.
pub fn files_needed(job: &JobConfig) -> Vec<Needed> {
    let mut out = Vec::new();
    let mut add = |key, path: PathBuf, span: Option<Range<usize>>| {
        if path.is_absolute() {
            out.push(Needed { key, path, span });
        }
    };
    match &job.job {
        JobType::Command(spec) => {
            let program = match spec.command.get_ref() {
                CommandLine::Argv(argv) => argv.first().cloned(),
                CommandLine::Shell(line) => line.split_whitespace().next().map(str::to_string),
            };
            if let Some(p) = program {
                add("command", p.into(), Some(spec.command.span()));
            }
            if let Some(dir) = &spec.working_dir {
                add("working_dir", dir.get_ref().clone(), Some(dir.span()));
            }
            if let (Some(file), Some((path, _))) = (&spec.env_file, spec.env_file_path()) {
                add("env_file", path, Some(file.span()));
            }
        }
        JobType::Geoip(spec) => {
            if let Some(file) = &spec.license_key_file {
                add(
                    "license_key_file",
                    file.get_ref().clone(),
                    Some(file.span()),
                );
            }
            add(
                "output_dir",
                spec.output_dir.get_ref().clone(),
                Some(spec.output_dir.span()),
            );
            if let Some(program) = spec.after.as_ref().and_then(|a| a.get_ref().first()) {
                let span = spec.after.as_ref().map(|a| a.span());
                add("after", program.into(), span);
            }
        }
        JobType::ApacheLog(spec) => {
            for pattern in spec.paths.get_ref() {
                add("paths", glob_base(pattern), Some(spec.paths.span()));
            }
            if let Some(bin) = &spec.apache_bin {
                add("apache_bin", bin.clone(), None);
            }
        }
        JobType::Ec2(_) => {}
    }
    out
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
command = "/root/bin/backup --all"
working_dir = "/home/ops"
env_file = "-/tmp/a.env"

[jobs.b]
type = "command"
schedule = "@daily"
command = ["backup"]
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
    }
}
