//! One `[jobs.NAME]` table: its name, the keys every job has, and its type's own keys read by
//! the type itself through the job registry ([`crate::jobs::REGISTRY`]); this module names no
//! type.

use super::defaults::parse_tz;
use super::{CatchUp, Defaults, JobConfig, Overlap};
use crate::alert::sink;
use crate::field::{
    de_table, shown, struct_fields, valid_name, FieldError, Head, HumanDuration, NotTagged, Tagged,
};
use crate::jobs::kind::SpecTable;
use crate::jobs::REGISTRY;
use crate::schedule::Schedule;
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// Default time between SIGTERM and SIGKILL.
const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

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

/// Parses and validates the job `name` defined by `value` in `file`, with the job file's
/// `defaults` and declared `sinks`; every problem is returned.
pub(super) fn parse_job(
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
