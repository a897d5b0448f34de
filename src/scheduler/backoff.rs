//! How long a continuous job (an `apache_log` watch) that ended on its own waits before it is
//! started again. A watch that dies at once (a missing file, a bad permission) must not spin and
//! flood the journal, yet one that ran fine for a while and then ended must come back quickly:
//! so the wait starts at [`FIRST_RESTART`], doubles while runs keep ending quickly, stops growing
//! at [`MAX_RESTART_BACKOFF`], and starts over after a run that lasted longer than that cap.

use std::time::Duration;

/// The wait before the first restart, and after a run that counted as healthy.
pub const FIRST_RESTART: Duration = Duration::from_secs(1);
/// The longest wait between restarts of a continuous job that keeps failing.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(60);

/// The restart waits of one continuous job's supervisor.
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    next: Duration,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff {
            next: FIRST_RESTART,
        }
    }
}

impl RestartBackoff {
    /// The wait before the next start, given how long the run that just ended lasted.
    pub fn after(&mut self, ran: Duration) -> Duration {
        if ran > MAX_RESTART_BACKOFF {
            self.next = FIRST_RESTART;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RESTART_BACKOFF);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_waits_double_from_one_second_up_to_the_cap() {
        let mut backoff = RestartBackoff::default();
        let quick = Duration::from_millis(10);
        let waits: Vec<u64> = (0..9).map(|_| backoff.after(quick).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(FIRST_RESTART, Duration::from_secs(1));
        assert_eq!(MAX_RESTART_BACKOFF, Duration::from_secs(60));
    }

    #[test]
    fn a_run_longer_than_the_cap_starts_the_waits_over() {
        let mut backoff = RestartBackoff::default();
        for _ in 0..8 {
            backoff.after(Duration::ZERO);
        }
        // Exactly the cap is not yet healthy; a moment more is.
        assert_eq!(backoff.after(MAX_RESTART_BACKOFF), MAX_RESTART_BACKOFF);
        let healthy = MAX_RESTART_BACKOFF + Duration::from_millis(1);
        assert_eq!(backoff.after(healthy), FIRST_RESTART);
        assert_eq!(backoff.after(Duration::ZERO), Duration::from_secs(2));
    }
}
