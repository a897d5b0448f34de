//! `opsd apache doctor` and `opsd apache test-rules`: apache's own commands, which may name
//! the `apache_log` job type.

use super::job_file::load_config;
use super::show::shown_path;
use super::ConfigArg;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `opsd apache ...`.
#[derive(Debug, Subcommand)]
pub enum ApacheCommand {
    /// Check this Apache for the 2.4.27+ child-crash recipe (threaded MPM + mod_php + HTTP/2);
    /// exit 0 no recipe, 1 recipe matched, 2 could not run Apache.
    Doctor(DoctorCli),
    /// Print what each rule would match in an error log, and the alerts the watch would send,
    /// without sending any (like fail2ban-regex).
    TestRules {
        #[command(flatten)]
        args: crate::apache::test_rules::TestRulesArgs,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `opsd apache doctor`'s command line: the doctor's flags and the Apache configuration to
/// examine, under a name that cannot be taken for opsd's own job file.
#[derive(Debug, Args)]
pub struct DoctorCli {
    /// The Apache configuration file to examine (Apache's `-f FILE`; default: the one Apache
    /// was built with).
    #[arg(long, value_name = "FILE")]
    pub apache_config: Option<PathBuf>,
    /// Refused with a pointer to --apache-config: `--config` names opsd's job file.
    #[arg(long, short, hide = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub doctor: crate::apache::doctor::DoctorArgs,
}

/// Runs one `opsd apache` subcommand.
pub(super) fn run(command: ApacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApacheCommand::Doctor(args) => doctor(args),
        ApacheCommand::TestRules { args, config } => test_rules(&args, &config.config),
    }
}

/// Runs `opsd apache doctor`, turning `--apache-config FILE` into Apache's `-f FILE`.
fn doctor(cli: DoctorCli) -> anyhow::Result<ExitCode> {
    if let Some(file) = cli.config {
        anyhow::bail!(
            "opsd apache doctor has no --config ({} would be opsd's job file): name the Apache \
             configuration to examine with --apache-config {}",
            file.display(),
            file.display()
        );
    }
    let mut doctor = cli.doctor;
    if let Some(file) = cli.apache_config {
        // Apache reads a relative -f below its ServerRoot, not the current directory.
        let file = std::path::absolute(&file)
            .with_context(|| format!("--apache-config {}", file.display()))?;
        if !file.is_file() {
            anyhow::bail!("--apache-config {}: no such file", file.display());
        }
        let mut args = vec!["-f".to_string(), file.display().to_string()];
        args.append(&mut doctor.args);
        doctor.args = args;
    }
    Ok(crate::apache::doctor::cli(doctor))
}

/// Runs `opsd apache test-rules`: the rules of `--job` (from the job file) or the built-in ones,
/// over the log, printed; exit 0 once the log was read.
fn test_rules(
    args: &crate::apache::test_rules::TestRulesArgs,
    config_path: &Path,
) -> anyhow::Result<ExitCode> {
    let (rules, source) = match &args.job {
        None => (
            crate::apache::rules::builtin_rules(),
            "built-in; --job NAME tests a job's own".to_string(),
        ),
        Some(name) => {
            let cfg = load_config(config_path)?;
            let apache_jobs = || {
                cfg.jobs
                    .values()
                    .filter(|j| matches!(j.spec, crate::jobs::JobType::ApacheLog(_)))
                    .map(|j| j.name.as_str())
            };
            let apache = crate::jobs::apache::KIND.name;
            let Some(job) = cfg.jobs.get(name) else {
                let hint = crate::field::did_you_mean_hint(name, apache_jobs()).unwrap_or_default();
                anyhow::bail!(
                    "{}: no job {name:?}{hint} ({apache} jobs: {})",
                    shown_path(config_path),
                    apache_jobs().collect::<Vec<_>>().join(", ")
                );
            };
            let crate::jobs::JobType::ApacheLog(spec) = &job.spec else {
                let other = job.spec.type_name();
                anyhow::bail!(
                    "{}: job {name:?} is {} {other} job, not {} {apache} job",
                    shown_path(config_path),
                    crate::field::article(other),
                    crate::field::article(apache),
                );
            };
            (
                spec.rules(),
                format!("of job {name} in {}", shown_path(config_path)),
            )
        }
    };
    let report = if args.file == Path::new("-") {
        crate::apache::test_rules::test_rules(rules, std::io::stdin().lock(), &args.file)?
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        crate::apache::test_rules::test_rules(rules, file, &args.file)?
    };
    print!("{}", report.render(&args.file, &source));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn apache_doctor_refuses_config_and_names_apache_config() {
        let cli = Cli::try_parse_from(["opsd", "apache", "doctor", "--config", "/etc/x.conf"])
            .expect("parsed");
        let Command::Apache {
            command: ApacheCommand::Doctor(args),
        } = cli.command
        else {
            panic!("not the doctor: {cli:?}");
        };
        let err = doctor(args).expect_err("--config must be refused");
        assert!(
            err.to_string().contains("--apache-config /etc/x.conf"),
            "{err}"
        );
    }

    /// `test-rules --job` on a job of another type says which type, with its article.
    fn refusal_of(toml: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("jobs.toml");
        std::fs::write(&config, toml).expect("write jobs.toml");
        let log = dir.path().join("error.log");
        std::fs::write(&log, "").expect("write log");
        let cli = Cli::try_parse_from([
            "opsd".as_ref(),
            "apache".as_ref(),
            "test-rules".as_ref(),
            log.as_os_str(),
            "--job".as_ref(),
            "other".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ])
        .expect("parsed");
        let Command::Apache {
            command: ApacheCommand::TestRules { args, .. },
        } = cli.command
        else {
            panic!("not test-rules: {cli:?}");
        };
        let err = test_rules(&args, &config).expect_err("not an apache_log job");
        err.to_string()
    }

    #[test]
    fn test_rules_on_another_type_names_it_with_the_right_article() {
        let ec2 = refusal_of(
            "[jobs.other]\ntype = \"ec2\"\nschedule = \"@daily\"\naction = \"start\"\n\
             region = \"us-east-1\"\ninstance_ids = [\"i-0123456789abcdef0\"]\n",
        );
        assert!(
            ec2.ends_with(": job \"other\" is an ec2 job, not an apache_log job"),
            "{ec2}"
        );
        let command = refusal_of(
            "[jobs.other]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n",
        );
        assert!(
            command.ends_with(": job \"other\" is a command job, not an apache_log job"),
            "{command}"
        );
    }
}
