//! One job's timer: sleeps until the next fire time on the wall clock (in capped naps, so
//! clock steps and suspends are noticed), fires, and computes the next slot from the previous
//! *scheduled* slot so a slot never fires twice.

use super::alarm::{Alarm, Ticket};
use super::{Runner, Trigger};
use crate::config::JobConfig;
use crate::scheduler::job_state::JobState;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest single sleep; after it the wall clock is read again.
const MAX_NAP: Duration = Duration::from_secs(60);
/// Firing later than this after the slot counts as a clock jump or suspend.
const LATE: chrono::TimeDelta = chrono::TimeDelta::seconds(2);
/// How long before a slot the timer leaves tokio's millisecond timer (which wakes up to ~2 ms
/// late) for the precise alarm.
const LAST_STRETCH: Duration = Duration::from_millis(5);

/// How a wait for a slot ended.
enum Woke {
    /// `stop` fired first.
    Stopped,
    /// The slot is due; the alarm's ticket when the alarm woke the timer.
    Due(Option<Ticket>),
}

/// Sleeps until wall-clock time `t`: on tokio's timer until [`LAST_STRETCH`] before `t`,
/// then on the precise `alarm`.
async fn sleep_until_wall(t: DateTime<Utc>, stop: &CancellationToken, alarm: &Alarm) -> Woke {
    loop {
        let left = match (t - Utc::now()).to_std() {
            Ok(d) if !d.is_zero() => d,
            _ => return Woke::Due(None),
        };
        if left <= LAST_STRETCH {
            // Short enough that a clock step in between no longer matters.
            let at = std::time::Instant::now() + left;
            return tokio::select! {
                ticket = alarm.wait_until(at) => Woke::Due(Some(ticket)),
                () = stop.cancelled() => Woke::Stopped,
            };
        }
        tokio::select! {
            () = tokio::time::sleep((left - LAST_STRETCH).min(MAX_NAP)) => {}
            () = stop.cancelled() => return Woke::Stopped,
        }
    }
}

/// Fires `job` on its schedule until `stop` fires or the schedule has no more slots.
pub async fn run(
    runner: Runner,
    job: Arc<JobConfig>,
    state: Arc<JobState>,
    runs_stop: CancellationToken,
    stop: CancellationToken,
) {
    let Some(schedule) = job.schedule.clone() else {
        return;
    };
    let mut prev = Utc::now();
    loop {
        let next = schedule.next_after(prev);
        state.set_next(next);
        let Some(next) = next else {
            tracing::info!(job = %job.name, "{}: schedule has no further fire times", job.name);
            return;
        };
        let ticket = match sleep_until_wall(next, &stop, runner.alarm()).await {
            Woke::Due(ticket) => ticket,
            Woke::Stopped => return,
        };
        let now = Utc::now();
        prev = if now - next > LATE {
            tracing::warn!(job = %job.name, slot = %next, late_ms = (now - next).num_milliseconds(),
                "{}: woke late (clock step or suspend); firing this slot once and skipping any others missed", job.name);
            now
        } else {
            next
        };
        if job.catch_up == crate::config::CatchUp::Once {
            runner.remember_slot(&job.name, next);
        }
        runner.fire(
            job.clone(),
            state.clone(),
            runs_stop.clone(),
            Trigger::Schedule(next),
            None,
            ticket,
        );
    }
}
