//! Start turns: how many runs may be starting their process at once.
//!
//! Why: when a thousand runs come due in the same second, starting all their processes at
//! once leaves a thousand runnable shells competing with the daemon's own threads for the
//! machine's cores, so the spawns still to come get the CPU last and fewer processes start per
//! second than the machine can start (a plain spawn loop, too, starts fewer pairs per second
//! with 128 in flight than with 8). So a run takes a turn before it spawns and gives it back
//! when its process exits or [`HOLD`] after it was spawned, whichever comes first: a run that
//! lasts hours holds a turn for 5 ms, so turns bound how many processes are *starting*, never
//! how many run. They do bound the start rate of runs that outlast [`HOLD`]: [`PER_CPU`]
//! turns every 5 ms is 1,600 starts a second per CPU, well above what a CPU can start (about
//! 600 `sh` + `date` pairs a second per CPU, measured by the scheduler bench's spawn loop).
//!
//! How: a counting semaphore of [`PER_CPU`] turns per CPU, taken in the order asked for (tokio's
//! semaphore is fair), so the runs of one instant start roughly in the order they came due
//! (a run that first reads an `env_file` asks later).

use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Turns per CPU the daemon may use.
pub const PER_CPU: usize = 8;
/// How long after its spawn a run that is still going gives its turn back.
pub const HOLD: Duration = Duration::from_millis(5);

/// A set of start turns.
#[derive(Debug)]
pub struct Turns(Semaphore);

/// A run's turn to start its process; given back when dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    _permit: Option<SemaphorePermit<'a>>,
}

impl Turns {
    /// `count` turns.
    pub fn new(count: usize) -> Turns {
        Turns(Semaphore::new(count.max(1)))
    }

    /// The daemon's turns, [`PER_CPU`] for each CPU this process may run on.
    pub fn daemon() -> &'static Turns {
        static TURNS: OnceLock<Turns> = OnceLock::new();
        TURNS.get_or_init(|| {
            Turns::new(std::thread::available_parallelism().map_or(1, usize::from) * PER_CPU)
        })
    }

    /// Waits for a turn to start a process (in the order asked for).
    pub async fn take(&self) -> Turn<'_> {
        // The semaphore is never closed; if it were, runs would start without turns.
        Turn {
            _permit: self.0.acquire().await.ok(),
        }
    }
}

/// Waits for `exit` (a spawned process's end) while holding `turn` for at most [`HOLD`], then
/// gives the turn back and goes on waiting.
pub async fn hold_while<F: std::future::Future>(turn: Turn<'_>, exit: F) -> F::Output {
    tokio::pin!(exit);
    tokio::select! {
        out = &mut exit => return out,
        () = tokio::time::sleep(HOLD) => {}
    }
    drop(turn);
    exit.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_is_held_until_hold_then_given_back_while_the_run_goes_on() {
        let turns = Turns::new(1);
        let turn = turns.take().await;
        let long = hold_while(turn, tokio::time::sleep(Duration::from_secs(30)));
        tokio::pin!(long);
        // Polled once: the run has its process and still holds its turn.
        assert!(futures_util::poll!(&mut long).is_pending());
        assert_eq!(turns.0.available_permits(), 0, "the turn went back at once");
        // The next run gets the turn the long wait gave back, long before that wait ends.
        let next = async {
            tokio::time::timeout(Duration::from_secs(5), turns.take())
                .await
                .is_ok()
        };
        tokio::select! {
            () = long => panic!("the 30 s wait ended first"),
            got = next => assert!(got, "no turn came back while a run was still going"),
        }
    }

    #[tokio::test]
    async fn a_turn_comes_back_when_the_process_ends_first() {
        let turns = Turns::new(1);
        let turn = turns.take().await;
        assert_eq!(hold_while(turn, async { 7 }).await, 7);
        assert_eq!(turns.0.available_permits(), 1);
    }
}
