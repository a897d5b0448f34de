//! The clock bound: a host whose clock is off etcd's by more than `[fleet].max_clock_offset`
//! refuses fleet claims, and says by how much. Slots are named by their instant, so a host
//! whose clock runs ahead claims slots early and one behind claims them late; past the bound,
//! a late host could claim a slot whose claim already expired. The measure is etcd's `Date`
//! header against this host's clock at the middle of the round trip (see
//! [`ClockReading`](super::client::ClockReading)); only an offset certainly beyond the bound
//! (after the measure's uncertainty) refuses, and a measure older than [`FRESH`] is no measure.

use super::client::ClockReading;
use std::time::{Duration, Instant};

/// How old the latest measure may be; the host's keepalive takes one every 2 s.
pub const FRESH: Duration = Duration::from_secs(20);

/// `Ok` when this host may claim: a fresh `reading` at `now` within `max` of etcd's clock;
/// else why not.
pub fn check(reading: Option<ClockReading>, max: Duration, now: Instant) -> Result<(), String> {
    let Some(r) = reading else {
        return Err("no answer from etcd yet, so this host's clock cannot be checked".into());
    };
    let age = now.saturating_duration_since(r.at);
    if age > FRESH {
        return Err(format!("no answer from etcd for {} s", age.as_secs()));
    }
    let certain = r.offset_ms.abs() - r.uncertainty_ms;
    if certain > max.as_millis() as i64 {
        let way = if r.offset_ms > 0 {
            "ahead of"
        } else {
            "behind"
        };
        return Err(format!(
            "this host's clock is {:.1} s {way} etcd's (± {:.1} s), more than max_clock_offset \
             ({}); fleet claims are refused until it is set right (check NTP: timedatectl)",
            r.offset_ms.abs() as f64 / 1000.0,
            r.uncertainty_ms as f64 / 1000.0,
            humantime::format_duration(max)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(offset_ms: i64, uncertainty_ms: i64, at: Instant) -> Option<ClockReading> {
        Some(ClockReading {
            at,
            offset_ms,
            uncertainty_ms,
        })
    }

    #[test]
    fn an_offset_within_the_bound_and_its_uncertainty_claims() {
        let now = Instant::now();
        let max = Duration::from_secs(2);
        assert_eq!(check(reading(0, 500, now), max, now), Ok(()));
        assert_eq!(check(reading(-2400, 500, now), max, now), Ok(()));
    }

    #[test]
    fn an_offset_certainly_beyond_the_bound_refuses_and_says_which_way() {
        let now = Instant::now();
        let max = Duration::from_secs(2);
        let e = check(reading(5_000, 510, now), max, now).unwrap_err();
        assert!(e.contains("5.0 s ahead of etcd's"), "{e}");
        let e = check(reading(-300_000, 510, now), max, now).unwrap_err();
        assert!(e.contains("300.0 s behind etcd's"), "{e}");
    }

    #[test]
    fn no_reading_or_a_stale_one_refuses() {
        let now = Instant::now();
        let max = Duration::from_secs(2);
        assert!(check(None, max, now).is_err());
        let old = now.checked_sub(FRESH + Duration::from_secs(1)).unwrap();
        let e = check(reading(0, 500, old), max, now).unwrap_err();
        assert!(e.contains("no answer from etcd for 21 s"), "{e}");
    }
}
