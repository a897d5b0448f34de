//! One `[jobs.NAME]` table: its name, the keys every job has, and its type's own keys read by
//! the type itself through the job registry ([`crate::jobs::REGISTRY`]); this module names no
//! type.

use super::defaults::parse_tz;
use super::{CatchUp, Defaults, JobConfig, OnLost, Overlap, Scope};
use crate::alert::sink;
use crate::field::{
    de_table, shown, struct_fields, valid_name, FieldError, Head, HumanDuration, NotTagged, Tagged,
    TaggedTable,
};
use crate::jobs::kind::{JobKind, SpecTable};
use crate::jobs::REGISTRY;
use crate::schedule::Schedule;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
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
    scope: Option<Spanned<Scope>>,
    on_lost: Option<Spanned<OnLost>>,
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
/// `defaults` and declared `sinks` (`in_fleet`: it has a `[fleet]`); every problem is returned.
pub(super) fn parse_job(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    defaults: &Defaults,
    sinks: &BTreeSet<String>,
    in_fleet: bool,
    file: &Arc<Path>,
) -> Result<JobConfig, Vec<FieldError>> {
    let name_str = name.get_ref().to_string();
    let prefix = format!("jobs.{name_str}");
    let mut errors = Vec::new();
    check_name(name, &prefix, &mut errors);
    let Some(tagged) = read_common(value, &prefix, &mut errors) else {
        return Err(errors);
    };
    let (common, misspelt, kind) = (tagged.head, tagged.misspelt, REGISTRY[tagged.index]);
    // The zone first, for the type's parse; its error is listed after the type's own.
    let (tz, tz_error) = job_timezone(common.timezone.as_ref(), defaults, &prefix);
    let spec_table = SpecTable {
        value,
        prefix: &prefix,
        misspelt: &misspelt,
        timezone: tz,
    };
    let job = (kind.parse)(&spec_table, &mut errors);
    errors.extend(tz_error);
    let exclude = exclude_dates(&common.exclude_dates, &prefix, &mut errors);
    errors.extend(sink::check_refs(&common.alert, sinks, &prefix));
    let (scope, on_lost) = job_scope(&common, kind, in_fleet, &prefix, &mut errors);
    let schedule = job_schedule(
        common.schedule.as_ref(),
        kind,
        misspelt.contains(&"schedule"),
        name.span(),
        tz,
        exclude,
        &prefix,
    )
    .unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if let (Scope::Fleet, Some(s)) = (scope, common.schedule.as_ref()) {
        if schedule.as_ref().is_some_and(Schedule::is_start) {
            errors.push(FieldError::new(
                s.span(),
                format!("{prefix}.schedule"),
                "@start fires when each host starts, so the hosts would not claim the same slot \
                 and each would run it: a fleet job needs a schedule shared by the hosts",
            ));
        }
    }
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
            scope,
            on_lost,
            spec: job,
        }),
        _ => Err(errors),
    }
}

/// The job's `scope` and `on_lost`: a fleet scope needs the job file's `[fleet]` section and a
/// scheduled type (a continuous job has no slots to claim); `on_lost` is for fleet jobs only.
fn job_scope(
    common: &CommonSpec,
    kind: &JobKind,
    in_fleet: bool,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> (Scope, OnLost) {
    let scope = common.scope.as_ref().map_or(Scope::Host, |s| *s.get_ref());
    if let Some(s) = common
        .scope
        .as_ref()
        .filter(|s| *s.get_ref() == Scope::Fleet)
    {
        let why = if !in_fleet {
            Some("scope = \"fleet\" needs a [fleet] section naming the etcd cluster (see docs/fleet.md)".to_string())
        } else if kind.continuous {
            Some(format!("{} jobs run continuously on every host; only scheduled jobs can have scope = \"fleet\"", kind.name))
        } else if common.overlap == Overlap::Queue {
            Some("a fleet job's slot is claimed when it is due, so it cannot wait in a queue: use overlap = \"skip\" or \"allow\"".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            errors.push(FieldError::new(s.span(), format!("{prefix}.scope"), why));
        }
    }
    let on_lost = common
        .on_lost
        .as_ref()
        .map_or(OnLost::Alert, |o| *o.get_ref());
    if let Some(o) = common.on_lost.as_ref().filter(|_| scope != Scope::Fleet) {
        errors.push(FieldError::new(
            o.span(),
            format!("{prefix}.on_lost"),
            "on_lost is for fleet jobs (a run lost with its host); add scope = \"fleet\" or remove it",
        ));
    }
    (scope, on_lost)
}

/// Reports a job name that `valid_name` refuses.
fn check_name(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) {
    if !valid_name(name.get_ref()) {
        errors.push(FieldError::new(
            name.span(),
            prefix,
            "job names may use letters, digits, '-', '_' and '.' (at most 64, not starting with '.')",
        ));
    }
}

/// Reads the keys every job has and finds its type in the registry; `None` when the job
/// cannot be read further, with `errors` then holding every problem to report.
fn read_common(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<TaggedTable<CommonSpec>> {
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
    match family.parse::<CommonSpec>(value, prefix, errors) {
        Ok(tagged) => Some(tagged),
        // A job that is not a table is reported alone, without its name's problem.
        Err(NotTagged::NotATable(e)) => {
            *errors = vec![e];
            None
        }
        Err(NotTagged::Reported) => None,
    }
}

/// The job's own `timezone`, else the defaults' one (with the error of a bad zone).
fn job_timezone(
    timezone: Option<&Spanned<String>>,
    defaults: &Defaults,
    prefix: &str,
) -> (Tz, Option<FieldError>) {
    match timezone {
        Some(tz) => match parse_tz(tz, &format!("{prefix}.timezone")) {
            Ok(tz) => (tz, None),
            Err(e) => (defaults.timezone, Some(e)),
        },
        None => (defaults.timezone, None),
    }
}

/// The dates of `exclude_dates`, each one that is not a date reported.
fn exclude_dates(
    dates: &[Spanned<String>],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeSet<NaiveDate> {
    let mut exclude = BTreeSet::new();
    for d in dates {
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
    exclude
}

/// The job's schedule, read in `tz` without the `exclude` dates: none for a continuous type,
/// required for a scheduled one unless `schedule_misspelt` (already reported); a missing one is
/// reported at the job's name (`name_span`).
fn job_schedule(
    schedule: Option<&Spanned<String>>,
    kind: &JobKind,
    schedule_misspelt: bool,
    name_span: Range<usize>,
    tz: Tz,
    exclude: BTreeSet<NaiveDate>,
    prefix: &str,
) -> Result<Option<Schedule>, FieldError> {
    // From the type, not the parsed job: a job whose other keys fail to parse is still
    // continuous, and must not also get a false "missing `schedule`".
    match (schedule, kind.continuous) {
        (Some(s), true) => Err(FieldError::new(
            s.span(),
            format!("{prefix}.schedule"),
            format!(
                "{} jobs run continuously from start; remove `schedule`",
                kind.name
            ),
        )),
        (Some(s), false) => Schedule::parse(s.get_ref(), tz, exclude)
            .map(Some)
            .map_err(|e| FieldError::new(s.span(), format!("{prefix}.schedule"), e.to_string())),
        (None, true) => Ok(None),
        (None, false) if schedule_misspelt => Ok(None),
        (None, false) => Err(FieldError::new(
            name_span,
            format!("{prefix}.schedule"),
            "missing `schedule` (e.g. \"@every 5s\", \"0 30 2 * * *\", \"@daily\", \"@start\")",
        )),
    }
}
