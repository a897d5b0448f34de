//! The precise last stretch of a timer, and the order in which a wave of runs starts.
//!
//! Tokio's timer counts whole milliseconds and its wake-ups land up to ~2 ms after the
//! deadline, so job timers nap on tokio until just before a slot and then wait here: one
//! thread sleeps to the exact instant (a futex timeout, tens of microseconds of slack) and
//! hands every wake-up due at that instant to the runtime in one task.
//!
//! Each woken timer gets a [`Ticket`], which its run gives back once it has started. Runs
//! begin their real work (fork/exec) only when every ticket out is back, so 100 jobs due at
//! one instant all start within a couple of milliseconds instead of queueing behind each
//! other's process spawns, and the spawned processes do not compete with the starts for CPU.
//!
//! The same thread watches the wall clock: once a second it compares how far the wall clock
//! moved with how far the monotonic clock did, and tells every timer when they disagree by a
//! [`CLOCK_STEP`] or more (a clock step, or a resume from suspend), so a timer napping towards
//! a slot hours away re-plans within a second of the step instead of at the end of its nap.
//! (Linux can signal a clock set by itself, `TFD_TIMER_CANCEL_ON_SET`, but not a resume, and
//! nothing when the step is faked by libfaketime in tests; a comparison sees all three.)

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{oneshot, watch, Notify};

/// Stack of the alarm thread: it only keeps a heap and hands out wake-ups.
const STACK: usize = 64 * 1024;
/// The wall clock moving this much more or less than the monotonic clock is a clock step
/// (NTP slewing changes the rate by at most 0.05 %, far below this over any nap).
pub const CLOCK_STEP: Duration = Duration::from_secs(1);
/// How often the alarm thread compares the wall clock with the monotonic clock.
const CLOCK_CHECK: Duration = Duration::from_secs(1);

/// A wake-up asked for: the instant, and the timer to tell.
struct Wake {
    at: Instant,
    tell: oneshot::Sender<Ticket>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    /// Reversed, so the max-heap yields the earliest instant first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

/// The tickets out: runs woken by the alarm that have not started yet.
#[derive(Debug, Default)]
struct Wave {
    out: AtomicUsize,
    settled: Notify,
}

/// Held by a timer woken by the alarm until its run has started (or did not start).
#[derive(Debug)]
pub struct Ticket {
    wave: Arc<Wave>,
}

impl Ticket {
    fn issue(wave: &Arc<Wave>) -> Ticket {
        wave.out.fetch_add(1, Ordering::SeqCst);
        Ticket { wave: wave.clone() }
    }

    /// Gives the ticket back, then waits until every run of the wave has started.
    pub async fn started(self) {
        let wave = self.wave.clone();
        drop(self);
        loop {
            let settled = wave.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if wave.out.load(Ordering::SeqCst) == 0 {
                return;
            }
            settled.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.wave.out.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wave.settled.notify_waiters();
        }
    }
}

/// A handle to the alarm thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Alarm {
    requests: mpsc::Sender<Wake>,
    wave: Arc<Wave>,
    /// Counts the clock steps the thread has seen.
    steps: watch::Receiver<u64>,
}

impl Alarm {
    /// Starts the alarm thread; it wakes timers through the current tokio runtime.
    pub fn start() -> std::io::Result<Alarm> {
        let runtime = tokio::runtime::Handle::current();
        let wave = Arc::new(Wave::default());
        let (requests, incoming) = mpsc::channel();
        let (step_tx, steps) = watch::channel(0);
        let issuer = wave.clone();
        std::thread::Builder::new()
            .name("opsd-alarm".into())
            .stack_size(STACK)
            .spawn(move || serve(&incoming, &runtime, &issuer, &step_tx))?;
        Ok(Alarm {
            requests,
            wave,
            steps,
        })
    }

    /// Changes each time the wall clock steps (see [`CLOCK_STEP`]); never changes if the
    /// thread is gone.
    pub fn clock_steps(&self) -> watch::Receiver<u64> {
        let mut steps = self.steps.clone();
        steps.mark_unchanged();
        steps
    }

    /// Waits until `at`, to within the kernel's timer slack (tens of microseconds); the
    /// ticket is to be given back when the run this wake-up starts has started.
    pub async fn wait_until(&self, at: Instant) -> Ticket {
        let (tell, woken) = oneshot::channel();
        if self.requests.send(Wake { at, tell }).is_ok() {
            if let Ok(ticket) = woken.await {
                return ticket;
            }
        }
        // The thread died (it ends only with the last handle); tokio's timer will do.
        tokio::time::sleep_until(at.into()).await;
        Ticket::issue(&self.wave)
    }
}

/// The last reading of the wall and monotonic clocks, to see the wall clock step.
struct ClockReading {
    wall: SystemTime,
    mono: Instant,
}

impl ClockReading {
    fn now() -> ClockReading {
        ClockReading {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    /// Reads both clocks again; true when the wall clock moved by [`CLOCK_STEP`] or more than
    /// the monotonic clock did since the last reading.
    fn stepped(&mut self) -> bool {
        let now = ClockReading::now();
        let mono = now.mono.duration_since(self.mono);
        let stepped = match now.wall.duration_since(self.wall) {
            Ok(wall) => wall.abs_diff(mono) >= CLOCK_STEP,
            Err(back) => back.duration() + mono >= CLOCK_STEP,
        };
        *self = now;
        stepped
    }
}

/// The alarm thread: keeps the wake-ups asked for in a heap and, at each instant, has the
/// runtime hand a ticket to every timer that is due; counts clock steps on `steps`.
fn serve(
    incoming: &mpsc::Receiver<Wake>,
    runtime: &tokio::runtime::Handle,
    wave: &Arc<Wave>,
    steps: &watch::Sender<u64>,
) {
    let mut due: BinaryHeap<Wake> = BinaryHeap::new();
    let mut clock = ClockReading::now();
    let mut check_at = clock.mono + CLOCK_CHECK;
    loop {
        let now = Instant::now();
        if now >= check_at {
            if clock.stepped() {
                steps.send_modify(|n| *n = n.wrapping_add(1));
            }
            check_at = now + CLOCK_CHECK;
        }
        let mut batch = Vec::new();
        while due.peek().is_some_and(|w| w.at <= now) {
            batch.extend(due.pop().map(|w| (w.tell, Ticket::issue(wave))));
        }
        if !batch.is_empty() {
            // Woken from a worker, the timers queue there in order; a timer that went away
            // hands its ticket straight back (dropped with the failed send).
            runtime.spawn(async move {
                for (tell, ticket) in batch {
                    let _ = tell.send(ticket);
                }
            });
        }
        let wake = due.peek().map_or(check_at, |w| w.at.min(check_at));
        let next = incoming.recv_timeout(wake.saturating_duration_since(now));
        match next {
            Ok(w) => due.push(w),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The last handle is gone; dropping the heap ends any wait still pending.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_waiters_not_before_their_instant() {
        let alarm = Alarm::start().expect("start alarm thread");
        let base = Instant::now();
        let mut waits = Vec::new();
        for ms in [30u64, 10, 20] {
            let alarm = alarm.clone();
            let at = base + Duration::from_millis(ms);
            waits.push(tokio::spawn(async move {
                let ticket = alarm.wait_until(at).await;
                let woke = Instant::now();
                ticket.started().await;
                (at, woke)
            }));
        }
        for w in waits {
            let (at, woke) = w.await.expect("waiter task");
            assert!(woke >= at, "woke {:?} before its instant", at - woke);
        }
    }

    #[tokio::test]
    async fn an_instant_already_past_returns_at_once() {
        let alarm = Alarm::start().expect("start alarm thread");
        let past = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), alarm.wait_until(past))
            .await
            .expect("a past instant does not wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_of_a_wave_wait_until_all_have_started() {
        let alarm = Alarm::start().expect("start alarm thread");
        let at = Instant::now() + Duration::from_millis(20);
        let (first, second) = tokio::join!(alarm.wait_until(at), alarm.wait_until(at));
        let waiting = tokio::spawn(first.started());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a run went ahead while another of its wave had not started"
        );
        second.started().await;
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the first run goes ahead once the wave has started")
            .expect("waiter task");
    }
}
