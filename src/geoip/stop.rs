//! Stopping `opsd geoip build` cleanly on SIGTERM, SIGINT or SIGHUP: the signals are blocked
//! and taken by one waiting thread, which sets the build's stop flag; the build ends at its
//! next read and drops its scratch directory. If the build does not end within
//! `GRACE` (it is writing or installing, which a read does not interrupt), the process exits
//! anyway and the next build removes what is left (see `scratch`).

use nix::sys::signal::{SigSet, Signal};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a stopped build may take to clean up before the process exits regardless.
const GRACE: Duration = Duration::from_secs(10);

/// The signal that stopped the build, shared with the waiting thread (0: none yet).
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<AtomicI32>);

impl Received {
    /// The signal received, if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::try_from(self.0.load(Ordering::SeqCst)).ok()
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in every thread it starts after)
/// and starts the thread that waits for them: the first one sets `stop`. Call before starting
/// any other thread.
pub fn on_signal_set(stop: Arc<std::sync::atomic::AtomicBool>) -> std::io::Result<Received> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    let received = Received::default();
    let seen = Arc::clone(&received.0);
    std::thread::Builder::new()
        .name("opsd-geoip-signals".into())
        .spawn(move || {
            let Ok(signal) = set.wait() else {
                return;
            };
            seen.store(signal as i32, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            tracing::warn!(signal = %signal, "stopping the build");
            std::thread::sleep(GRACE);
            std::process::exit(128 + signal as i32);
        })?;
    Ok(received)
}
