//! The clock bound: a host whose clock is off etcd's by more than `[fleet].max_clock_offset`
//! refuses fleet claims, and says by how much. Slots are named by their instant, so a host
//! whose clock runs ahead claims slots early and one behind claims them late; past the bound,
//! a late host could claim a slot whose claim already expired. The measure is etcd's `Date`
//! header against this host's clock at the middle of the round trip (see
//! [`ClockReading`](super::client::ClockReading)); only an offset certainly beyond the bound
//! (after the measure's uncertainty) refuses.
//!
//! A reading is projected to the moment of the claim with the monotonic clock: its offset
//! stays, its uncertainty grows by [`DRIFT_PPM`] of its age. It is no use when it is older
//! than [`FRESH`], or when the wall clock moved against the monotonic one since it was taken
//! (a step: `date -s`, a VM resumed, NTP stepping): the claim then measures again first.

use super::client::ClockReading;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// How old the latest measure may be; the host's keepalive takes one every 2 s.
pub const FRESH: Duration = Duration::from_secs(20);
/// How fast this host's clock may drift from etcd's between two measures, in parts per
/// million: 500, the largest frequency correction the kernel's NTP discipline applies.
pub const DRIFT_PPM: i64 = 500;
/// How far the wall clock may move against the monotonic clock, since a reading, before it
/// counts as a step (the two clocks are not read at the same instant).
pub const STEP: Duration = Duration::from_millis(50);

/// This host's two clocks read together.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The monotonic clock (never stepped).
    pub mono: Instant,
    /// The wall clock (which slots are named by).
    pub wall: DateTime<Utc>,
}

impl Now {
    /// Both clocks, now.
    pub fn read() -> Now {
        Now {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// Why this host may not claim now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No reading to go by (none yet, too old, or taken before a step): measure again.
    Unmeasured(String),
    /// The clock is certainly off by more than the bound.
    Off(String),
}

impl Refusal {
    /// Whether a fresh measure may lift it.
    pub fn wants_measure(&self) -> bool {
        matches!(self, Refusal::Unmeasured(_))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unmeasured(why) | Refusal::Off(why) => f.write_str(why),
        }
    }
}

/// `reading` projected to `now`: (offset, uncertainty) in milliseconds, the uncertainty grown
/// by [`DRIFT_PPM`] of the reading's age; `Err` when it is stale or a step came between.
pub fn project(reading: Option<ClockReading>, now: Now) -> Result<(i64, i64), Refusal> {
    let Some(r) = reading else {
        return Err(Refusal::Unmeasured(
            "no answer from etcd yet, so this host's clock cannot be checked".into(),
        ));
    };
    let age = now.mono.saturating_duration_since(r.at);
    if age > FRESH {
        return Err(Refusal::Unmeasured(format!(
            "no answer from etcd for {} s",
            age.as_secs()
        )));
    }
    let age_ms = age.as_millis() as i64;
    let step_ms = (now.wall - r.wall).num_milliseconds() - age_ms;
    if step_ms.abs() > STEP.as_millis() as i64 {
        return Err(Refusal::Unmeasured(format!(
            "this host's clock was stepped by {:+.3} s since etcd's was last measured",
            step_ms as f64 / 1000.0
        )));
    }
    let drift = (age_ms * DRIFT_PPM + 999_999) / 1_000_000;
    Ok((r.offset_ms, r.uncertainty_ms + drift))
}

/// `Ok` when this host may claim at `now`: `reading`, projected, within `max` of etcd's clock
/// after its uncertainty; else why not.
pub fn check(reading: Option<ClockReading>, max: Duration, now: Now) -> Result<(), Refusal> {
    let (offset_ms, uncertainty_ms) = project(reading, now)?;
    let certain = offset_ms.abs() - uncertainty_ms;
    if certain > max.as_millis() as i64 {
        let way = if offset_ms > 0 { "ahead of" } else { "behind" };
        return Err(Refusal::Off(format!(
            "this host's clock is {:.1} s {way} etcd's (± {:.1} s), more than max_clock_offset \
             ({}); fleet claims are refused until it is set right (check NTP: timedatectl)",
            offset_ms.abs() as f64 / 1000.0,
            uncertainty_ms as f64 / 1000.0,
            humantime::format_duration(max)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading of `offset_ms` ± `uncertainty_ms` taken at `at`, both clocks agreeing then.
    fn reading(offset_ms: i64, uncertainty_ms: i64, at: Now) -> Option<ClockReading> {
        Some(ClockReading {
            at: at.mono,
            wall: at.wall,
            offset_ms,
            uncertainty_ms,
        })
    }

    /// `then` moved on by `by` on both clocks, and the wall clock stepped by `step` besides.
    fn later(then: Now, by: Duration, step: chrono::TimeDelta) -> Now {
        Now {
            mono: then.mono + by,
            wall: then.wall + chrono::TimeDelta::from_std(by).unwrap() + step,
        }
    }

    #[test]
    fn an_offset_within_the_bound_and_its_uncertainty_claims() {
        let now = Now::read();
        let max = Duration::from_secs(2);
        assert_eq!(check(reading(0, 500, now), max, now), Ok(()));
        assert_eq!(check(reading(-2400, 500, now), max, now), Ok(()));
    }

    #[test]
    fn an_offset_certainly_beyond_the_bound_refuses_and_says_which_way() {
        let now = Now::read();
        let max = Duration::from_secs(2);
        let e = check(reading(5_000, 510, now), max, now).unwrap_err();
        assert!(!e.wants_measure(), "{e}");
        assert!(e.to_string().contains("5.0 s ahead of etcd's"), "{e}");
        let e = check(reading(-300_000, 510, now), max, now).unwrap_err();
        assert!(e.to_string().contains("300.0 s behind etcd's"), "{e}");
    }

    #[test]
    fn no_reading_or_a_stale_one_wants_a_new_measure() {
        let then = Now::read();
        let max = Duration::from_secs(2);
        let e = check(None, max, then).unwrap_err();
        assert!(e.wants_measure(), "{e}");
        let now = later(
            then,
            FRESH + Duration::from_secs(1),
            chrono::TimeDelta::zero(),
        );
        let e = check(reading(0, 500, then), max, now).unwrap_err();
        assert!(e.wants_measure(), "{e}");
        assert!(
            e.to_string().contains("no answer from etcd for 21 s"),
            "{e}"
        );
    }

    /// A reading is carried to the claim by the monotonic clock: the offset stays, the
    /// uncertainty grows with its age (before, a 20 s old reading counted as taken now).
    #[test]
    fn a_reading_is_projected_with_its_uncertainty_grown_by_the_drift_bound() {
        let then = Now::read();
        let now = later(then, Duration::from_secs(10), chrono::TimeDelta::zero());
        assert_eq!(project(reading(1_200, 500, then), now), Ok((1_200, 505)));
        let now = later(then, Duration::from_secs(20), chrono::TimeDelta::zero());
        assert_eq!(project(reading(-40, 600, then), now), Ok((-40, 610)));
        // An offset just within the bound when measured is not certainly beyond it later...
        let max = Duration::from_millis(2_000);
        assert!(check(reading(2_504, 500, then), max, then).is_err());
        assert_eq!(check(reading(2_504, 500, then), max, now), Ok(()));
    }

    /// A wall-clock step since the reading (the wall clock moved against the monotonic one)
    /// makes the reading useless, whichever way: the claim must measure again (before, a host
    /// stepped 5 minutes back kept claiming on its last reading for up to 20 s).
    #[test]
    fn a_wall_clock_step_since_the_reading_wants_a_new_measure() {
        let then = Now::read();
        let max = Duration::from_secs(2);
        for step in [-300_000, -1_000, 1_000, 300_000] {
            let now = later(
                then,
                Duration::from_secs(3),
                chrono::TimeDelta::milliseconds(step),
            );
            let e = check(reading(0, 500, then), max, now).unwrap_err();
            assert!(e.wants_measure(), "{step}: {e}");
            assert!(e.to_string().contains("stepped by"), "{step}: {e}");
        }
        // Reading the two clocks a few milliseconds apart is no step.
        let now = later(
            then,
            Duration::from_secs(3),
            chrono::TimeDelta::milliseconds(20),
        );
        assert_eq!(check(reading(0, 500, then), max, now), Ok(()));
    }
}
