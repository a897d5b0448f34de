//! Reading the job file and its `jobs.d` drop-ins into one [`Config`]: which sections each file
//! may hold, a job name defined once across all of them, and every file's errors reported
//! together, each against its own file.

use super::defaults::{parse_defaults, resolve_defaults};
use super::drop_in::{self, drop_in_dir, DROP_IN_DIR};
use super::duplicate::duplicate;
use super::job::parse_job;
use super::{Config, ConfigError, Defaults, JobConfig};
use crate::alert::sink;
use crate::field::{line_col, toml_message, unknown_key, FieldError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

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
    let mut metrics_value = None;
    let mut fleet_value = None;
    for (key, value) in root.get_ref() {
        match key.get_ref().as_ref() {
            "defaults" => defaults_value = Some(value),
            "jobs" => jobs_value = Some(value),
            "alerts" => alerts_value = Some(value),
            "metrics" => metrics_value = Some(value),
            "fleet" => fleet_value = Some(value),
            other => errors.push(unknown_key(
                key.span(),
                other,
                "",
                &["defaults", "jobs", "alerts", "metrics", "fleet"],
                "",
            )),
        }
    }

    let raw = defaults_value.and_then(|v| parse_defaults(v, &mut errors));
    let defaults = resolve_defaults(raw, &mut errors);

    let sinks = sink::parse(alerts_value, &mut errors);
    let metrics = super::metrics::parse_metrics(metrics_value, &mut errors);
    let fleet = fleet_value.and_then(|v| super::fleet::parse_fleet(v, &mut errors));
    let in_fleet = fleet_value.is_some();
    let mut jobs = BTreeMap::new();
    let mut defined = BTreeMap::new();
    let file = FileJobs {
        file: &main,
        text,
        defaults: &defaults,
        sinks: &sinks.declared,
        in_fleet,
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
                    in_fleet,
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
            metrics,
            fleet,
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
    /// Whether the job file has a `[fleet]` section (which `scope = "fleet"` needs).
    in_fleet: bool,
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
                section @ ("defaults" | "alerts" | "metrics" | "fleet") => {
                    errors.push(FieldError::new(
                        key.span(),
                        section,
                        format!(
                            "[{section}] belongs in {} only; a file in {DROP_IN_DIR}/ holds \
                         [jobs.NAME] sections",
                            main.display()
                        ),
                    ))
                }
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
            match parse_job(
                name,
                job,
                self.defaults,
                self.sinks,
                self.in_fleet,
                self.file,
            ) {
                Ok(j) => {
                    jobs.insert(j.name.clone(), Arc::new(j));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
}
