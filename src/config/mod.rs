//! The `jobs.toml` schema and its validation, with the `jobs.d/*.toml` drop-ins read after it.
//! Every problem is reported with the file, line, column and key at fault, unknown keys with a
//! "did you mean" where one is close, and all problems of all files at once.

mod drop_in;
mod error;
pub mod needs;
pub mod sandbox;

pub use crate::alert::sink::{CommandSink, SinkConfig, SinkKind, WebhookSink};
pub use crate::field::{did_you_mean, line_col, shown, struct_fields, FieldError, HumanDuration};
pub use drop_in::{drop_in_dir, skipped, DROP_IN_DIR};
pub use error::{ConfigError, Located};

use crate::alert::sink;
use crate::field::{
    de_table, did_you_mean_hint, misspelt_keys, toml_message, unknown_key, valid_name, Head,
    NotTagged, Tagged,
};
use crate::jobs::kind::SpecTable;
use crate::jobs::{JobType, REGISTRY};
use crate::schedule::Schedule;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The default location of the job file.
pub const DEFAULT_PATH: &str = "/etc/opsd/jobs.toml";

/// A validated configuration, ready to be scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The job file it was read from (`--config`).
    pub path: PathBuf,
    /// Every file read, in order: the job file, then each `jobs.d/*.toml` by name.
    pub files: Vec<PathBuf>,
    /// The entries of `jobs.d` that were not read, with why ([`drop_in::skipped`]).
    pub skipped: Vec<(PathBuf, &'static str)>,
    /// Daemon-wide settings.
    pub defaults: Defaults,
    /// The jobs by name, shared with the scheduler's entries rather than copied.
    pub jobs: BTreeMap<String, Arc<JobConfig>>,
    /// The alert sinks by name (`[alerts.NAME]`).
    pub alerts: BTreeMap<String, SinkConfig>,
}

/// Daemon-wide settings from `[defaults]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The zone for jobs that do not name one.
    pub timezone: Tz,
    /// How long shutdown waits for running jobs before stopping them.
    pub shutdown_timeout: Duration,
    /// A group allowed to use the control socket (mode 0660); root only when unset.
    pub control_group: Option<String>,
}

/// When a job that is still running is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Do not start another run; log a warning.
    #[default]
    Skip,
    /// Run again as soon as the current run ends (at most one waits).
    Queue,
    /// Start another run alongside.
    Allow,
}

/// What to do about slots missed while the daemon was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Forget them.
    #[default]
    Skip,
    /// Run once at start if any slot was missed (like systemd's `Persistent=`).
    Once,
}

/// One job: when it runs, its run policies, and what it does. Two are equal when they run the
/// same way, wherever they are defined ([`JobConfig::file`] is left out), so a job moved
/// unchanged from the job file into a drop-in is not "changed" by a reload.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The job's name (the key under `[jobs]`).
    pub name: String,
    /// The file the job is defined in (the job file or one in `jobs.d`), which the spans of
    /// its keys point into.
    pub file: Arc<Path>,
    /// When it fires; `None` for continuous job types.
    pub schedule: Option<Schedule>,
    /// Disabled jobs are validated but never scheduled.
    pub enabled: bool,
    /// What to do when a run is due while one is still running.
    pub overlap: Overlap,
    /// Stop a run that takes longer than this.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
    /// A random delay of up to this much before each run.
    pub jitter: Duration,
    /// Whether a slot missed during downtime runs once at start.
    pub catch_up: CatchUp,
    /// The alert sinks failed runs (and the job's own alerts) go to.
    pub alert: Vec<String>,
    /// The type-specific part.
    pub job: JobType,
}

impl PartialEq for JobConfig {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let JobConfig {
            name,
            file: _,
            schedule,
            enabled,
            overlap,
            timeout,
            kill_grace,
            jitter,
            catch_up,
            alert,
            job,
        } = self;
        *name == other.name
            && *schedule == other.schedule
            && *enabled == other.enabled
            && *overlap == other.overlap
            && *timeout == other.timeout
            && *kill_grace == other.kill_grace
            && *jitter == other.jitter
            && *catch_up == other.catch_up
            && *alert == other.alert
            && *job == other.job
    }
}

/// `[defaults]` as written (unknown keys are reported by [`parse_defaults`]).
#[derive(Debug, Deserialize)]
struct RawDefaults {
    timezone: Option<Spanned<String>>,
    shutdown_timeout: Option<HumanDuration>,
    control_group: Option<Spanned<String>>,
}

/// The keys every job has, whatever its type.
#[derive(Debug, Deserialize)]
struct CommonSpec {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    overlap: Overlap,
    timeout: Option<HumanDuration>,
    kill_grace: Option<HumanDuration>,
    jitter: Option<HumanDuration>,
    #[serde(default)]
    catch_up: CatchUp,
    #[serde(default)]
    exclude_dates: Vec<Spanned<String>>,
    #[serde(default)]
    alert: Vec<Spanned<String>>,
}

impl Head for CommonSpec {
    /// Every common key at once, each bad value reported.
    fn read(
        value: &Spanned<DeValue<'_>>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        de_table(value, prefix, &[], errors)
    }

    fn tag(&self) -> &Spanned<String> {
        &self.kind
    }
}

fn yes() -> bool {
    true
}

/// Default time between SIGTERM and SIGKILL.
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Default wait for running jobs at shutdown.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads and validates the configuration at `path`, then the `*.toml` files of the `jobs.d`
/// directory beside it ([`drop_in_dir`]) in name order. Errors of every file are reported
/// together, each against its own file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = drop_in_dir(path);
    let drop_ins = drop_in::read(&dir)?;
    let mut config = parse_files(path, &bytes, &drop_ins)?;
    config.skipped = drop_in::skipped(&dir);
    Ok(config)
}

/// Validates the bytes of a job file, locating the first byte that is not UTF-8 if any.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    parse_files(path, bytes, &[])
}

/// Validates configuration `text`, reporting errors against `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_files(path, text.as_bytes(), &[])
}

/// Validates a job file and its drop-ins (`(path, bytes)` in the order they are read): the job
/// file's `[defaults]` and `[alerts]` apply to the jobs of every file; a drop-in holds jobs only,
/// and a job name may be defined once across all of them.
pub fn parse_files(
    path: &Path,
    bytes: &[u8],
    drop_ins: &[(PathBuf, Vec<u8>)],
) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::not_utf8(path, bytes, e))?;
    let main: Arc<Path> = Arc::from(path);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => return Err(syntax_errors(path, text, &e, drop_ins)),
    };
    let mut errors = Vec::new();
    let mut defaults_value = None;
    let mut jobs_value = None;
    let mut alerts_value = None;
    for (key, value) in root.get_ref() {
        match key.get_ref().as_ref() {
            "defaults" => defaults_value = Some(value),
            "jobs" => jobs_value = Some(value),
            "alerts" => alerts_value = Some(value),
            other => errors.push(unknown_key(
                key.span(),
                other,
                "",
                &["defaults", "jobs", "alerts"],
                "",
            )),
        }
    }

    let raw = defaults_value.and_then(|v| parse_defaults(v, &mut errors));
    let defaults = resolve_defaults(raw, &mut errors);

    let sinks = sink::parse(alerts_value, &mut errors);
    let mut jobs = BTreeMap::new();
    let mut defined = BTreeMap::new();
    let file = FileJobs {
        file: &main,
        text,
        defaults: &defaults,
        sinks: &sinks.declared,
    };
    file.parse_jobs(jobs_value, &mut jobs, &mut defined, &mut errors);
    let mut located = Vec::new();
    if !errors.is_empty() {
        located.extend(
            ConfigError::invalid(path, text, errors)
                .located()
                .iter()
                .cloned(),
        );
    }
    let mut files = vec![path.to_path_buf()];
    for (drop_in, bytes) in drop_ins {
        files.push(drop_in.clone());
        let errors = match std::str::from_utf8(bytes) {
            Err(e) => ConfigError::not_utf8(drop_in, bytes, e),
            Ok(text) => {
                let file: Arc<Path> = Arc::from(drop_in.as_path());
                let errors = FileJobs {
                    file: &file,
                    text,
                    defaults: &defaults,
                    sinks: &sinks.declared,
                }
                .parse_drop_in(path, &mut jobs, &mut defined);
                if errors.is_empty() {
                    continue;
                }
                ConfigError::invalid(drop_in, text, errors)
            }
        };
        located.extend(errors.located().iter().cloned());
    }

    if located.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            files,
            skipped: Vec::new(),
            defaults,
            jobs,
            alerts: sinks.configs,
        })
    } else {
        Err(ConfigError::Invalid(located))
    }
}

/// The errors for a job file that is not valid TOML, with those of the drop-ins that are not
/// either (their jobs cannot be checked without the job file's defaults and sinks).
fn syntax_errors(
    path: &Path,
    text: &str,
    e: &toml::de::Error,
    drop_ins: &[(PathBuf, Vec<u8>)],
) -> ConfigError {
    let main = ConfigError::invalid(path, text, vec![syntax_field_error(text, e)]);
    let mut located = main.located().to_vec();
    for (drop_in, bytes) in drop_ins {
        let error = match std::str::from_utf8(bytes) {
            Err(e) => ConfigError::not_utf8(drop_in, bytes, e),
            Ok(text) => match DeTable::parse(text) {
                Ok(_) => continue,
                Err(e) => ConfigError::invalid(drop_in, text, vec![syntax_field_error(text, &e)]),
            },
        };
        located.extend(error.located().iter().cloned());
    }
    ConfigError::Invalid(located)
}

/// What is wrong with a file that is not valid TOML, with a duplicate key explained.
fn syntax_field_error(text: &str, e: &toml::de::Error) -> FieldError {
    let span = e.span().unwrap_or(0..0);
    if e.message() == "duplicate key" {
        duplicate(text, span)
    } else {
        FieldError::new(span, "", toml_message(e))
    }
}

/// Where a job name was first defined, for the error of a second definition in another file.
struct Defined {
    /// The file.
    file: Arc<Path>,
    /// 1-based line and column of the name.
    line: usize,
    column: usize,
}

/// One file's `[jobs]`, parsed with the job file's defaults and sinks.
struct FileJobs<'a> {
    /// The file, which the jobs parsed from it point back to.
    file: &'a Arc<Path>,
    /// Its text.
    text: &'a str,
    /// The job file's `[defaults]`.
    defaults: &'a Defaults,
    /// Every sink name the job file declares.
    sinks: &'a BTreeSet<String>,
}

impl FileJobs<'_> {
    /// Parses a `jobs.d` file: TOML, `[jobs.NAME]` sections only. `main` is the job file,
    /// named in the error for a `[defaults]` or `[alerts]` here.
    fn parse_drop_in(
        &self,
        main: &Path,
        jobs: &mut BTreeMap<String, Arc<JobConfig>>,
        defined: &mut BTreeMap<String, Defined>,
    ) -> Vec<FieldError> {
        let root = match DeTable::parse(self.text) {
            Ok(root) => root,
            Err(e) => return vec![syntax_field_error(self.text, &e)],
        };
        let mut errors = Vec::new();
        let mut jobs_value = None;
        for (key, value) in root.get_ref() {
            match key.get_ref().as_ref() {
                "jobs" => jobs_value = Some(value),
                section @ ("defaults" | "alerts") => errors.push(FieldError::new(
                    key.span(),
                    section,
                    format!(
                        "[{section}] belongs in {} only; a file in {DROP_IN_DIR}/ holds \
                         [jobs.NAME] sections",
                        main.display()
                    ),
                )),
                other => errors.push(unknown_key(key.span(), other, "", &["jobs"], "")),
            }
        }
        self.parse_jobs(jobs_value, jobs, defined, &mut errors);
        errors
    }

    /// Parses the `[jobs]` table into `jobs`, refusing a name `defined` in an earlier file.
    fn parse_jobs(
        &self,
        jobs_value: Option<&Spanned<DeValue<'_>>>,
        jobs: &mut BTreeMap<String, Arc<JobConfig>>,
        defined: &mut BTreeMap<String, Defined>,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(value) = jobs_value else { return };
        let Some(table) = value.get_ref().as_table() else {
            errors.push(FieldError::new(
                value.span(),
                "jobs",
                "`jobs` must be a table of [jobs.NAME] sections",
            ));
            return;
        };
        for (name, job) in table {
            let (line, column) = line_col(self.text, name.span().start);
            if let Some(first) = defined.get(name.get_ref().as_ref()) {
                errors.push(FieldError::new(
                    name.span(),
                    format!("jobs.{}", name.get_ref()),
                    format!(
                        "duplicate job `{}`: already defined at {}:{}:{} (a job name may be \
                         defined once across the job file and {DROP_IN_DIR}/)",
                        name.get_ref(),
                        first.file.display(),
                        first.line,
                        first.column
                    ),
                ));
                continue;
            }
            defined.insert(
                name.get_ref().to_string(),
                Defined {
                    file: self.file.clone(),
                    line,
                    column,
                },
            );
            match parse_job(name, job, self.defaults, self.sinks, self.file) {
                Ok(j) => {
                    jobs.insert(j.name.clone(), Arc::new(j));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
}

/// Reads `[defaults]` reporting every problem, as for a job: each unknown key with a "did you
/// mean", each bad value; the keys that are fine are kept.
fn parse_defaults(
    value: &Spanned<DeValue<'_>>,
    errors: &mut Vec<FieldError>,
) -> Option<RawDefaults> {
    let Some(table) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            "defaults",
            "`defaults` must be a table: a [defaults] section",
        ));
        return None;
    };
    let known = struct_fields::<RawDefaults>();
    for key in table.keys() {
        let k = key.get_ref().as_ref();
        if !known.contains(&k) {
            errors.push(unknown_key(key.span(), k, "defaults", known, ""));
        }
    }
    let misspelt = misspelt_keys(table, known);
    de_table::<RawDefaults>(value, "defaults", &misspelt, errors)
}

fn resolve_defaults(raw: Option<RawDefaults>, errors: &mut Vec<FieldError>) -> Defaults {
    let timezone = match raw.as_ref().and_then(|r| r.timezone.as_ref()) {
        Some(tz) => parse_tz(tz, "defaults.timezone").unwrap_or_else(|e| {
            errors.push(e);
            Tz::UTC
        }),
        None => system_timezone(),
    };
    let control_group = raw
        .as_ref()
        .and_then(|r| r.control_group.as_ref())
        .and_then(|g| {
            if matches!(nix::unistd::Group::from_name(g.get_ref()), Ok(Some(_))) {
                Some(g.get_ref().clone())
            } else {
                errors.push(FieldError::new(
                    g.span(),
                    "defaults.control_group",
                    format!("no such group {} on this machine", shown(g.get_ref())),
                ));
                None
            }
        });
    Defaults {
        timezone,
        shutdown_timeout: raw
            .and_then(|r| r.shutdown_timeout)
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0),
        control_group,
    }
}

/// The machine's own zone (from `TZ` or `/etc/localtime`), or UTC when it cannot be told.
pub fn system_timezone() -> Tz {
    std::env::var("TZ")
        .ok()
        .map(|s| s.trim_start_matches(':').to_string())
        .or_else(|| iana_time_zone::get_timezone().ok())
        .and_then(|name| name.parse().ok())
        .unwrap_or(Tz::UTC)
}

fn parse_tz(tz: &Spanned<String>, key: &str) -> Result<Tz, FieldError> {
    tz.get_ref().parse::<Tz>().map_err(|_| {
        let hint = did_you_mean_hint(
            tz.get_ref(),
            chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()),
        )
        .unwrap_or_else(|| " (an IANA name such as \"Asia/Seoul\" or \"UTC\")".to_string());
        FieldError::new(
            tz.span(),
            key,
            format!("unknown time zone {}{hint}", shown(tz.get_ref())),
        )
    })
}

fn parse_job(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    defaults: &Defaults,
    sinks: &BTreeSet<String>,
    file: &Arc<Path>,
) -> Result<JobConfig, Vec<FieldError>> {
    let name_str = name.get_ref().to_string();
    let prefix = format!("jobs.{name_str}");
    let mut errors = Vec::new();
    if !valid_name(&name_str) {
        errors.push(FieldError::new(
            name.span(),
            &prefix,
            "job names may use letters, digits, '-', '_' and '.' (at most 64, not starting with '.')",
        ));
    }
    let types: Vec<(&'static str, &'static [&'static str])> = REGISTRY
        .iter()
        .map(|kind| (kind.name, (kind.fields)()))
        .collect();
    let family = Tagged {
        noun: "job",
        member: "job",
        not_a_table: "a job must be a table, e.g. [jobs.NAME]",
        common: struct_fields::<CommonSpec>(),
        types: &types,
    };
    let tagged = match family.parse::<CommonSpec>(value, &prefix, &mut errors) {
        Ok(tagged) => tagged,
        // A job that is not a table is reported alone, without its name's problem.
        Err(NotTagged::NotATable(e)) => return Err(vec![e]),
        Err(NotTagged::Reported) => return Err(errors),
    };
    let (common, misspelt, kind) = (tagged.head, tagged.misspelt, REGISTRY[tagged.index]);
    // The zone first, for the type's parse; its error is listed after the type's own.
    let mut tz_errors = Vec::new();
    let tz = match &common.timezone {
        Some(tz) => parse_tz(tz, &format!("{prefix}.timezone")).unwrap_or_else(|e| {
            tz_errors.push(e);
            defaults.timezone
        }),
        None => defaults.timezone,
    };
    let spec_table = SpecTable {
        value,
        prefix: &prefix,
        misspelt: &misspelt,
        timezone: tz,
    };
    let job = (kind.parse)(&spec_table, &mut errors);
    errors.append(&mut tz_errors);
    let mut exclude = BTreeSet::new();
    for d in &common.exclude_dates {
        match d.get_ref().parse::<NaiveDate>() {
            Ok(date) => {
                exclude.insert(date);
            }
            Err(_) => errors.push(FieldError::new(
                d.span(),
                format!("{prefix}.exclude_dates"),
                format!("{} is not a date; write \"YYYY-MM-DD\"", shown(d.get_ref())),
            )),
        }
    }
    errors.extend(sink::check_refs(&common.alert, sinks, &prefix));
    // From the type, not the parsed job: a job whose other keys fail to parse is still
    // continuous, and must not also get a false "missing `schedule`".
    let schedule = match (&common.schedule, kind.continuous) {
        (Some(s), true) => {
            errors.push(FieldError::new(
                s.span(),
                format!("{prefix}.schedule"),
                format!(
                    "{} jobs run continuously from start; remove `schedule`",
                    kind.name
                ),
            ));
            None
        }
        (Some(s), false) => match Schedule::parse(s.get_ref(), tz, exclude) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(FieldError::new(
                    s.span(),
                    format!("{prefix}.schedule"),
                    e.to_string(),
                ));
                None
            }
        },
        (None, true) => None,
        (None, false) if misspelt.contains(&"schedule") => None,
        (None, false) => {
            errors.push(FieldError::new(
                name.span(),
                format!("{prefix}.schedule"),
                "missing `schedule` (e.g. \"@every 5s\", \"0 30 2 * * *\", \"@daily\", \"@start\")",
            ));
            None
        }
    };

    match job {
        Some(job) if errors.is_empty() => Ok(JobConfig {
            name: name_str,
            file: file.clone(),
            schedule,
            enabled: common.enabled,
            overlap: common.overlap,
            timeout: common.timeout.map(|d| d.0).filter(|d| !d.is_zero()),
            kill_grace: common.kill_grace.map_or(DEFAULT_KILL_GRACE, |d| d.0),
            jitter: common.jitter.map(|d| d.0).unwrap_or_default(),
            catch_up: common.catch_up,
            alert: common.alert.into_iter().map(Spanned::into_inner).collect(),
            job,
        }),
        _ => Err(errors),
    }
}

/// Explains a duplicate key from the TOML parser: which job, sink or key it is, and the line it
/// was first defined on.
fn duplicate(text: &str, span: std::ops::Range<usize>) -> FieldError {
    let line_start = text
        .get(..span.start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let before = text.get(..line_start).unwrap_or_default();
    let line = text
        .get(line_start..)
        .and_then(|t| t.lines().next())
        .unwrap_or_default();
    let path = if line.trim_start().starts_with('[') {
        key_path(line)
    } else {
        // `key = value`, under the nearest table header above it.
        let header = before
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('['))
            .map_or(Some(Vec::new()), key_path);
        let key = line
            .split_once('=')
            .and_then(|(k, _)| key_path(&format!("{k} = 0")));
        header.zip(key).map(|(h, k)| [h, k].concat())
    };
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return FieldError::new(span, "", "duplicate key");
    };
    let first = first_definition(before, &path)
        .map(|at| format!(" (first defined at line {})", line_col(text, at).0))
        .unwrap_or_default();
    let message = match path.as_slice() {
        [section, name] if section == "jobs" => format!("duplicate job `{name}`{first}"),
        [section, name] if section == "alerts" => format!("duplicate alert sink `{name}`{first}"),
        _ => format!("duplicate key{first}"),
    };
    FieldError::new(span, path.join("."), message)
}

/// The dotted key path a lone table header or `key = value` line defines.
fn key_path(snippet: &str) -> Option<Vec<String>> {
    let root = DeTable::parse(snippet).ok()?;
    let mut path = Vec::new();
    let mut table = root.get_ref();
    while let Some((key, value)) = table.iter().next() {
        path.push(key.get_ref().to_string());
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    Some(path)
}

/// The byte offset of the key at `path` in `text`, if `text` defines it.
fn first_definition(text: &str, path: &[String]) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let (last, parents) = path.split_last()?;
    let mut table = root.get_ref();
    for key in parents {
        table = table.get(key.as_str())?.get_ref().as_table()?;
    }
    table
        .get_key_value(last.as_str())
        .map(|(key, _)| key.span().start)
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
