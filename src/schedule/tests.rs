//! Unit tests for schedules: fields, nicknames, L/W/#, `@every` alignment, DST and exclusions.

use super::*;
use chrono_tz::{America::New_York, Asia::Seoul, Europe::Berlin, UTC};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn sched(expr: &str, tz: Tz) -> Schedule {
    Schedule::parse(expr, tz, BTreeSet::new()).unwrap()
}

fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let mut t = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next_after(t).unwrap();
        out.push(t);
    }
    out
}

#[test]
fn five_six_and_seven_fields() {
    let five = sched("30 2 * * *", UTC);
    assert_eq!(
        five.next_after(utc("2026-01-01T00:00:00Z")),
        Some(utc("2026-01-01T02:30:00Z"))
    );
    let six = sched("15 30 2 * * *", UTC);
    assert_eq!(
        six.next_after(utc("2026-01-01T00:00:00Z")),
        Some(utc("2026-01-01T02:30:15Z"))
    );
    let seven = sched("0 0 0 1 1 * 2028", UTC);
    assert_eq!(
        seven.next_after(utc("2026-01-01T00:00:00Z")),
        Some(utc("2028-01-01T00:00:00Z"))
    );
    assert_eq!(seven.next_after(utc("2028-06-01T00:00:00Z")), None);
}

#[test]
fn nicknames() {
    let h = sched("@hourly", UTC);
    assert_eq!(
        h.next_after(utc("2026-01-01T00:10:00Z")),
        Some(utc("2026-01-01T01:00:00Z"))
    );
    let d = sched("@daily", Seoul);
    assert_eq!(
        d.next_after(utc("2026-01-01T00:10:00Z")),
        Some(utc("2026-01-01T15:00:00Z"))
    );
    let w = sched("@weekly", UTC);
    // 2026-01-01 is a Thursday; @weekly is Sunday midnight.
    assert_eq!(
        w.next_after(utc("2026-01-01T00:10:00Z")),
        Some(utc("2026-01-04T00:00:00Z"))
    );
    let m = sched("@monthly", UTC);
    assert_eq!(
        m.next_after(utc("2026-01-15T00:00:00Z")),
        Some(utc("2026-02-01T00:00:00Z"))
    );
}

#[test]
fn last_weekday_and_nth() {
    // L: last day of the month.
    let l = sched("0 0 12 L * *", UTC);
    assert_eq!(
        l.next_after(utc("2026-02-01T00:00:00Z")),
        Some(utc("2026-02-28T12:00:00Z"))
    );
    // W: the weekday nearest the 15th; 2026-08-15 is a Saturday, so Friday the 14th.
    let w = sched("0 0 9 15W * *", UTC);
    assert_eq!(
        w.next_after(utc("2026-08-01T00:00:00Z")),
        Some(utc("2026-08-14T09:00:00Z"))
    );
    // #: the second Tuesday; in March 2026 that is the 10th.
    let nth = sched("0 0 9 * * TUE#2", UTC);
    assert_eq!(
        nth.next_after(utc("2026-03-01T00:00:00Z")),
        Some(utc("2026-03-10T09:00:00Z"))
    );
}

#[test]
fn office_hours_in_seoul_need_no_utc_arithmetic() {
    let s = sched("0 50 8 * * Mon-Fri", Seoul);
    // Friday 2026-11-27 08:50 KST is 2026-11-26 23:50 UTC; then Monday 2026-11-30.
    assert_eq!(
        next_n(&s, "2026-11-26T12:00:00Z", 2),
        vec![utc("2026-11-26T23:50:00Z"), utc("2026-11-29T23:50:00Z")]
    );
}

#[test]
fn every_aligns_to_the_clock() {
    let s = sched("@every 5s", UTC);
    assert_eq!(
        next_n(&s, "2026-01-01T00:00:03.400Z", 3),
        vec![
            utc("2026-01-01T00:00:05Z"),
            utc("2026-01-01T00:00:10Z"),
            utc("2026-01-01T00:00:15Z")
        ]
    );
    // An exact slot is not fired twice: "after" is strict.
    assert_eq!(
        s.next_after(utc("2026-01-01T00:00:05Z")),
        Some(utc("2026-01-01T00:00:10Z"))
    );
    // @every 1h lands on the local hour in a zone with a :30 offset.
    let kolkata = sched("@every 1h", chrono_tz::Asia::Kolkata);
    assert_eq!(
        kolkata.next_after(utc("2026-01-01T00:10:00Z")),
        Some(utc("2026-01-01T00:30:00Z"))
    );
}

#[test]
fn every_rejects_sub_second_and_empty() {
    assert!(Schedule::parse("@every 500ms", UTC, BTreeSet::new()).is_err());
    assert!(Schedule::parse("@every", UTC, BTreeSet::new()).is_err());
    assert!(Schedule::parse("@every soon", UTC, BTreeSet::new()).is_err());
}

#[test]
fn bad_cron_is_an_error() {
    let e = Schedule::parse("61 * * * *", UTC, BTreeSet::new()).unwrap_err();
    assert!(e.to_string().contains("invalid cron expression"), "{e}");
    assert!(Schedule::parse("* * *", UTC, BTreeSet::new()).is_err());
}

/// Collects every fire time in [from, to).
fn fires_between(s: &Schedule, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let (mut t, end) = (utc(from), utc(to));
    let mut out = Vec::new();
    while let Some(n) = s.next_after(t) {
        if n >= end {
            break;
        }
        out.push(n);
        t = n;
    }
    out
}

#[test]
fn spring_forward_runs_a_skipped_slot_once() {
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    let s = sched("0 30 2 * * *", New_York);
    let fires = fires_between(&s, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z");
    assert_eq!(fires.len(), 3, "{fires:?}");
    assert_eq!(fires[0], utc("2026-03-07T07:30:00Z"));
    assert_eq!(fires[2], utc("2026-03-09T06:30:00Z"));
    // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    let b = sched("0 30 2 * * *", Berlin);
    assert_eq!(
        fires_between(&b, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z").len(),
        3
    );
}

#[test]
fn fall_back_does_not_run_twice() {
    // New York, 2026-11-01: 01:30 happens twice (EDT, then EST).
    let s = sched("0 30 1 * * *", New_York);
    let fires = fires_between(&s, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z");
    assert_eq!(fires.len(), 3, "{fires:?}");
    // Berlin, 2026-10-25: 02:30 happens twice.
    let b = sched("0 30 2 * * *", Berlin);
    assert_eq!(
        fires_between(&b, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z").len(),
        3
    );
}

#[test]
fn seoul_has_no_dst_and_fires_daily() {
    let s = sched("0 0 4 * * Sun", Seoul);
    assert_eq!(
        s.next_after(utc("2026-11-25T00:00:00Z")),
        Some(utc("2026-11-28T19:00:00Z"))
    );
    assert_eq!(
        fires_between(&s, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z").len(),
        52
    );
}

#[test]
fn excluded_dates_are_skipped_in_the_jobs_zone() {
    let holidays: BTreeSet<NaiveDate> = ["2026-12-25"].iter().map(|d| d.parse().unwrap()).collect();
    let s = Schedule::parse("0 50 8 * * Mon-Fri", Seoul, holidays).unwrap();
    // Thursday 2026-12-24 fires; Friday the 25th (KST) is skipped; Monday the 28th is next.
    assert_eq!(
        next_n(&s, "2026-12-23T00:00:00Z", 2),
        vec![utc("2026-12-23T23:50:00Z"), utc("2026-12-27T23:50:00Z")]
    );
}

#[test]
fn start_fires_only_at_start() {
    let s = sched("@start", UTC);
    assert!(s.is_start());
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
}

#[test]
fn missed_slot_after_downtime() {
    let s = sched("0 0 3 * * *", UTC);
    assert_eq!(
        s.missed_between(utc("2026-01-01T03:00:00Z"), utc("2026-01-03T12:00:00Z")),
        Some(utc("2026-01-03T03:00:00Z"))
    );
    assert_eq!(
        s.missed_between(utc("2026-01-03T03:00:00Z"), utc("2026-01-03T12:00:00Z")),
        None
    );
    let e = sched("@every 10s", UTC);
    assert_eq!(
        e.missed_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-02T00:00:05Z")),
        Some(utc("2026-01-02T00:00:00Z"))
    );
}

#[test]
fn missed_slot_of_a_frequent_cron_after_a_long_downtime() {
    // A month of per-second slots: the answer is the last one, and a holiday is stepped over.
    let s = sched("* * * * * *", UTC);
    assert_eq!(
        s.missed_between(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T12:00:00.500Z")),
        Some(utc("2026-02-01T12:00:00Z"))
    );
    let exclude = BTreeSet::from([NaiveDate::from_ymd_opt(2026, 2, 1).expect("date")]);
    let h = Schedule::parse("* * * * * *", Seoul, exclude).expect("valid");
    assert_eq!(
        h.missed_between(utc("2026-01-31T14:00:00Z"), utc("2026-02-01T12:00:00Z")),
        Some(utc("2026-01-31T14:59:59Z")),
        "the last second before the excluded day in Seoul"
    );
}

#[test]
fn every_90m_keeps_the_local_grid_on_both_dst_days_in_new_york() {
    let s = sched("@every 90m", New_York);
    // 2027-03-14: 02:00 EST becomes 03:00 EDT (07:00 UTC). 03:00 is on the grid and exists.
    assert_eq!(
        next_n(&s, "2027-03-14T04:59:59Z", 4),
        vec![
            utc("2027-03-14T05:00:00Z"), // 00:00 EST
            utc("2027-03-14T06:30:00Z"), // 01:30 EST
            utc("2027-03-14T07:00:00Z"), // 03:00 EDT
            utc("2027-03-14T08:30:00Z"), // 04:30 EDT
        ]
    );
    // 2027-11-07: 02:00 EDT becomes 01:00 EST (06:00 UTC); 01:30 happens twice, both fire.
    assert_eq!(
        next_n(&s, "2027-11-07T03:59:59Z", 5),
        vec![
            utc("2027-11-07T04:00:00Z"), // 00:00 EDT
            utc("2027-11-07T05:30:00Z"), // 01:30 EDT
            utc("2027-11-07T06:30:00Z"), // 01:30 EST
            utc("2027-11-07T08:00:00Z"), // 03:00 EST
            utc("2027-11-07T09:30:00Z"), // 04:30 EST
        ]
    );
}

#[test]
fn every_slot_in_a_spring_forward_gap_fires_once_at_its_end() {
    // 02:00-03:00 does not exist on 2027-03-14 in New York: 02:00, 02:15 ... collapse into
    // one run at 03:00 EDT, then the grid goes on.
    let s = sched("@every 15m", New_York);
    assert_eq!(
        next_n(&s, "2027-03-14T06:50:00Z", 3),
        vec![
            utc("2027-03-14T07:00:00Z"), // 03:00 EDT
            utc("2027-03-14T07:15:00Z"),
            utc("2027-03-14T07:30:00Z"),
        ]
    );
}

#[test]
fn every_7s_counts_from_1970_on_the_local_clock_and_never_waits_longer_than_7s() {
    let s = sched("@every 7s", UTC);
    for t in next_n(&s, "2026-01-01T00:00:00Z", 20) {
        assert_eq!(t.timestamp() % 7, 0, "{t}");
    }
    let ny = sched("@every 7s", New_York);
    for day in ["2027-03-14T06:55:00Z", "2027-11-07T05:55:00Z"] {
        let fires = next_n(&ny, day, 200);
        for w in fires.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap > chrono::TimeDelta::zero() && gap <= chrono::TimeDelta::seconds(7),
                "{} -> {}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn intervals_too_long_to_schedule_are_rejected() {
    for expr in [
        "@every 2305843009213693952s",
        "@every 999999999999h",
        "@every 9223372036854775s",
        "@every 367d",
    ] {
        let e = Schedule::parse(expr, UTC, BTreeSet::new()).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{expr}: {e}");
    }
    assert!(Schedule::parse("@every 366d", UTC, BTreeSet::new()).is_ok());
}

#[test]
fn no_every_interval_panics_anywhere_in_time() {
    let mut exprs: Vec<String> = [
        "999999999999h",
        "18446744073709551615s",
        "1y",
        "10000y",
        "366d",
        "1s",
    ]
    .iter()
    .map(|s| format!("@every {s}"))
    .collect();
    for bits in 0..64 {
        for n in [1u64 << bits, (1u64 << bits) - 1, (1u64 << bits) + 1] {
            exprs.push(format!("@every {n}s"));
        }
    }
    for n in [7u64, 59, 61, 86_399, 86_401, 31_622_399, 31_622_400] {
        exprs.push(format!("@every {n}s"));
    }
    let instants = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::MAX_UTC - chrono::TimeDelta::days(400),
        DateTime::UNIX_EPOCH,
        utc("2027-03-14T06:59:59.999Z"),
        utc("2027-11-07T05:59:59.999Z"),
    ];
    let zones = [
        UTC,
        New_York,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Asia::Kolkata,
    ];
    for expr in &exprs {
        for tz in zones {
            let Ok(s) = Schedule::parse(expr, tz, BTreeSet::new()) else {
                continue;
            };
            for at in instants {
                if let Some(n) = s.next_after(at) {
                    assert!(n > at, "{expr} in {tz}: {n} is not after {at}");
                }
                let _ = s.missed_between(at, DateTime::<Utc>::MAX_UTC);
                let _ = s.missed_between(DateTime::<Utc>::MIN_UTC, at);
            }
        }
    }
}

#[test]
fn every_2h_on_the_fall_back_day_keeps_its_local_times() {
    // docs/configuration.md: 00:00 EDT, then 02:00 EST (02:00 EDT is 01:00 EST, off the grid).
    let s = sched("@every 2h", New_York);
    assert_eq!(
        next_n(&s, "2027-11-07T03:59:59Z", 2),
        vec![utc("2027-11-07T04:00:00Z"), utc("2027-11-07T07:00:00Z")]
    );
}

#[test]
fn frequent_means_an_interval_or_a_wildcard_time_of_day_field() {
    for expr in [
        "@every 1d",
        "@hourly",
        "*/5 * * * *",
        "0 * 3 * * *",
        "* 30 2 * * *",
    ] {
        assert!(sched(expr, UTC).is_frequent(), "{expr}");
    }
    for expr in [
        "@daily",
        "@start",
        "30 2 * * *",
        "0 0 9-17 * * Mon-Fri",
        "0 0 3 * * * 2030",
    ] {
        assert!(!sched(expr, UTC).is_frequent(), "{expr}");
    }
}

#[test]
fn a_cron_without_a_year_that_matches_no_date_is_refused() {
    for expr in ["0 0 0 30 2 *", "0 0 0 31 4 *", "0 0 31 11 *"] {
        let err = Schedule::parse(expr, UTC, BTreeSet::new())
            .expect_err(expr)
            .to_string();
        assert!(err.contains("never fires"), "{expr}: {err}");
    }
    // 29 February comes every four years; a past year is an ended job, not a mistake.
    for expr in ["0 0 0 29 2 *", "0 0 0 1 1 * 2025"] {
        assert!(
            Schedule::parse(expr, UTC, BTreeSet::new()).is_ok(),
            "{expr}"
        );
    }
}
