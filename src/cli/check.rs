//! `opsd check`: validates the job file and its drop-ins, prints each job's next fire times,
//! and what the checks of each job found, with warnings of paths the unit hides.

use super::job_file::load_config;
use super::show::shown_path;
use super::table::table_cell;
use crate::config::sandbox::Sandbox;
use crate::config::{self, Config, JobConfig};
use crate::jobs::check::{CheckContext, Finding, Place, Section, Verdict};
use anyhow::Context;
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
    let sandbox = Sandbox::shipped();
    let mut findings = Vec::new();
    let mut texts = Texts::default();
    let preflights = check_preflights(cfg, &mut findings)?;
    let found = type_checks(cfg, &sandbox);
    let ok = preflights && !found.iter().any(|(_, f)| f.verdict == Verdict::Error);
    for section in [Section::Prerequisites, Section::Environment] {
        let mut first = true;
        for (job, f) in found.iter().filter(|(_, f)| f.section == section) {
            if std::mem::take(&mut first) {
                findings.push(String::new());
            }
            findings.push(finding_line(job, f, &mut texts)?);
        }
    }
    let mut warnings = Vec::new();
    check_hidden_paths(cfg, &sandbox, &mut texts, &mut warnings);
    warnings.extend(metrics_textfile_warning(cfg, &sandbox));
    for (job, f) in found.iter().filter(|(_, f)| f.section == Section::Hidden) {
        warnings.push(finding_line(job, f, &mut texts)?);
    }
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

/// What each job's type checks ([`crate::jobs::JobType::check`]), in job order, with the job.
fn type_checks<'a>(cfg: &'a Config, sandbox: &Sandbox) -> Vec<(&'a JobConfig, Finding)> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let hidden_by = |path: &Path| {
        sandbox
            .hiding(path)
            .map(|h| format!("{} in {}", h.setting, config::sandbox::UNIT_NAME))
    };
    let mut found = Vec::new();
    for job in cfg.jobs.values() {
        let ctx = CheckContext {
            enabled: job.enabled,
            credentials_dir: credentials.as_deref(),
            hidden_by: &hidden_by,
        };
        found.extend(job.spec.check(&ctx).into_iter().map(|f| (&**job, f)));
    }
    found
}

/// One finding as check prints it: `JOB: KEY: MESSAGE` when fine, else `WHERE: `jobs.JOB.KEY`:
/// error|warning: MESSAGE`, `WHERE` being `FILE:LINE:COL`, the file, or the job's name.
fn finding_line(job: &JobConfig, f: &Finding, texts: &mut Texts) -> anyhow::Result<String> {
    let label = match f.verdict {
        Verdict::Ok => return Ok(format!("{}: {}: {}", job.name, f.key, f.message)),
        Verdict::Warning => "warning",
        Verdict::Error => "error",
    };
    let at = match &f.place {
        Place::Span(span) => texts.locate(job, Some(span.clone()))?,
        Place::File => shown_path(&job.file),
        Place::Job => job.name.clone(),
    };
    let key = if f.key.is_empty() {
        format!("jobs.{}", job.name)
    } else {
        format!("jobs.{}.{}", job.name, f.key)
    };
    Ok(format!("{at}: `{key}`: {label}: {}", f.message))
}

/// Runs each job's preflight (EC2 credentials) and adds what it found to `out`; false if any
/// failed.
fn check_preflights(cfg: &Config, out: &mut Vec<String>) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut ok = true;
    let mut first = true;
    for job in cfg.jobs.values() {
        let line = match rt.block_on(job.spec.preflight()) {
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
        let (line, column) = crate::field::line_col(text, span.start);
        Ok(format!("{}:{line}:{column}", shown_path(&job.file)))
    }
}

/// Warns when the shipped unit's sandbox keeps the daemon from writing `[metrics] textfile`:
/// its directory needs a `ReadWritePaths=` drop-in (docs/metrics.md).
fn metrics_textfile_warning(cfg: &Config, sandbox: &Sandbox) -> Option<String> {
    let file = cfg.metrics.textfile.as_deref()?;
    let dir = file.parent()?;
    let problem = match sandbox.hiding(dir) {
        Some(h) => format!(
            "{} in {}; {}",
            h.setting,
            config::sandbox::UNIT_NAME,
            h.advice
        ),
        None => sandbox.read_only(dir)?,
    };
    Some(format!(
        "{}: `metrics.textfile`: warning: the daemon cannot write {}: {problem}",
        shown_path(&cfg.path),
        file.display()
    ))
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
        let Some(program) = sink
            .kind
            .program()
            .map(Path::new)
            .filter(|p| p.is_absolute())
        else {
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
    if let Some(fleet) = &cfg.fleet {
        let jobs = cfg
            .jobs
            .values()
            .filter(|j| j.scope == config::Scope::Fleet)
            .count();
        println!(
            "  fleet: this host is {:?}, {} etcd endpoint(s), keys under {}, {jobs} fleet job(s) \
             (`opsd fleet status` shows the fleet)",
            fleet.host,
            fleet.endpoints.len(),
            fleet.prefix
        );
    }
    let now = chrono::Utc::now();
    for job in cfg.jobs.values() {
        let state = if job.enabled { "" } else { " (disabled)" };
        match &job.schedule {
            None => println!(
                "\n{} [{}]{state}: runs continuously",
                job.name,
                job.spec.type_name()
            ),
            Some(s) => {
                println!(
                    "\n{} [{}]{state}: \"{}\" in {}",
                    job.name,
                    job.spec.type_name(),
                    table_cell(&s.to_string()),
                    s.timezone()
                );
                if s.is_start() {
                    println!("  once when the daemon starts");
                }
                for n in s.fires_after(now).take(next) {
                    let local = n.with_timezone(&s.timezone());
                    println!(
                        "  {}  ({} UTC)",
                        local.format("%Y-%m-%d %H:%M:%S %Z (%a)"),
                        n.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::check::DISABLED;

    #[test]
    fn each_place_of_a_finding_is_shown_as_check_always_showed_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobs.toml");
        let missing = dir.path().join("gone.env");
        let text = format!(
            "[jobs.on]\ntype = \"command\"\nschedule = \"@every 1h\"\ncommand = [\"/bin/true\"]\n\
             env_file = {:?}\n\n[jobs.off]\ntype = \"command\"\nschedule = \"@every 1h\"\n\
             command = [\"/bin/true\"]\nenabled = false\nenv_file = {:?}\n",
            missing.display().to_string(),
            missing.display().to_string()
        );
        std::fs::write(&file, &text).unwrap();
        let cfg = config::parse(&file, &text).expect("valid");
        let found = type_checks(&cfg, &Sandbox::default());
        let mut texts = Texts::default();
        let lines: Vec<String> = found
            .iter()
            .map(|(job, f)| finding_line(job, f, &mut texts).unwrap())
            .collect();
        let at = |line: usize| format!("{}:{line}:12", file.display());
        assert_eq!(found.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("{}: `jobs.off.env_file`: warning: ", at(12))),
            "{lines:?}"
        );
        assert!(lines[0].ends_with(DISABLED), "{lines:?}");
        assert!(
            lines[1].starts_with(&format!("{}: `jobs.on.env_file`: error: ", at(5)))
                && lines[1].ends_with("; every run fails until it is fixed"),
            "{lines:?}"
        );
        assert_eq!(found[1].1.verdict, Verdict::Error);

        let (job, _) = &found[0];
        let finding = |place| Finding {
            verdict: Verdict::Warning,
            section: Section::Hidden,
            key: "",
            place,
            message: "m".into(),
        };
        assert_eq!(
            finding_line(job, &finding(Place::File), &mut texts).unwrap(),
            format!("{}: `jobs.off`: warning: m", file.display())
        );
        assert_eq!(
            finding_line(job, &finding(Place::Job), &mut texts).unwrap(),
            "off: `jobs.off`: warning: m"
        );
        let ok = Finding {
            verdict: Verdict::Ok,
            key: "env_file",
            ..finding(Place::Job)
        };
        assert_eq!(
            finding_line(job, &ok, &mut texts).unwrap(),
            "off: env_file: m"
        );
    }
}
