//! Rezone: a schedule hand-converted to another zone (`50 23 * * 0-4` in UTC meaning 08:50
//! Monday to Friday in Seoul) rewritten into that zone, hours shifted and the day lists moved
//! when the shift crosses midnight. The rewrite is kept only when it is exactly equivalent: both
//! schedules are walked with opsd's own evaluator over the next two years and must fire at the
//! same instants, which a zone with daylight saving time (a shift that is not fixed) fails.
//! When neither zone changes its offset over those two years (UTC, Asia/Seoul...), the shifted
//! hours and minutes are the same instants by construction, so only the days are compared, one
//! by one: 731 days instead of every fire (a `* * * * *` line has a million).

use super::cron_field::{Field, Which};
use super::times::Times;
use crate::schedule::Schedule;
use chrono::{DateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// How far ahead the two schedules are compared.
const HORIZON_DAYS: i64 = 2 * 366;
/// How many local times a fallback comment lists per offset of the target zone.
const SHOWN_TIMES: usize = 4;

/// The zone's offset from UTC at `at`, in minutes.
fn offset_minutes(tz: Tz, at: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
        / 60
}

/// `times` (read in `from`) rewritten for `to`, if the rewrite fires at the same instants over
/// the two years after `start`; else why not.
pub fn rezone(times: &Times, from: Tz, to: Tz, start: DateTime<Utc>) -> Result<Times, String> {
    let candidate = shifted(
        times,
        offset_minutes(to, start) - offset_minutes(from, start),
    )?;
    let original = schedule(times, from)?;
    let rewritten = schedule(&candidate, to)?;
    if fixed_offset(from, start) && fixed_offset(to, start) {
        return same_days(times, (&original, from), (&rewritten, to), start)
            .map(|()| candidate)
            .map_err(|day| {
                format!(
                    "`{}` in {to} would not fire on the same days (first difference: {day} in \
                     {from}); the days do not move as a whole",
                    candidate.expression()
                )
            });
    }
    same_fires((&original, from), (&rewritten, to), start).map_err(|first| {
        format!(
            "`{}` in {to} would not fire at the same instants (first difference: {}); the \
             offset between {from} and {to} is not fixed or the days do not move as a whole",
            candidate.expression(),
            first.with_timezone(&to).format("%Y-%m-%d %H:%M %Z")
        )
    })?;
    Ok(candidate)
}

/// Whether `original` and `rewritten` fire at the same instants over the horizon after
/// `start`, walked fire by fire (any zones); else the first instant that differs.
fn same_fires(
    (original, _): (&Schedule, Tz),
    (rewritten, _): (&Schedule, Tz),
    start: DateTime<Utc>,
) -> Result<(), DateTime<Utc>> {
    let end = start + TimeDelta::days(HORIZON_DAYS);
    let mut a = original.fires_after(start).take_while(|t| *t < end);
    let mut b = rewritten.fires_after(start).take_while(|t| *t < end);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ok(()),
            (x, y) if x == y => continue,
            (Some(x), Some(y)) => return Err(x.min(y)),
            (Some(t), None) | (None, Some(t)) => return Err(t),
        }
    }
}

/// True when `tz`'s offset from UTC is the same at every hour of the two years after `start`
/// (no zone changes its offset and back within an hour).
fn fixed_offset(tz: Tz, start: DateTime<Utc>) -> bool {
    let first = offset_minutes(tz, start);
    (1..=HORIZON_DAYS * 24).all(|h| offset_minutes(tz, start + TimeDelta::hours(h)) == first)
}

/// With fixed offsets: whether `original` (in its zone) fires on each day of the horizon
/// exactly when `rewritten` fires on that day moved by the shift's carry (a day later when the
/// times crossed midnight forwards). The shifted hours and minutes are the same instants by
/// construction ([`shifted`]), so equal days make equal fire times. Else the first day (in the
/// original's zone) that differs.
fn same_days(
    times: &Times,
    (original, from): (&Schedule, Tz),
    (rewritten, to): (&Schedule, Tz),
    start: DateTime<Utc>,
) -> Result<(), chrono::NaiveDate> {
    let delta = offset_minutes(to, start) - offset_minutes(from, start);
    // Every time moves by the same number of days unless the schedule fires every day, when
    // the days cannot differ ([`shifted`] refuses the rest).
    let carry = times
        .hour
        .values()
        .first()
        .zip(times.minute.values().first())
        .map_or(0, |(h, m)| {
            (i32::from(*h) * 60 + i32::from(*m) + delta).div_euclid(1440)
        });
    let carry = if every_day(times) { 0 } else { carry };
    let first = start.with_timezone(&from).date_naive().succ_opt();
    let days = first
        .into_iter()
        .flat_map(|d| d.iter_days())
        .take(HORIZON_DAYS as usize);
    for day in days {
        let moved = day + TimeDelta::days(i64::from(carry));
        if fires_on(original, from, day) != fires_on(rewritten, to, moved) {
            return Err(day);
        }
    }
    Ok(())
}

/// Whether `schedule` fires on the local `day` of the fixed-offset zone `tz`.
fn fires_on(schedule: &Schedule, tz: Tz, day: chrono::NaiveDate) -> bool {
    let local = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
    };
    match (local(day), day.succ_opt().and_then(local)) {
        (Some(begin), Some(end)) => schedule
            .fires_after(begin.with_timezone(&Utc) - TimeDelta::seconds(1))
            .next()
            .is_some_and(|t| t < end),
        _ => false,
    }
}

/// The schedule opsd would run for `times` in `tz`.
fn schedule(times: &Times, tz: Tz) -> Result<Schedule, String> {
    Schedule::parse(&times.expression(), tz, BTreeSet::new()).map_err(|e| e.to_string())
}

/// True when the day fields pick every day, so a shift across midnight changes no day.
fn every_day(t: &Times) -> bool {
    let days = if t.days_and() {
        t.dom.is_full() && t.dow.is_full()
    } else {
        t.dom.is_full() || t.dow.is_full()
    };
    t.month.is_full() && days
}

/// `times` moved by `delta` minutes: the hours and minutes shifted, and the day fields by a
/// day when every time crosses midnight the same way.
fn shifted(times: &Times, delta: i32) -> Result<Times, String> {
    let mut carries = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for h in times.hour.values() {
        for m in times.minute.values() {
            let t = i32::from(h) * 60 + i32::from(m) + delta;
            carries.insert(t.div_euclid(1440));
            pairs.insert(t.rem_euclid(1440));
        }
    }
    let hours: BTreeSet<u8> = pairs.iter().map(|t| (t / 60) as u8).collect();
    let minutes: BTreeSet<u8> = pairs.iter().map(|t| (t % 60) as u8).collect();
    if hours.len() * minutes.len() != pairs.len() {
        return Err("the shifted times are not one set of hours by one set of minutes".into());
    }
    let mut out = *times;
    out.hour = restarred(Field::of(Which::Hour, hours), times.hour);
    out.minute = restarred(Field::of(Which::Minute, minutes), times.minute);
    if every_day(times) {
        return Ok(out);
    }
    let carry = match carries.iter().collect::<Vec<_>>()[..] {
        [c] => *c,
        _ => {
            return Err("some of its times move to another day and some do not".into());
        }
    };
    if carry != 0 {
        if !times.dow.is_full() {
            let days = times
                .dow
                .values()
                .into_iter()
                .map(|d| (i32::from(d) + carry).rem_euclid(7) as u8);
            out.dow = Field {
                star: times.dow.star,
                ..Field::of(Which::DayOfWeek, days)
            };
        }
        if !times.dom.is_full() {
            let mut days = Vec::new();
            for d in times.dom.values() {
                let moved = i32::from(d) + carry;
                if !(1..=28).contains(&moved) {
                    return Err(format!(
                        "day {d} of the month moves to {}, which no day-of-month field says",
                        if carry > 0 {
                            "the next day"
                        } else {
                            "the day before"
                        }
                    ));
                }
                days.push(moved as u8);
            }
            out.dom = Field {
                star: times.dom.star,
                ..Field::of(Which::DayOfMonth, days)
            };
        }
    }
    Ok(out)
}

/// `field`, starred again (written `*` or `*/N`) when `like` was and it is still every value
/// or still the same values.
fn restarred(field: Field, like: Field) -> Field {
    Field {
        star: like.star && (field.is_full() || field.bits == like.bits),
        ..field
    }
}

/// The local times in `to` at which `times` (read in `from`) fires, for each offset `to` has
/// over the next two years: what a reader needs when the schedule stays in `from`.
pub fn local_times(times: &Times, from: Tz, to: Tz, start: DateTime<Utc>) -> String {
    let mut offsets = Vec::new();
    for day in (0..HORIZON_DAYS).step_by(7) {
        let at = start + TimeDelta::days(day);
        let off = offset_minutes(to, at) - offset_minutes(from, at);
        let abbrev = at.with_timezone(&to).format("%Z").to_string();
        if !offsets.iter().any(|(o, _)| *o == off) {
            offsets.push((off, abbrev));
        }
    }
    let mut parts = Vec::new();
    for (off, abbrev) in offsets {
        let mut local = BTreeSet::new();
        for h in times.hour.values() {
            for m in times.minute.values() {
                local.insert((i32::from(h) * 60 + i32::from(m) + off).rem_euclid(1440));
            }
        }
        let mut shown: Vec<String> = local
            .iter()
            .take(SHOWN_TIMES)
            .map(|t| format!("{:02}:{:02}", t / 60, t % 60))
            .collect();
        if local.len() > SHOWN_TIMES {
            shown.push(format!("… ({} times a day)", local.len()));
        }
        parts.push(format!("{} {abbrev}", shown.join(", ")));
    }
    format!("in {to} that is {}", parts.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(fields: &str) -> Times {
        let f: Vec<&str> = fields.split(' ').collect();
        Times::parse([f[0], f[1], f[2], f[3], f[4]]).expect(fields)
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
            .single()
            .expect("a date")
    }

    fn rezoned(fields: &str, to: Tz) -> Result<String, String> {
        rezone(&times(fields), Tz::UTC, to, start()).map(|t| t.expression())
    }

    #[test]
    fn a_fixed_shift_moves_hours_and_days() {
        assert_eq!(
            rezoned("50 23 * * 0-4", Tz::Asia__Seoul),
            Ok("50 8 * * 1-5".into())
        );
        assert_eq!(
            rezoned("30 09 * * *", Tz::Asia__Seoul),
            Ok("30 18 * * *".into())
        );
        assert_eq!(
            rezoned("0 20 1,15 * *", Tz::Asia__Seoul),
            Ok("0 5 2,16 * *".into())
        );
        assert_eq!(
            rezoned("*/20 */6 * * *", Tz::Asia__Seoul),
            Ok("*/20 3,9,15,21 * * *".into())
        );
        // Minutes move too with a half-hour zone.
        assert_eq!(
            rezoned("0 3 * * *", Tz::Asia__Kolkata),
            Ok("30 8 * * *".into())
        );
    }

    #[test]
    fn what_is_not_exactly_equivalent_is_refused() {
        // Daylight saving time: the offset from UTC is not fixed.
        assert!(rezoned("30 13 * * 1-5", Tz::America__New_York).is_err());
        // Day 31 at 23:00 UTC is the 1st of the next month only after a 31-day month.
        assert!(rezoned("0 23 31 * *", Tz::Asia__Seoul).is_err());
        // 09:00 stays on its day, 20:00 moves to the next: no one day field says both.
        assert!(rezoned("0 9,20 * * 1", Tz::Asia__Seoul).is_err());
        // June at 23:00 UTC is 2 June to 1 July in Seoul.
        assert!(rezoned("0 23 * 6 *", Tz::Asia__Seoul).is_err());
    }

    /// With fixed offsets the days-only comparison says what the fire-by-fire walk says.
    #[test]
    fn comparing_days_agrees_with_walking_every_fire() {
        let lines = [
            "50 23 * * 0-4",
            "0 23 * 6 *",
            "0 20 1,15 * *",
            "*/30 22,23 * * 5",
            "15 23 * 1-3 0",
            "0 22 28 2 *",
            "0 16 * * 6",
            "*/15 * 2 * *",
        ];
        for line in lines {
            let t = times(line);
            let delta = offset_minutes(Tz::Asia__Seoul, start());
            let Ok(candidate) = shifted(&t, delta) else {
                continue;
            };
            let original = schedule(&t, Tz::UTC).expect(line);
            let rewritten = schedule(&candidate, Tz::Asia__Seoul).expect(line);
            let a = (&original, Tz::UTC);
            let b = (&rewritten, Tz::Asia__Seoul);
            assert_eq!(
                same_days(&t, a, b, start()).is_ok(),
                same_fires(a, b, start()).is_ok(),
                "{line} -> {}",
                candidate.expression()
            );
        }
    }

    #[test]
    fn the_local_times_name_each_offset() {
        let text = local_times(
            &times("30 13 * * 1-5"),
            Tz::UTC,
            Tz::America__New_York,
            start(),
        );
        assert_eq!(text, "in America/New_York that is 08:30 EST / 09:30 EDT");
    }
}
