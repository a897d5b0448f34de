//! When jobs fire: cron expressions (croner), clock-aligned `@every` intervals and `@start`,
//! evaluated in each job's own IANA time zone, skipping excluded dates.

use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::errors::CronError;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// How many excluded slots in a row we step over before giving up on finding the next one.
const MAX_EXCLUDED_STEPS: usize = 10_000;

/// A parsed schedule expression, independent of time zone.
#[derive(Debug, Clone)]
enum Kind {
    /// A cron expression with 5, 6 or 7 fields, or a `@daily`-style nickname (the source).
    /// It is parsed again each time it is evaluated rather than kept parsed: croner keeps a
    /// byte per possible year (5 KB an expression, 5 MB for 1,000 jobs), while parsing takes
    /// microseconds once per fire.
    Cron,
    /// `@every <duration>`, aligned to the wall clock of the job's zone.
    Every(Duration),
    /// `@start`: once, when the daemon starts.
    Start,
}

/// When a job fires: the expression, its time zone and the dates it skips.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    kind: Kind,
    tz: Tz,
    exclude: BTreeSet<NaiveDate>,
}

/// Why a schedule expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tz == other.tz && self.exclude == other.exclude
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Schedule {
    /// Parses `expr` for a job in zone `tz` that never fires on the `exclude` dates.
    pub fn parse(expr: &str, tz: Tz, exclude: BTreeSet<NaiveDate>) -> Result<Self, ScheduleError> {
        let source = expr.trim().to_string();
        let lower = source.to_ascii_lowercase();
        let kind = if let Some(rest) = lower.strip_prefix("@every") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(ScheduleError(
                    "`@every` needs a duration, e.g. \"@every 5s\"".into(),
                ));
            }
            let d = humantime::parse_duration(rest).map_err(|e| {
                ScheduleError(format!("invalid interval {rest:?} in {source:?}: {e}"))
            })?;
            if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
                return Err(ScheduleError(format!(
                    "`@every` takes whole seconds, at least 1s (got {rest:?})"
                )));
            }
            if d > MAX_EVERY {
                return Err(ScheduleError(format!(
                    "`@every` takes at most 100 years (got {rest:?}); use a cron expression for \
                     rare dates"
                )));
            }
            Kind::Every(d)
        } else if lower == "@start" || lower == "@reboot" {
            Kind::Start
        } else {
            let parser = croner::parser::CronParser::new();
            parser
                .parse(&source)
                .map_err(|e| ScheduleError(explain_cron(&source, &parser, &e)))?;
            Kind::Cron
        };
        Ok(Schedule {
            source,
            kind,
            tz,
            exclude,
        })
    }

    /// The time zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// True for `@start`, which fires once at daemon start and never again.
    pub fn is_start(&self) -> bool {
        matches!(self.kind, Kind::Start)
    }

    /// The first fire time strictly after `after`, skipping excluded dates; `None` if there is
    /// none (an `@start` schedule, or a cron expression whose years have all passed).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_with(self.cron().as_ref(), after)
    }

    /// The cron expression parsed, for a cron schedule. It parsed in [`Schedule::parse`], so
    /// it parses again.
    fn cron(&self) -> Option<croner::Cron> {
        match self.kind {
            Kind::Cron => croner::parser::CronParser::new().parse(&self.source).ok(),
            Kind::Every(_) | Kind::Start => None,
        }
    }

    /// [`Schedule::next_after`] with the cron expression already parsed.
    fn next_with(
        &self,
        cron: Option<&croner::Cron>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut t = after;
        for _ in 0..MAX_EXCLUDED_STEPS {
            let next = self.raw_next_after(cron, t)?;
            if !self
                .exclude
                .contains(&next.with_timezone(&self.tz).date_naive())
            {
                return Some(next);
            }
            t = next;
        }
        None
    }

    /// The latest fire time at or before `at` that is strictly after `since`, if any: the slot a
    /// daemon that was down would have missed.
    pub fn missed_between(&self, since: DateTime<Utc>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.cron();
        // Walk only the last stretch when croner can point at it: a per-second cron down for a
        // month would otherwise be walked slot by slot (millions) before the daemon is ready.
        let latest = cron.as_ref().and_then(|c| {
            c.find_previous_occurrence(&at.with_timezone(&self.tz), true)
                .ok()
                .map(|p| p.with_timezone(&Utc))
        });
        if let Some(p) = latest.filter(|p| *p > since && *p <= at) {
            let from = (p - chrono::Duration::seconds(1)).max(since);
            if let Some(slot) = self.walk_missed(cron.as_ref(), from, at) {
                return Some(slot);
            }
        }
        self.walk_missed(cron.as_ref(), since, at)
    }

    /// The latest fire time in (`since`, `at`], found by walking forward from `since`.
    fn walk_missed(
        &self,
        cron: Option<&croner::Cron>,
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut last = None;
        let mut t = since;
        while let Some(next) = self.next_with(cron, t) {
            if next > at {
                break;
            }
            last = Some(next);
            t = next;
            if let Kind::Every(d) = self.kind {
                // Jump close to `at` instead of walking every interval of a long outage.
                let gap = (at - t).to_std().unwrap_or_default();
                if gap > d * 2 {
                    let skip = (gap.as_secs() / d.as_secs()).saturating_sub(1);
                    t += chrono::Duration::seconds((skip * d.as_secs()) as i64);
                }
            }
        }
        last
    }

    fn raw_next_after(
        &self,
        cron: Option<&croner::Cron>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::Start => None,
            Kind::Every(d) => Some(next_aligned(after, d, self.tz)),
            Kind::Cron => cron?
                .find_next_occurrence(&after.with_timezone(&self.tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// The fields of a 7-field cron expression, each with the values it takes.
const CRON_FIELDS: [(&str, &str); 7] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L or W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, L or #"),
    ("year", "1-5000"),
];

/// Explains why croner rejected `source`: which field is at fault, and the values it takes.
/// Croner names neither, so each field is tried alone with `*` in the others.
fn explain_cron(source: &str, parser: &croner::parser::CronParser, error: &CronError) -> String {
    let prefix = format!("invalid cron expression {source:?}");
    if source.starts_with('@') {
        return format!(
            "{prefix}: unknown nickname (known: @yearly, @monthly, @weekly, @daily, @hourly, \
             @every <duration>, @start)"
        );
    }
    let fields: Vec<&str> = source.split_whitespace().collect();
    let names = match fields.len() {
        5 => &CRON_FIELDS[1..6],
        6 => &CRON_FIELDS[..6],
        7 => &CRON_FIELDS[..],
        n => {
            return format!(
                "{prefix}: {n} fields; write 5 (minute hour day-of-month month day-of-week), \
                 6 (a second first) or 7 (and a year last)"
            )
        }
    };
    for (i, (field, (name, takes))) in fields.iter().zip(names).enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        let why = match parser.parse(&probe.join(" ")) {
            Ok(_) => continue,
            Err(CronError::ComponentError(m)) if m.contains("out of bounds") => {
                "is out of range".to_string()
            }
            Err(CronError::ComponentError(m)) => {
                format!("is invalid: {}", m.trim_end_matches('.'))
            }
            Err(CronError::IllegalCharacters(_)) => {
                "has a character cron does not allow".to_string()
            }
            Err(e) => format!("is invalid: {e}"),
        };
        return format!("{prefix}: the {name} field {field:?} {why} ({name} takes {takes})");
    }
    format!("{prefix}: {error}")
}

/// The longest `@every` interval: longer ones overflow the millisecond grid of [`next_aligned`].
const MAX_EVERY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The next instant after `after` whose local wall-clock time (in `tz`) is a multiple of `every`
/// counted from local midnight of 1970-01-01, so `@every 5s` fires at :00, :05, :10 and
/// `@every 1h` on the hour even in zones with half-hour offsets.
fn next_aligned(after: DateTime<Utc>, every: Duration, tz: Tz) -> DateTime<Utc> {
    let step = every.as_millis() as i64;
    let offset_ms = i64::from(
        tz.offset_from_utc_datetime(&after.naive_utc())
            .fix()
            .local_minus_utc(),
    ) * 1000;
    let local_ms = after.timestamp_millis() + offset_ms;
    let next_local = (local_ms.div_euclid(step) + 1) * step;
    let next = next_local - offset_ms;
    Utc.timestamp_millis_opt(next)
        .single()
        .unwrap_or(after + chrono::Duration::milliseconds(step))
}

#[cfg(test)]
mod tests;
