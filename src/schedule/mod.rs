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
/// The longest `@every` interval: a year and a day. Longer ones are rare runs a cron
/// expression (with a year field, if need be) says better, and this bound keeps every
/// computation on the interval far inside what dates and millisecond counts can hold.
const MAX_EVERY: Duration = Duration::from_secs(366 * 86_400);
/// How many zone transitions `@every` steps over on its way to the next slot before it gives
/// up; a slot is never more than a year and a day away, and no zone changes offset this often.
const MAX_TRANSITIONS: usize = 64;

/// A parsed schedule expression, independent of time zone.
#[derive(Debug, Clone)]
enum Kind {
    /// A cron expression with 5, 6 or 7 fields, or a `@daily`-style nickname (the source).
    /// It is parsed again each time it is evaluated rather than kept parsed: croner keeps a
    /// byte per possible year (5 KB an expression, 5 MB for 1,000 jobs), while parsing takes
    /// microseconds once per fire.
    Cron,
    /// `@every <duration>`, on the grid of the local wall clock of the job's zone (see
    /// [`next_aligned`]).
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
                    "`@every` interval {rest:?} is longer than {} days, the longest opsd \
                     schedules; for rarer runs write a cron expression, e.g. \"0 0 3 1 1 *\" \
                     for once a year",
                    MAX_EVERY.as_secs() / 86_400
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
        let schedule = Schedule {
            source,
            kind,
            tz,
            exclude,
        };
        // Without a year field a cron expression repeats every year, so one with no next fire
        // time never fires at all (`0 0 0 30 2 *`): refuse it rather than arm a silent job. A
        // year field may simply have passed; the daemon logs that job's end.
        let has_year = schedule.source.split_whitespace().count() == 7;
        if matches!(schedule.kind, Kind::Cron)
            && !has_year
            && schedule.next_after(Utc::now()).is_none()
        {
            return Err(ScheduleError(format!(
                "{:?} never fires: no date matches its day and month fields (a day the month \
                 does not have, such as 30 February?)",
                schedule.source
            )));
        }
        Ok(schedule)
    }

    /// The time zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// True for `@start`, which fires once at daemon start and never again.
    pub fn is_start(&self) -> bool {
        matches!(self.kind, Kind::Start)
    }

    /// True when the schedule may run out of fire times on its own (a cron expression whose
    /// years pass, `@start`); an `@every` schedule never does, so for it a missing next fire
    /// time is a failure.
    pub fn may_end(&self) -> bool {
        !matches!(self.kind, Kind::Every(_))
    }

    /// True for a frequent schedule in cron's sense: an `@every` interval, or a cron
    /// expression whose second, minute or hour field is a wildcard (`*`, `*/5`), `@hourly`
    /// included. After a small clock step such jobs go on at the new time, while fixed-time
    /// jobs are neither repeated nor skipped.
    pub fn is_frequent(&self) -> bool {
        match self.kind {
            Kind::Every(_) => true,
            Kind::Start => false,
            Kind::Cron => {
                let lower = self.source.to_ascii_lowercase();
                if lower.starts_with('@') {
                    return lower == "@hourly";
                }
                let fields: Vec<&str> = self.source.split_whitespace().collect();
                // second (6 or 7 fields), minute, hour: the time-of-day fields.
                let time_fields = if fields.len() >= 6 {
                    &fields[..3]
                } else {
                    &fields[..2.min(fields.len())]
                };
                time_fields.iter().any(|f| f.starts_with('*'))
            }
        }
    }

    /// The first fire time strictly after `after`, skipping excluded dates; `None` if there is
    /// none (an `@start` schedule, or a cron expression whose years have all passed).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_with(self.cron().as_ref(), after)
    }

    /// The fire times strictly after `after`, in order, skipping excluded dates (the cron
    /// expression parsed once for all of them, for walking many).
    pub fn fires_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let cron = self.cron();
        let mut t = after;
        std::iter::from_fn(move || {
            let next = self.next_with(cron.as_ref(), t)?;
            t = next;
            Some(next)
        })
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
            // Checked: at the end of chrono's range the local date may not exist.
            let offset = self.tz.offset_from_utc_datetime(&next.naive_utc()).fix();
            let date = next.naive_utc().checked_add_offset(offset)?.date();
            if !self.exclude.contains(&date) {
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
            let from = p
                .checked_sub_signed(chrono::TimeDelta::seconds(1))
                .unwrap_or(p)
                .max(since);
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
                if gap.as_secs() > d.as_secs().saturating_mul(2) {
                    let skip = (gap.as_secs() / d.as_secs().max(1)).saturating_sub(1);
                    let jump = skip
                        .checked_mul(d.as_secs())
                        .and_then(|s| i64::try_from(s).ok())
                        .and_then(chrono::TimeDelta::try_seconds)
                        .and_then(|j| t.checked_add_signed(j));
                    if let Some(jumped) = jump {
                        t = jumped;
                    }
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
            Kind::Every(d) => next_aligned(after, d, self.tz),
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

/// The zone's offset from UTC at the instant `utc_ms` (milliseconds since 1970 UTC), in
/// milliseconds; `None` outside the dates chrono can hold.
fn offset_ms(tz: Tz, utc_ms: i64) -> Option<i64> {
    let at = DateTime::from_timestamp_millis(utc_ms)?;
    Some(
        i64::from(
            tz.offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc(),
        ) * 1000,
    )
}

/// The first instant in (`from`, `to`] whose offset is not `off`, given that `to`'s is not
/// (both in milliseconds since 1970 UTC): the zone's transition between them.
fn transition_between(tz: Tz, mut from: i64, mut to: i64, off: i64) -> Option<i64> {
    while to - from > 1 {
        let mid = from + (to - from) / 2;
        if offset_ms(tz, mid)? == off {
            from = mid;
        } else {
            to = mid;
        }
    }
    Some(to)
}

/// The next `@every` slot strictly after `after`, or `None` if it is past the dates chrono
/// can hold.
///
/// The grid is the local wall clock of `tz`: a slot is an instant whose local time, counted
/// from local midnight of 1970-01-01, is a multiple of `every`. An interval that divides a
/// day therefore fires at the same local times every day (`@every 90m`: 00:00, 01:30, 03:00
/// ...; `@every 1h` on the local hour even in zones with half-hour offsets), and one that
/// does not (`@every 7s`) keeps its 1970 grid across midnights. On a spring-forward day the
/// local times the clock skips have no instant: slots in the gap fire once, when the gap ends
/// (`@every 90m` in New York on 2027-03-14: 01:30 EST, 03:00 EDT). On a fall-back day the
/// repeated hour is on the grid twice, so frequent jobs keep firing through it
/// (2027-11-07: 00:00 EDT, 01:30 EDT, 01:30 EST, 03:00 EST).
fn next_aligned(after: DateTime<Utc>, every: Duration, tz: Tz) -> Option<DateTime<Utc>> {
    let step = i64::try_from(every.as_millis()).ok()?;
    // `t` is where the stretch of constant offset `off` being searched begins.
    let mut t = after.timestamp_millis();
    let mut off = offset_ms(tz, t)?;
    // The next grid point in local wall-clock milliseconds.
    let mut grid = t
        .checked_add(off)?
        .div_euclid(step)
        .checked_add(1)?
        .checked_mul(step)?;
    for _ in 0..MAX_TRANSITIONS {
        let candidate = grid.checked_sub(off)?;
        let off_there = offset_ms(tz, candidate)?;
        if off_there == off {
            return DateTime::from_timestamp_millis(candidate);
        }
        // The offset changes before the candidate: walk into the next stretch.
        let change = transition_between(tz, t, candidate, off)?;
        let new_off = offset_ms(tz, change)?;
        if new_off > off {
            // Spring forward: local time jumps from change+off to change+new_off. A grid
            // point inside the jump fires once, at the jump.
            if grid <= change.checked_add(new_off)? {
                return DateTime::from_timestamp_millis(change);
            }
        } else {
            // Fall back: local time starts again from change+new_off; the first grid point
            // at or after it is next (the repeated hour is on the grid again).
            let local = change.checked_add(new_off)?;
            grid = local
                .checked_add(step - 1)?
                .div_euclid(step)
                .checked_mul(step)?;
        }
        t = change;
        off = new_off;
    }
    None
}

#[cfg(test)]
mod tests;
