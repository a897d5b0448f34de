//! Talking to systemd: readiness, status text, reload and stop notifications, and watchdog
//! keep-alives. Every call is a no-op when opsd was not started by systemd.

use std::time::Duration;

/// Sends notify lines to systemd when `NOTIFY_SOCKET` is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    /// Tells systemd the configuration is loaded and timers are armed.
    pub fn ready(&self, status: &str) {
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    /// Updates the one-line status shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        notify(&[sd_notify::NotifyState::Status(status)]);
    }

    /// Tells systemd a reload has begun (with the monotonic timestamp systemd requires).
    pub fn reloading(&self) {
        match sd_notify::NotifyState::monotonic_usec_now() {
            Ok(now) => notify(&[sd_notify::NotifyState::Reloading, now]),
            Err(e) => tracing::warn!("cannot read the monotonic clock for RELOADING=1: {e}"),
        }
    }

    /// Tells systemd shutdown has begun.
    pub fn stopping(&self) {
        notify(&[sd_notify::NotifyState::Stopping]);
    }

    /// Sends a watchdog keep-alive.
    pub fn watchdog(&self) {
        notify(&[sd_notify::NotifyState::Watchdog]);
    }

    /// How often to send keep-alives: half of `WatchdogSec=`, or `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2)
    }
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}
