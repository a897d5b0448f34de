//! The files and directories a job needs to find when it runs, each with the key that names
//! it: what `opsd check` compares with the places the unit's sandbox hides.

use super::JobConfig;
pub use crate::jobs::needs::Needed;
use crate::jobs::needs::Needs;

/// The absolute paths `job` names, each with its key, as its type lists them
/// ([`crate::jobs::JobSpec::needs`]): programs and every absolute argument of an argv (the
/// script of `["bash", "/home/u/job.sh"]`), directories, key and environment files, logs, and
/// the home of the `user` a run runs as (its `HOME`). A bare program name is looked up in
/// `PATH` at run time and is not listed.
pub fn files_needed(job: &JobConfig) -> Vec<Needed> {
    let mut out = Needs::default();
    job.job.spec().needs(&mut out);
    out.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

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
