//! One job's timer: sleeps until the next fire time on the wall clock (in capped naps, cut
//! short when the alarm thread sees the clock step), fires, and computes the next slot from the previous
//! *scheduled* slot so a slot never fires twice.
//!
//! Why two clocks: a late wake-up has two causes that call for opposite answers. When the
//! machine is busy (or opsd was stalled), the wall and monotonic clocks advance together and
//! the timer is merely late: the newest slot already due fires once (overload, reported in one
//! rate-limited line for all jobs), and the older slots it missed are coalesced into that one
//! run as the job's `catch_up` says (skipped, or caught up by it), counted one by one as
//! skipped and reported in one line for the burst, never fired one by one (each would have been
//! skipped by the overlap policy behind the first, one warn line each). When the wall clock is
//! stepped (or the machine was suspended, during which the monotonic clock stands still), the two
//! clocks disagree and the timer follows cron's rule: a step of less than [`REANCHOR`] leaves
//! fixed-time jobs neither repeated (backward) nor lost (forward: a skipped slot runs once),
//! while frequent jobs just go on at the new time; a larger step is a correction, and every job
//! re-anchors on the new time.
//!
//! A timer that fails (no next fire time can be computed, or a panic) is logged at error and
//! shown as broken in `opsd status` instead of dying silently.

use super::alarm::{Alarm, Ticket, CLOCK_STEP};
use super::job_state::JobState;
use super::runner::{Fire, JobHandle, Runner};
use super::Trigger;
use crate::schedule::Schedule;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The longest single sleep; after it the wall clock is read again.
const MAX_NAP: Duration = Duration::from_secs(60);
/// Firing later than this after the slot, with no clock step seen, counts as overload.
const LATE: TimeDelta = TimeDelta::seconds(2);
/// Cron's bound: a step this large or larger is a correction, and every job re-anchors.
const REANCHOR: TimeDelta = TimeDelta::hours(3);
/// How many missed slots of one burst are counted one by one; past that, the newest slot is
/// found at once and the count says "at least".
const MAX_COUNTED: u64 = 100_000;
/// How often the overload line is logged at most, for all timers together.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How long after a clock-step line the same step seen by other timers is logged at debug.
const STEP_QUIET: Duration = Duration::from_secs(5);
/// How long before a slot the timer leaves tokio's millisecond timer (which wakes up to ~2 ms
/// late) for the precise alarm.
const LAST_STRETCH: Duration = Duration::from_millis(5);

/// How a wait for a slot ended.
enum Woke {
    /// `stop` fired first.
    Stopped,
    /// The slot is due; the alarm's ticket when the alarm woke the timer.
    Due(Option<Ticket>),
    /// The wall clock moved by this much more than the monotonic clock (negative: backward).
    Stepped(TimeDelta),
}

/// The last reading of both clocks, to tell a clock step from a late wake-up.
struct Clocks {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl Clocks {
    fn read() -> Clocks {
        Clocks {
            wall: Utc::now(),
            mono: Instant::now(),
        }
    }

    /// Reads both clocks again; returns how far the wall clock stepped since the last reading,
    /// if it did.
    fn step(&mut self) -> Option<TimeDelta> {
        let now = Clocks::read();
        let wall = now.wall - self.wall;
        let mono = TimeDelta::from_std(now.mono - self.mono).unwrap_or(TimeDelta::MAX);
        *self = now;
        let drift = wall - mono;
        let step = TimeDelta::from_std(CLOCK_STEP).unwrap_or(TimeDelta::MAX);
        (drift.abs() >= step).then_some(drift)
    }
}

/// Returns when the alarm thread sees the wall clock step; never if the thread is gone.
async fn clock_stepped(steps: &mut watch::Receiver<u64>) {
    if steps.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps until wall-clock time `t`: on tokio's timer until [`LAST_STRETCH`] before `t`,
/// then on the precise `alarm`; returns early when the wall clock steps.
async fn sleep_until_wall(
    t: DateTime<Utc>,
    clocks: &mut Clocks,
    steps: &mut watch::Receiver<u64>,
    stop: &CancellationToken,
    alarm: &Alarm,
) -> Woke {
    loop {
        if let Some(step) = clocks.step() {
            return Woke::Stepped(step);
        }
        let left = match (t - clocks.wall).to_std() {
            Ok(d) if !d.is_zero() => d,
            _ => return Woke::Due(None),
        };
        if left <= LAST_STRETCH {
            // Short enough that a clock step in between no longer matters.
            let at = clocks.mono + left;
            return tokio::select! {
                ticket = alarm.wait_until(at) => Woke::Due(Some(ticket)),
                () = stop.cancelled() => Woke::Stopped,
            };
        }
        tokio::select! {
            () = tokio::time::sleep((left - LAST_STRETCH).min(MAX_NAP)) => {}
            () = clock_stepped(steps) => {}
            () = stop.cancelled() => return Woke::Stopped,
        }
    }
}

/// Fires `job` on its schedule until `stop` fires or the schedule has no more slots; a
/// failure of the timer (a panic included) is logged and marks the job broken.
pub async fn run(runner: Runner, job: JobHandle, stop: CancellationToken) {
    let (name, state) = (job.config.name.clone(), job.state.clone());
    let timer = fire_on_schedule(runner, job, stop);
    guarded(&name, &state, timer).await;
}

/// Awaits the timer of `job`; when it fails or panics, logs why at error and marks the job
/// broken (shown by `opsd status`), so a job never stops firing silently.
async fn guarded(job: &str, state: &JobState, timer: impl Future<Output = Result<(), String>>) {
    state.set_broken(None);
    let why = match AssertUnwindSafe(timer).catch_unwind().await {
        Ok(Ok(())) => return,
        Ok(Err(why)) => why,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            format!("timer panicked: {what}")
        }
    };
    tracing::error!(
        job,
        outcome = "broken",
        "{job}: {why}; it will not fire until its definition changes or opsd restarts"
    );
    state.set_next(None);
    state.set_broken(Some(why));
}

/// The timer's loop; an error says why the job cannot be scheduled any more.
async fn fire_on_schedule(
    runner: Runner,
    job: JobHandle,
    stop: CancellationToken,
) -> Result<(), String> {
    let (config, state) = (&job.config, &job.state);
    let Some(schedule) = config.schedule.clone() else {
        return Ok(());
    };
    let mut steps = runner.alarm().clock_steps();
    let mut clocks = Clocks::read();
    let mut prev = clocks.wall;
    loop {
        let next = schedule.next_after(prev);
        state.set_next(next);
        let Some(next) = next else {
            if schedule.may_end() {
                tracing::info!(job = %config.name, "{}: schedule has no further fire times", config.name);
                return Ok(());
            }
            return Err(format!("no fire time after {prev} can be computed"));
        };
        let ticket =
            match sleep_until_wall(next, &mut clocks, &mut steps, &stop, runner.alarm()).await {
                Woke::Due(ticket) => ticket,
                Woke::Stopped => return Ok(()),
                Woke::Stepped(step) => {
                    let (from, missed) = after_step(&schedule, &config.name, prev, step);
                    prev = from;
                    if let Some(slot) = missed {
                        fire(&runner, &job, slot, None);
                    }
                    continue;
                }
            };
        let now = Utc::now();
        prev = next;
        if now - next > LATE {
            // Both clocks agree (a step would have been seen): the daemon is late, not the
            // clock. The newest slot due runs; the ones it missed before are coalesced.
            let burst = coalesce(&schedule, next, now);
            if burst.missed > 0 {
                prev = burst.run;
                state.missed(burst.missed);
                report_missed(&config.name, config.catch_up, &burst, now - next);
            }
            report_overload(&config.name, now - next, burst.missed);
        }
        fire(&runner, &job, prev, ticket);
    }
}

/// The slots a late timer finds due at once: the newest, which runs, and the older ones it
/// missed, coalesced into that run.
#[derive(Debug, PartialEq, Eq)]
struct Burst {
    /// The first slot due (the one the timer slept for).
    first: DateTime<Utc>,
    /// The newest slot due: the one that runs.
    run: DateTime<Utc>,
    /// How many slots from `first` on are due before `run` (at most [`MAX_COUNTED`]).
    missed: u64,
}

/// The burst of `schedule`'s slots due at `now` from `slot` on.
fn coalesce(schedule: &Schedule, slot: DateTime<Utc>, now: DateTime<Utc>) -> Burst {
    let (mut run, mut missed) = (slot, 0);
    while let Some(n) = schedule.next_after(run).filter(|n| *n <= now) {
        run = n;
        missed += 1;
        if missed == MAX_COUNTED {
            run = schedule.missed_between(run, now).unwrap_or(run);
            break;
        }
    }
    Burst {
        first: slot,
        run,
        missed,
    }
}

/// Logs, in one line, the slots of `job` a late timer missed in `burst` (`late` behind) and
/// what its `catch_up` made of them.
fn report_missed(job: &str, catch_up: crate::config::CatchUp, burst: &Burst, late: TimeDelta) {
    let what = match catch_up {
        crate::config::CatchUp::Skip => "are skipped (catch_up = \"skip\")",
        crate::config::CatchUp::Once => "are caught up by one run (catch_up = \"once\")",
    };
    let at_least = if burst.missed >= MAX_COUNTED {
        "at least "
    } else {
        ""
    };
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    tracing::warn!(job, outcome = "skipped", missed_slots = burst.missed,
        first_slot = %stamp(burst.first), late_ms = late.num_milliseconds(),
        "{job}: {at_least}{} slot(s) from {} on were missed while the scheduler was {} s behind; \
         they {what}; it runs once for the newest slot due, {}",
        burst.missed, stamp(burst.first), late.num_seconds(), stamp(burst.run));
}

/// Starts the run for `slot` (the overlap policy decides whether it runs).
fn fire(runner: &Runner, job: &JobHandle, slot: DateTime<Utc>, ticket: Option<Ticket>) {
    if job.config.catch_up == crate::config::CatchUp::Once {
        runner.remember_slot(&job.config.name, slot);
    }
    runner.fire(Fire::new(job, Trigger::Schedule(slot)).with_ticket(ticket));
}

/// Cron's rule for a wall-clock step of `step` seen by a timer whose last slot was `prev`:
/// where to look for the next slot from, and a skipped slot to run once now, if any.
fn after_step(
    schedule: &Schedule,
    job: &str,
    prev: DateTime<Utc>,
    step: TimeDelta,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    let now = Utc::now();
    report_step(step);
    if step.abs() >= REANCHOR || schedule.is_frequent() {
        // A correction, or a job that runs often: go on from the new time.
        tracing::debug!(
            job,
            step_ms = step.num_milliseconds(),
            "{job}: re-anchored on the new time"
        );
        return (now, None);
    }
    if step < TimeDelta::zero() {
        // Back: slots up to `prev` already ran and are not run again.
        return (prev, None);
    }
    // Forward: the slots the step skipped run once, for the latest of them.
    match schedule.missed_between(prev, now) {
        Some(slot) => {
            tracing::info!(job, missed_slot = %slot,
                "{job}: running once a slot the clock step skipped");
            (slot.max(prev), Some(slot))
        }
        None => (prev, None),
    }
}

/// Late slots seen by all timers since the last overload line.
struct Overload {
    reported: Option<Instant>,
    slots: u64,
    jobs: BTreeSet<String>,
    max_late: TimeDelta,
    missed: u64,
}

/// The overload tally shared by every timer.
static OVERLOAD: Mutex<Overload> = Mutex::new(Overload {
    reported: None,
    slots: 0,
    jobs: BTreeSet::new(),
    max_late: TimeDelta::zero(),
    missed: 0,
});

/// Counts one slot of `job` fired `late`, with `missed` slots coalesced into its run, and logs
/// the tally at most every [`REPORT_EVERY`].
fn report_overload(job: &str, late: TimeDelta, missed: u64) {
    let mut o = OVERLOAD.lock().unwrap_or_else(|p| p.into_inner());
    o.slots += 1;
    o.jobs.insert(job.to_string());
    o.max_late = o.max_late.max(late);
    o.missed += missed;
    if o.reported.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
        return;
    }
    let over = o
        .reported
        .map(|t| format!(" in the last {} s", t.elapsed().as_secs()))
        .unwrap_or_default();
    let missed_note = if o.missed > 0 {
        format!(
            "; {} older slot(s) missed meanwhile were coalesced into those runs",
            o.missed
        )
    } else {
        String::new()
    };
    tracing::warn!(
        late_slots = o.slots,
        jobs = o.jobs.len(),
        max_late_ms = o.max_late.num_milliseconds(),
        missed_slots = o.missed,
        job,
        "scheduler overloaded: {} slot(s) of {} job(s) fired late{over}, up to {} ms (job {job}: \
         {} ms); each ran as its overlap policy allows{missed_note}",
        o.slots,
        o.jobs.len(),
        o.max_late.num_milliseconds(),
        late.num_milliseconds(),
    );
    o.reported = Some(Instant::now());
    o.slots = 0;
    o.jobs.clear();
    o.max_late = TimeDelta::zero();
    o.missed = 0;
}

/// When the last clock-step line was logged: every timer sees the same step, one line says it.
static STEP_REPORTED: Mutex<Option<Instant>> = Mutex::new(None);

/// Logs a wall-clock step once for all timers.
fn report_step(step: TimeDelta) {
    let mut last = STEP_REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    let step_ms = step.num_milliseconds();
    if last.is_some_and(|t| t.elapsed() < STEP_QUIET) {
        tracing::debug!(step_ms, "wall clock step seen by another timer");
        return;
    }
    *last = Some(Instant::now());
    let (way, rule) = match (step < TimeDelta::zero(), step.abs() >= REANCHOR) {
        (_, true) => ("", "3 h or more: every job re-anchors on the new time"),
        (true, false) => (
            " back",
            "fixed-time jobs that already ran are not run again, frequent jobs go on at the new time",
        ),
        (false, false) => (
            " forward (or the machine was suspended)",
            "fixed-time jobs run a skipped slot once, frequent jobs go on at the new time",
        ),
    };
    tracing::warn!(
        step_ms,
        "wall clock stepped{way} by {} s; {rule}",
        step.abs().num_milliseconds() as f64 / 1000.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::UTC;

    fn sched(expr: &str) -> Schedule {
        Schedule::parse(expr, UTC, BTreeSet::new()).expect("valid schedule")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_small_backward_step_keeps_a_fixed_time_job_on_its_slot_and_moves_a_frequent_one() {
        let prev = utc("2026-01-01T03:00:00Z");
        let back = -TimeDelta::minutes(30);
        assert_eq!(
            after_step(&sched("0 0 3 * * *"), "x", prev, back),
            (prev, None)
        );
        let (from, missed) = after_step(&sched("@every 1s"), "x", prev, back);
        assert!(from > prev && missed.is_none(), "{from}");
        let (from, _) = after_step(&sched("0 * * * * *"), "x", prev, back);
        assert!(from > prev, "wildcard minutes are frequent: {from}");
    }

    #[test]
    fn a_large_step_re_anchors_a_fixed_time_job() {
        let prev = utc("2026-01-01T03:00:00Z");
        let (from, missed) = after_step(&sched("0 0 3 * * *"), "x", prev, -TimeDelta::hours(4));
        assert!(from > prev && missed.is_none(), "{from}");
    }

    #[test]
    fn a_small_forward_step_runs_the_skipped_fixed_slot_once() {
        let now = Utc::now();
        let prev = now - TimeDelta::hours(2);
        let s = sched("0 */30 * * * *");
        // `*/30` in minutes is a wildcard: frequent, so nothing is run for the step.
        assert_eq!(after_step(&s, "x", prev, TimeDelta::hours(2)).1, None);
        let fixed = sched("0 0 0-23 * * *");
        let (from, missed) = after_step(&fixed, "x", prev, TimeDelta::hours(2));
        let slot = missed.expect("a skipped hourly slot runs once");
        assert!(slot > prev && slot <= now && from == slot, "{slot} {from}");
    }

    #[tokio::test]
    async fn a_timer_that_fails_or_panics_marks_its_job_broken() {
        let state = JobState::default();
        guarded("x", &state, async {
            Err("no fire time after 2026".to_string())
        })
        .await;
        assert_eq!(state.broken().as_deref(), Some("no fire time after 2026"));
        guarded("x", &state, async { panic!("attempt to divide by zero") }).await;
        let why = state.broken().expect("a panic marks the job broken");
        assert!(why.contains("panicked: attempt to divide by zero"), "{why}");
        assert_eq!(state.next(), None);
        guarded("x", &state, async { Ok(()) }).await;
        assert_eq!(state.broken(), None, "a new timer that ends well clears it");
    }

    #[test]
    fn a_late_timer_runs_the_newest_slot_due_once_and_counts_the_ones_it_missed() {
        let s = sched("@every 1s");
        let slot = utc("2026-01-01T00:00:00Z");
        let late = |secs: f64| slot + TimeDelta::milliseconds((secs * 1000.0) as i64);
        assert_eq!(
            coalesce(&s, slot, late(3.5)),
            Burst {
                first: slot,
                run: slot + TimeDelta::seconds(3),
                missed: 3
            }
        );
        // Late, but the next slot is not due yet: it runs, nothing was missed.
        let hourly = sched("0 0 * * * *");
        assert_eq!(coalesce(&hourly, slot, late(30.0)).missed, 0);
        // A long stall: counted up to the bound, and the run is still the newest slot due.
        let burst = coalesce(&s, slot, slot + TimeDelta::days(3));
        assert_eq!(burst.missed, MAX_COUNTED);
        assert_eq!(burst.run, slot + TimeDelta::days(3));
    }
}
