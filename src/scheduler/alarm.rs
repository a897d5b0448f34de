//! The precise last stretch of a timer, the order in which a wave of runs starts, and the
//! word to every timer that the wall clock was set.
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
//! Why timers are told of clock steps: a timer naps towards a slot on the monotonic clock, so
//! after the wall clock is stepped (`date -s`, a large NTP correction) or the machine resumes
//! from suspend, it would go on napping towards an instant that no longer is its slot, for up
//! to a whole nap. Told, it re-plans at once (each timer then decides for itself, by comparing
//! its own readings of the two clocks). Why not by looking: comparing the clocks once a second
//! costs a wake-up a second, and an idle opsd is to wake at most once a second in all (README).
//!
//! How, without a wake-up of our own: the kernel's own notice. A `CLOCK_REALTIME` timerfd is
//! armed at a far-future absolute instant with `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`;
//! it stays silent until the real-time clock "undergoes a discontinuous change
//! (settimeofday(2), clock_settime(2), or similar)" (timerfd_create(2)), when its read fails
//! with `ECANCELED`; a task on the runtime waits on it and then tells every timer. What that
//! covers and what not:
//! - Covered: every set of the wall clock (`date -s`, `clock_settime`, NTP stepping through
//!   `adjtimex`, a leap second inserted or deleted).
//! - Resume from suspend: not promised by the man page, which names clock sets only; Linux
//!   does notify these timers on resume (`timekeeping_resume` calls `timerfd_resume`, "resume
//!   is equivalent to clock_was_set()"; earlier kernels did the same through `hrtimers_resume`),
//!   so it is covered on Linux as built, by the kernel's source rather than its manual.
//! - Not covered: gradual NTP slewing (not a step, and harmless), a step made only in the
//!   process's view (libfaketime, which tests use, fakes `clock_gettime` and sets no kernel
//!   clock), and a kernel or sandbox that refuses the timer (logged at warn once).
//!
//! For those, the wall-vs-monotonic comparison remains: at every wake-up of this thread (so
//! under libfaketime a step seen at any timer's last stretch reaches all timers), and at every
//! timer wake-up in the timer itself. A comparison over a long idle gap may mistake slewing
//! for a step; that costs one spurious re-plan, since each timer re-checks with its own
//! readings, at most a nap apart.

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::BinaryHeap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch, Notify};

/// Stack of the alarm thread: it only keeps a heap and hands out wake-ups.
const STACK: usize = 64 * 1024;
/// The wall clock moving this much more or less than the monotonic clock is a clock step
/// (NTP slewing changes the rate by at most 0.05 %, far below this over any nap).
pub const CLOCK_STEP: Duration = Duration::from_secs(1);
/// Where the clock-set timer is armed: an absolute instant (seconds since 1970) it never
/// reaches, about 34,000 years away, so it only ever speaks of clock sets.
const NEVER: i64 = 1 << 40;

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
    /// Starts the alarm thread; it wakes timers through the current tokio runtime, whose
    /// reactor (I/O enabled) also carries the kernel's notice of a clock set.
    pub fn start() -> std::io::Result<Alarm> {
        let runtime = tokio::runtime::Handle::current();
        let wave = Arc::new(Wave::default());
        let (requests, incoming) = mpsc::channel();
        let (step_tx, steps) = watch::channel(0);
        let issuer = wave.clone();
        match ClockSetNotice::arm() {
            Ok(notice) => {
                runtime.spawn(tell_on_clock_set(notice, step_tx.clone()));
            }
            Err(e) => tracing::warn!(
                "the kernel's notice of a wall-clock set is unavailable ({e}); \
                 timers see clock steps only when they wake up"
            ),
        }
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

/// Tells every timer to re-evaluate: the wall clock may have stepped.
fn tell_timers(steps: &watch::Sender<u64>) {
    steps.send_modify(|n| *n = n.wrapping_add(1));
}

/// The kernel's notice of a wall-clock set: a `CLOCK_REALTIME` timerfd armed at [`NEVER`]
/// with `TFD_TIMER_CANCEL_ON_SET`, whose read fails with `ECANCELED` once the clock is set.
struct ClockSetNotice {
    fd: AsyncFd<NoticeFd>,
}

/// The timerfd, as tokio's reactor needs it (a raw fd).
struct NoticeFd(TimerFd);

impl AsRawFd for NoticeFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl ClockSetNotice {
    /// Creates and arms the timer, registered with the current runtime's reactor.
    fn arm() -> std::io::Result<ClockSetNotice> {
        let fd = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        rearm(&fd)?;
        // SAFETY: `NoticeFd` owns the timerfd and hands out that same descriptor for as long
        // as it lives, which is as long as the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register(NoticeFd(fd)) }?;
        Ok(ClockSetNotice { fd })
    }

    /// Waits until the wall clock is set.
    async fn clock_set(&self) -> std::io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            // `Err` from `try_io`: nothing to read after all (readiness is cleared).
            if let Ok(read) = ready.try_io(|fd| take_notice(&fd.get_ref().0)) {
                if read? {
                    return Ok(());
                }
            }
        }
    }
}

/// Arms `fd` at [`NEVER`], cancelled on a clock set; true when a set since the last read had
/// already cancelled it (the kernel re-arms it anyway: timerfd_create(2), NOTES).
fn rearm(fd: &TimerFd) -> std::io::Result<bool> {
    let flags = TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET;
    match fd.set(Expiration::OneShot(TimeSpec::new(NEVER, 0)), flags) {
        Ok(()) => Ok(false),
        Err(Errno::ECANCELED) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Reads the timer without blocking: true when the clock was set since the last read, false
/// when the timer merely expired (re-armed); `WouldBlock` when there is nothing to read.
fn take_notice(fd: &TimerFd) -> std::io::Result<bool> {
    let mut expirations = [0u8; 8];
    let set = match nix::unistd::read(fd, &mut expirations) {
        Err(Errno::ECANCELED) => true,
        Ok(_) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(rearm(fd)? || set)
}

/// Tells every timer each time the kernel says the wall clock was set; ends when no timer
/// and no [`Alarm`] listens any more.
async fn tell_on_clock_set(notice: ClockSetNotice, steps: watch::Sender<u64>) {
    loop {
        tokio::select! {
            set = notice.clock_set() => match set {
                Ok(()) => {
                    tracing::debug!("the kernel says the wall clock was set; telling every timer");
                    tell_timers(&steps);
                }
                Err(e) => {
                    tracing::warn!(
                        "the kernel's notice of a wall-clock set failed ({e}); \
                         timers see clock steps only when they wake up"
                    );
                    return;
                }
            },
            () = steps.closed() => return,
        }
    }
}

/// The alarm thread: keeps the wake-ups asked for in a heap and, at each instant, has the
/// runtime hand a ticket to every timer that is due; at each of its wake-ups compares the
/// clocks and tells every timer on `steps` when the wall clock stepped. It wakes only for a
/// wake-up asked for or due, never on a period of its own.
fn serve(
    incoming: &mpsc::Receiver<Wake>,
    runtime: &tokio::runtime::Handle,
    wave: &Arc<Wave>,
    steps: &watch::Sender<u64>,
) {
    let mut due: BinaryHeap<Wake> = BinaryHeap::new();
    let mut clock = ClockReading::now();
    loop {
        if clock.stepped() {
            tell_timers(steps);
        }
        let now = clock.mono;
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
        let next = match due.peek() {
            Some(w) => incoming.recv_timeout(w.at.saturating_duration_since(now)),
            None => incoming
                .recv()
                .map_err(|mpsc::RecvError| mpsc::RecvTimeoutError::Disconnected),
        };
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

    #[tokio::test]
    async fn the_kernel_notice_is_armed_and_silent_while_nobody_sets_the_clock() {
        // The machine's clock is never set by a test, so the notice itself cannot be made to
        // fire here: this pins that the kernel accepts the timer (a kernel or sandbox that
        // refuses it fails here) and that it raises no false alarm.
        let notice = ClockSetNotice::arm()
            .expect("a CLOCK_REALTIME timerfd with TFD_TIMER_CANCEL_ON_SET is armed");
        let fd = &notice.fd.get_ref().0;
        assert!(
            fd.get().expect("timerfd_gettime").is_some(),
            "the timer is armed"
        );
        let nothing = take_notice(fd).expect_err("no notice while the clock is not set");
        assert_eq!(nothing.kind(), std::io::ErrorKind::WouldBlock, "{nothing}");
    }

    #[tokio::test]
    async fn the_notice_task_ends_with_its_last_listener() {
        let notice = ClockSetNotice::arm().expect("arm the clock-set timer");
        let (steps, listener) = watch::channel(0);
        let task = tokio::spawn(tell_on_clock_set(notice, steps));
        drop(listener);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends once no timer listens")
            .expect("notice task");
    }

    #[test]
    fn the_wall_clock_moving_apart_from_the_monotonic_clock_is_a_step() {
        let mono = Instant::now();
        let wall = SystemTime::now();
        let apart = Duration::from_secs(10);
        for (last_wall, step, what) in [
            (wall, false, "both clocks moved together"),
            (wall + apart, true, "the wall clock went back"),
            (wall - apart, true, "the wall clock went forward"),
        ] {
            let mut reading = ClockReading {
                wall: last_wall,
                mono,
            };
            assert_eq!(reading.stepped(), step, "{what}");
        }
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
