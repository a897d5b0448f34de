//! Prometheus metrics: every job's runs, durations, last success and next run, the alert
//! sinks' deliveries and the daemon's own figures, in the Prometheus text format (0.0.4).
//!
//! - [`Metrics`] (`registry.rs`) holds the families and renders them from the job states
//!   `opsd status` shows (so the two always agree), the sinks' counters, and what only the
//!   metrics keep (run durations, start lateness, reloads), which it hears as the scheduler's
//!   [`RunRecorder`](crate::scheduler::RunRecorder). It keeps a copy of every job's state and
//!   asks the daemon's loop at each scrape only for the jobs changed since the last
//!   ([`Changes`](crate::scheduler::Changes)).
//! - `job_text.rs` writes one job's series as text, kept between scrapes until the job's
//!   figures change; a scrape's [`Answer`] (`answer.rs`) shares those pieces rather than
//!   copying them, and the server writes them vectored.
//! - `server.rs` serves `/metrics` and `/health` over HTTP on `[metrics] listen`, bounded in
//!   request size, time and connections.
//! - `textfile.rs` rewrites `[metrics] textfile` atomically after each run and reload, for
//!   node_exporter's textfile collector.
//! - [`publish`] starts whichever of the two `[metrics]` asks for.

mod answer;
mod job_text;
mod registry;
mod server;
mod textfile;

pub use answer::Answer;
pub use registry::Metrics;
pub use server::serve;
pub use textfile::write_on_change;

use crate::alert::{Dispatcher, SinkStats};
use crate::config::MetricsConfig;
use crate::control::{server::Envelope, Request, Response};
use crate::scheduler::Changes;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Where the figures come from: the daemon's loop (the same answer `opsd status` gets) and
/// the alert dispatcher's counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Source {
    /// The daemon's loop, asked as the control socket asks it.
    to_loop: mpsc::Sender<Envelope>,
    /// The sinks' counters.
    alerts: Dispatcher,
}

impl Source {
    /// Figures asked of the loop behind `to_loop` and of `alerts`.
    pub fn new(to_loop: mpsc::Sender<Envelope>, alerts: Dispatcher) -> Self {
        Source { to_loop, alerts }
    }

    /// The jobs changed since generation `since` and the sinks' counters now; `None` once
    /// the daemon's loop has stopped.
    pub async fn changes(&self, since: u64) -> Option<(Changes, BTreeMap<String, SinkStats>)> {
        let (tx, rx) = oneshot::channel();
        self.to_loop
            .send((Request::Changes { since }, tx))
            .await
            .ok()?;
        match rx.await.ok()? {
            Response::Changes { changes } => Some((changes, self.alerts.stats())),
            _ => None,
        }
    }

    /// Whether the daemon's loop answers (asked for no job's state: none changed after the
    /// last generation there can be).
    pub async fn answers(&self) -> bool {
        self.changes(u64::MAX).await.is_some()
    }
}

/// Starts what `config` asks for: the HTTP server on `listen` (an address that cannot be
/// bound is logged at error; the daemon runs on without it) and the textfile writer.
pub async fn publish(config: &MetricsConfig, metrics: Arc<Metrics>, source: Source) {
    if let Some(addr) = config.listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(listen = %addr, "metrics served on http://{addr}/metrics");
                tokio::spawn(serve(listener, Arc::clone(&metrics), source.clone()));
            }
            Err(e) => tracing::error!(listen = %addr,
                "cannot serve metrics on {addr}: {e}; opsd runs on without them"),
        }
    }
    if let Some(path) = config.textfile.clone() {
        tokio::spawn(write_on_change(path, metrics, source));
    }
}
