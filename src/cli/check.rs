//! `opsd check`: validates the job file and its drop-ins, prints each job's next fire times,
//! and what the checks of each job found, with warnings of paths the unit hides.

use super::job_file::load_config;
use super::show::shown_path;
use super::table::table_cell;
use crate::config::sandbox::Sandbox;
use crate::config::{self, Config};
use anyhow::Context;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Loads the job file and checks it; exit 0 when nothing would fail, else 1.
pub(super) fn run(job_file: &Path, next: usize) -> anyhow::Result<ExitCode> {
    let cfg = load_config(job_file)?;
    check(&cfg, next)
}

/// Runs `opsd check` on a loaded file: the outside checks first, so that the header can say
/// what the exit code says, then the jobs and what the checks found.
fn check(cfg: &Config, next: usize) -> anyhow::Result<ExitCode> {
    let mut findings = Vec::new();
    let mut texts = Texts::default();
    let preflights = check_preflights(cfg, &mut findings)?;
    let geoip = check_geoip_jobs(cfg, &mut texts, &mut findings)?;
    let env_files = check_env_files(cfg, &mut texts, &mut findings)?;
    let ok = preflights && geoip && env_files;
    let mut warnings = Vec::new();
    check_hidden_paths(cfg, &Sandbox::shipped(), &mut texts, &mut warnings);
    check_hidden_aws_files(cfg, &Sandbox::shipped(), &mut warnings);
    print_check(cfg, next, ok);
    for line in findings {
        println!("{line}");
    }
    if !warnings.is_empty() {
        println!();
        for line in &warnings {
            println!("{line}");
        }
        println!(
            "\n{} warning(s) about what the daemon cannot see; warnings do not change the exit \
             code ({})",
            warnings.len(),
            if ok { "0" } else { "1, for the errors above" }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs each job's preflight (EC2 credentials) and adds what it found to `out`; false if any
/// failed.
fn check_preflights(cfg: &Config, out: &mut Vec<String>) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut ok = true;
    let mut first = true;
    for job in cfg.jobs.values() {
        let line = match rt.block_on(job.job.preflight()) {
            Ok(None) => continue,
            Ok(Some(what)) => what,
            Err(why) => {
                ok = false;
                why
            }
        };
        if std::mem::take(&mut first) {
            out.push(String::new());
        }
        out.push(format!("{}: {line}", job.name));
    }
    Ok(ok)
}

/// Says for each geoip job whether its license key and output directory are there, with the
/// file, line and key of a problem; false when one would fail every run of an enabled job.
fn check_geoip_jobs(
    cfg: &Config,
    texts: &mut Texts,
    out: &mut Vec<String>,
) -> anyhow::Result<bool> {
    use crate::jobs::geoip::preflight::{preflight, Severity};
    let specs: Vec<(&crate::config::JobConfig, &crate::jobs::geoip::GeoipSpec)> = cfg
        .jobs
        .values()
        .filter_map(|j| match &j.job {
            crate::jobs::JobType::Geoip(spec) => Some((&**j, spec)),
            _ => None,
        })
        .collect();
    if specs.is_empty() {
        return Ok(true);
    }
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let mut ok = true;
    out.push(String::new());
    for (job, spec) in specs {
        for f in preflight(spec, credentials.as_deref()) {
            let (label, suffix) = match f.severity {
                Severity::Ok => {
                    out.push(format!("{}: {}: {}", job.name, f.key, f.message));
                    continue;
                }
                Severity::Error if job.enabled => {
                    ok = false;
                    ("error", "")
                }
                Severity::Error | Severity::Warning if !job.enabled => {
                    ("warning", " (the job is disabled)")
                }
                Severity::Error | Severity::Warning => ("warning", ""),
            };
            let key = format!("jobs.{}.{}", job.name, f.key);
            let at = texts.locate(job, f.span)?;
            out.push(format!("{at}: `{key}`: {label}: {}{suffix}", f.message));
        }
    }
    Ok(ok)
}

/// Reads each command job's `env_file` as a run would: OK with its number of variables, or
/// the problem (never a value) at the job's `env_file` key; false when one would fail every
/// run of an enabled job. A file check may not read (not root) is only a warning.
fn check_env_files(cfg: &Config, texts: &mut Texts, out: &mut Vec<String>) -> anyhow::Result<bool> {
    use crate::process::env::{read_env_file, EnvFileError};
    let mut ok = true;
    let mut first = true;
    for job in cfg.jobs.values() {
        let crate::jobs::JobType::Command(spec) = &job.job else {
            continue;
        };
        let (Some(key), Some((path, optional))) = (&spec.env_file, spec.env_file_path()) else {
            continue;
        };
        if std::mem::take(&mut first) {
            out.push(String::new());
        }
        let e = match read_env_file(&path, optional) {
            Ok(vars) if vars.is_empty() && optional && !path.exists() => {
                out.push(format!(
                    "{}: env_file: {} does not exist (optional: runs get none)",
                    job.name,
                    shown_path(&path)
                ));
                continue;
            }
            Ok(vars) => {
                out.push(format!(
                    "{}: env_file: OK ({}, {} variable(s))",
                    job.name,
                    shown_path(&path),
                    vars.len()
                ));
                continue;
            }
            Err(e) => e,
        };
        let denied = matches!(&e, EnvFileError::Read { source, .. }
            if source.kind() == ErrorKind::PermissionDenied);
        let (label, suffix) = if denied {
            ("warning", " (the daemon reads it as root)")
        } else if !job.enabled {
            ("warning", " (the job is disabled)")
        } else {
            ok = false;
            ("error", "; every run fails until it is fixed")
        };
        let at = texts.locate(job, Some(key.span()))?;
        out.push(format!(
            "{at}: `jobs.{}.env_file`: {label}: {e}{suffix}",
            job.name
        ));
    }
    Ok(ok)
}

/// The text of each job file `opsd check` looked into, read once, to turn spans into lines.
#[derive(Debug, Default)]
struct Texts(std::collections::BTreeMap<PathBuf, String>);

impl Texts {
    /// `FILE:LINE:COL` of `span` in the file `job` is defined in; the job's name when there
    /// is no span.
    fn locate(
        &mut self,
        job: &config::JobConfig,
        span: Option<std::ops::Range<usize>>,
    ) -> anyhow::Result<String> {
        let Some(span) = span else {
            return Ok(job.name.clone());
        };
        let text = match self.0.entry(job.file.to_path_buf()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let text = std::fs::read_to_string(&job.file).with_context(|| {
                    format!("{}: cannot read configuration", shown_path(&job.file))
                })?;
                e.insert(text)
            }
        };
        let (line, column) = config::line_col(text, span.start);
        Ok(format!("{}:{line}:{column}", shown_path(&job.file)))
    }
}

/// Warns, for each path a job needs ([`config::needs::files_needed`]) and each alert program,
/// when the shipped unit hides it from the daemon: check sees it, the daemon will not.
fn check_hidden_paths(cfg: &Config, sandbox: &Sandbox, texts: &mut Texts, out: &mut Vec<String>) {
    for job in cfg.jobs.values() {
        for needed in config::needs::files_needed(job) {
            let problem = match sandbox.hiding(&needed.path) {
                Some(hiding) => format!(
                    "{} is hidden from the daemon by {} in {}; {}",
                    needed.written,
                    hiding.setting,
                    config::sandbox::UNIT_NAME,
                    hiding.advice
                ),
                None => match needed
                    .written_to
                    .then(|| sandbox.read_only(&needed.path))
                    .flatten()
                {
                    Some(why) => format!("{}: {why}", needed.written),
                    None => continue,
                },
            };
            // The file was read a moment ago; if it went, the job's name still says which.
            let at = texts
                .locate(job, needed.span.clone())
                .unwrap_or_else(|_| job.name.clone());
            out.push(format!(
                "{at}: `jobs.{}.{}`: warning: {problem}",
                job.name, needed.key
            ));
        }
    }
    for sink in cfg.alerts.values() {
        let config::SinkKind::Command(c) = &sink.kind else {
            continue;
        };
        let program = match &c.command {
            crate::jobs::command::CommandLine::Argv(argv) => argv.first().map(String::as_str),
            crate::jobs::command::CommandLine::Shell(line) => line.split_whitespace().next(),
        };
        let Some(program) = program.map(Path::new).filter(|p| p.is_absolute()) else {
            continue;
        };
        if let Some(hiding) = sandbox.hiding(program) {
            out.push(format!(
                "{}: `alerts.{}.command`: warning: {} is hidden from the daemon by {} in {}; {}",
                shown_path(&cfg.path),
                sink.name,
                shown_path(program),
                hiding.setting,
                config::sandbox::UNIT_NAME,
                hiding.advice
            ));
        }
    }
}

/// Warns, for each ec2 job, when the AWS shared credentials or config file the SDK reads for
/// the user running check (`$AWS_SHARED_CREDENTIALS_FILE`, `$AWS_CONFIG_FILE`, else
/// `~/.aws/credentials` and `~/.aws/config`) is one the unit hides: `credentials: OK` above
/// then holds for check and not for the daemon.
fn check_hidden_aws_files(cfg: &Config, sandbox: &Sandbox, out: &mut Vec<String>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(named) => Some((PathBuf::from(named), format!("${var}"))),
        None => home
            .as_ref()
            .map(|h| h.join(".aws").join(default))
            .filter(|p| p.exists())
            .map(|p| (p, "the default".to_string())),
    };
    let files: Vec<(PathBuf, String)> = [
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        file("AWS_CONFIG_FILE", "config"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for job in cfg.jobs.values() {
        if !matches!(job.job, crate::jobs::JobType::Ec2(_)) {
            continue;
        }
        for (path, why) in &files {
            let Some(hiding) = sandbox.hiding(path) else {
                continue;
            };
            out.push(format!(
                "{}: `jobs.{}`: warning: the AWS file the credential chain reads here ({why}), {}, is hidden \
                 from the daemon by {} in {}, so what check found is not what the daemon will \
                 find; give the daemon its own credentials: an EnvironmentFile= drop-in (0600 \
                 root), LoadCredential= with AWS_SHARED_CREDENTIALS_FILE under \
                 $CREDENTIALS_DIRECTORY, or an instance profile (docs/ec2.md)",
                shown_path(&job.file),
                job.name,
                shown_path(path),
                hiding.setting,
                config::sandbox::UNIT_NAME,
            ));
        }
    }
}

/// Prints the header (`OK` only when `ok`, as the exit code), then each job with its schedule,
/// zone and next fire times (local and UTC).
fn print_check(cfg: &Config, next: usize, ok: bool) {
    let path = shown_path(&cfg.path);
    match (ok, cfg.jobs.len()) {
        (true, 0) => {
            println!("{path}: OK, no jobs: nothing will run until a [jobs.NAME] section is added")
        }
        (true, n) => println!("{path}: OK, {n} job(s)"),
        (false, n) => println!("{path}: {n} job(s), FAILED: the problems are listed below"),
    }
    for file in &cfg.files {
        let n = cfg.jobs.values().filter(|j| *j.file == **file).count();
        println!("  read {} ({n} job(s))", shown_path(file));
    }
    for (file, why) in &cfg.skipped {
        println!("  skipped {} ({why})", file.display());
    }
    if cfg.files.len() == 1 {
        println!(
            "  (no {}/*.toml files)",
            shown_path(&config::drop_in_dir(&cfg.path))
        );
    }
    let now = chrono::Utc::now();
    for job in cfg.jobs.values() {
        let state = if job.enabled { "" } else { " (disabled)" };
        match &job.schedule {
            None => println!(
                "\n{} [{}]{state}: runs continuously",
                job.name,
                job.job.type_name()
            ),
            Some(s) => {
                println!(
                    "\n{} [{}]{state}: \"{}\" in {}",
                    job.name,
                    job.job.type_name(),
                    table_cell(&s.to_string()),
                    s.timezone()
                );
                if s.is_start() {
                    println!("  once when the daemon starts");
                }
                let mut t = now;
                for _ in 0..next {
                    let Some(n) = s.next_after(t) else { break };
                    let local = n.with_timezone(&s.timezone());
                    println!(
                        "  {}  ({} UTC)",
                        local.format("%Y-%m-%d %H:%M:%S %Z (%a)"),
                        n.format("%Y-%m-%d %H:%M:%S")
                    );
                    t = n;
                }
            }
        }
    }
}
