//! The [`Dispatcher`]: logs each alert to the journal at its severity and hands it to the named
//! sinks. Each sink has its own bounded queue and worker, so a slow or failing sink delays only
//! itself; deliveries are retried with exponential backoff; the caller never waits.

use super::deliver::{AttemptError, Sink};
use super::record::{Alert, Severity};
use crate::config::SinkConfig;
use crate::logging::CRITICAL_TARGET;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How often and how patiently a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; each later wait doubles.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, waiting 2 s, 4 s, 8 s and 16 s between them (about a minute in all with
    /// the sinks' timeouts).
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Tuning for a [`Dispatcher`]; the defaults suit production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherOptions {
    /// Alerts waiting per sink before the oldest is dropped.
    pub queue_capacity: usize,
    /// Deliveries in flight per sink.
    pub concurrency: usize,
    /// Retries of a failed delivery.
    pub retry: RetryPolicy,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            queue_capacity: 256,
            concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// Counters of one sink, for status output and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SinkStats {
    /// Alerts delivered.
    pub delivered: u64,
    /// Alerts given up on after the last attempt or a permanent refusal.
    pub failed: u64,
    /// Alerts dropped because the sink's queue was full.
    pub dropped: u64,
    /// Alerts waiting in the queue now.
    pub queued: u64,
}

/// A cheap-to-clone handle that raises alerts; see the module documentation.
///
/// Every clone shares one sink set: [`Dispatcher::replace`] swaps it in place, so a job that
/// took its handle before a reload delivers through the sinks of the configuration in force.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

/// What every clone of a [`Dispatcher`] sees.
#[derive(Debug)]
struct Shared {
    /// The sinks in force; replaced whole on reload.
    current: RwLock<Arc<Generation>>,
    /// Tuning given at creation, reused for every later sink set.
    options: DispatcherOptions,
    /// Fired by `shutdown`: from then on alerts are only logged.
    closed: CancellationToken,
    /// The drains of sink sets a reload replaced; shutdown waits for them too.
    retiring: Mutex<Vec<JoinHandle<()>>>,
}

/// One configuration's sinks, their workers and their shutdown signals.
#[derive(Debug)]
struct Generation {
    sinks: BTreeMap<String, Arc<SinkQueue>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Fired by `drain`: take no new alerts, finish the queued ones.
    closing: CancellationToken,
    /// Fired when the drain deadline passes: abandon what is still pending.
    abort: CancellationToken,
}

/// One sink's queue and counters, shared by its worker and its deliveries.
#[derive(Debug)]
struct SinkQueue {
    sink: Sink,
    queue: Mutex<VecDeque<Arc<Alert>>>,
    capacity: usize,
    notify: Notify,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl SinkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Alert>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `alert`, dropping the oldest waiting one when full; returns the dropped one.
    fn push(&self, alert: Arc<Alert>) -> Option<Arc<Alert>> {
        let dropped = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.capacity {
                q.pop_front()
            } else {
                None
            };
            q.push_back(alert);
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    fn pop(&self) -> Option<Arc<Alert>> {
        self.lock().pop_front()
    }
}

/// Why a dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
#[error("alert sink {sink}: cannot prepare the HTTP client: {source}")]
pub struct DispatcherError {
    /// The sink at fault.
    pub sink: String,
    /// What went wrong.
    pub source: reqwest::Error,
}

/// Logs an alert at the tracing level (and target) matching its severity, with the standard
/// fields.
macro_rules! log_alert {
    ($level:ident, $a:expr) => {
        log_alert!($level, module_path!(), $a)
    };
    ($level:ident, $target:expr, $a:expr) => {
        tracing::$level!(
            target: $target,
            job = %$a.job,
            rule = %$a.rule,
            severity = %$a.severity,
            count = $a.count,
            "{}: alert: {}",
            $a.job,
            $a.summary
        )
    };
}

/// How long the sinks a reload replaced get to deliver what was queued for them.
const RETIRE_GRACE: Duration = Duration::from_secs(10);

impl Generation {
    /// Starts one worker per sink in `sinks`; must be called inside a Tokio runtime.
    fn start(
        sinks: &BTreeMap<String, SinkConfig>,
        options: DispatcherOptions,
    ) -> Result<Generation, DispatcherError> {
        let closing = CancellationToken::new();
        let abort = CancellationToken::new();
        let mut queues = BTreeMap::new();
        let mut prepared = Vec::new();
        // Every sink is prepared before any worker starts, so a failure leaves nothing running.
        for (name, cfg) in sinks {
            let sink = Sink::new(cfg).map_err(|source| DispatcherError {
                sink: name.clone(),
                source,
            })?;
            prepared.push((name.clone(), sink));
        }
        let mut workers = Vec::new();
        for (name, sink) in prepared {
            let q = Arc::new(SinkQueue {
                sink,
                queue: Mutex::new(VecDeque::new()),
                capacity: options.queue_capacity.max(1),
                notify: Notify::new(),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            });
            workers.push(tokio::spawn(worker(
                q.clone(),
                options,
                closing.clone(),
                abort.clone(),
            )));
            queues.insert(name, q);
        }
        Ok(Generation {
            sinks: queues,
            workers: Mutex::new(workers),
            closing,
            abort,
        })
    }

    /// Queues `alert` for each sink named in `sinks`.
    fn push(&self, alert: Arc<Alert>, sinks: &[String]) {
        for name in sinks {
            let Some(q) = self.sinks.get(name) else {
                tracing::warn!(job = %alert.job, sink = %name, "{}: alert not sent: no such sink", alert.job);
                continue;
            };
            if let Some(old) = q.push(alert.clone()) {
                let dropped = q.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    sink = %name,
                    job = %old.job,
                    rule = %old.rule,
                    dropped,
                    "{}: alert queue full; dropped the oldest alert", old.job
                );
            }
        }
    }

    /// The counters of each sink.
    fn stats(&self) -> BTreeMap<String, SinkStats> {
        self.sinks
            .iter()
            .map(|(name, q)| {
                let stats = SinkStats {
                    delivered: q.delivered.load(Ordering::Relaxed),
                    failed: q.failed.load(Ordering::Relaxed),
                    dropped: q.dropped.load(Ordering::Relaxed),
                    queued: q.lock().len() as u64,
                };
                (name.clone(), stats)
            })
            .collect()
    }

    /// Stops taking alerts and delivers what is pending, for at most `deadline`; returns true
    /// when everything was flushed.
    async fn drain(&self, deadline: Duration) -> bool {
        self.closing.cancel();
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut all = futures_util::future::join_all(workers);
        let flushed = tokio::time::timeout(deadline, &mut all).await.is_ok();
        if !flushed {
            self.abort.cancel();
            all.await;
        }
        flushed
    }
}

impl Dispatcher {
    /// Starts one worker per sink in `sinks`; must be called inside a Tokio runtime.
    pub fn new(
        sinks: &BTreeMap<String, SinkConfig>,
        options: DispatcherOptions,
    ) -> Result<Dispatcher, DispatcherError> {
        Ok(Dispatcher {
            shared: Arc::new(Shared {
                current: RwLock::new(Arc::new(Generation::start(sinks, options)?)),
                options,
                closed: CancellationToken::new(),
                retiring: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Puts the sinks of `sinks` in force for this handle and every clone of it. The replaced
    /// sinks take no new alerts and get [`RETIRE_GRACE`] to deliver what was queued for them;
    /// `previous alert sinks retired` is logged when they are done. On error nothing changes.
    pub fn replace(&self, sinks: &BTreeMap<String, SinkConfig>) -> Result<(), DispatcherError> {
        let fresh = Arc::new(Generation::start(sinks, self.shared.options)?);
        // Senders queue while holding the read lock, so once the write lock is ours no alert can
        // still reach the old sinks: their workers see every queued one before they stop.
        let old = std::mem::replace(&mut *self.write(), fresh);
        let drain = tokio::spawn(async move {
            let flushed = old.drain(RETIRE_GRACE).await;
            let abandoned: u64 = old.stats().values().map(|s| s.queued).sum();
            if flushed {
                tracing::info!("previous alert sinks retired; their queues are empty");
            } else {
                tracing::error!(
                    abandoned,
                    grace_ms = RETIRE_GRACE.as_millis() as u64,
                    "previous alert sinks retired; alerts still pending for them were abandoned"
                );
            }
        });
        let mut retiring = self.retiring();
        retiring.retain(|d| !d.is_finished());
        retiring.push(drain);
        Ok(())
    }

    fn retiring(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.shared
            .retiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<Generation>> {
        self.shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Arc<Generation>> {
        self.shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs `alert` to the journal and queues it for each sink named in `sinks`; never waits.
    pub fn send(&self, alert: Alert, sinks: &[String]) {
        match alert.severity {
            Severity::Critical => log_alert!(error, CRITICAL_TARGET, alert),
            Severity::High => log_alert!(error, alert),
            Severity::Warning => log_alert!(warn, alert),
            Severity::Info => log_alert!(info, alert),
        }
        self.deliver(alert, sinks);
    }

    /// Queues `alert` for each sink named in `sinks` without logging it (for callers that
    /// already logged the event with richer fields); never waits.
    pub fn deliver(&self, alert: Alert, sinks: &[String]) {
        if sinks.is_empty() {
            return;
        }
        if self.shared.closed.is_cancelled() {
            tracing::warn!(job = %alert.job, rule = %alert.rule, "{}: alert not sent: opsd is shutting down", alert.job);
            return;
        }
        self.read().push(Arc::new(alert), sinks);
    }

    /// The counters of each sink in force.
    pub fn stats(&self) -> BTreeMap<String, SinkStats> {
        self.read().stats()
    }

    /// Stops taking alerts and delivers what is pending, for at most `deadline`; returns true
    /// when everything was flushed. Later `send`s only log.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.shared.closed.cancel();
        let current = self.read().clone();
        let retiring = std::mem::take(&mut *self.retiring());
        // Sinks a recent reload replaced finish their own drain (bounded by its grace) meanwhile.
        let (flushed, _) = tokio::join!(
            current.drain(deadline),
            tokio::time::timeout(deadline, futures_util::future::join_all(retiring))
        );
        let pending: u64 = current.stats().values().map(|s| s.queued).sum();
        if flushed {
            tracing::info!("alert sinks flushed");
        } else {
            tracing::error!(
                pending,
                deadline_ms = deadline.as_millis() as u64,
                "alert deliveries still pending at the shutdown deadline were abandoned"
            );
        }
        flushed
    }
}

/// Takes alerts off one sink's queue and delivers each in its own task, at most
/// `options.concurrency` at a time, until shutdown has drained the queue.
async fn worker(
    q: Arc<SinkQueue>,
    options: DispatcherOptions,
    closing: CancellationToken,
    abort: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut inflight = JoinSet::new();
    loop {
        while inflight.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = abort.cancelled() => break,
        };
        let next = loop {
            if let Some(alert) = q.pop() {
                break Some(alert);
            }
            if closing.is_cancelled() {
                break None;
            }
            tokio::select! {
                _ = q.notify.notified() => {}
                _ = closing.cancelled() => {}
            }
        };
        let Some(alert) = next else { break };
        inflight.spawn(deliver(
            q.clone(),
            alert,
            options.retry,
            abort.clone(),
            permit,
        ));
    }
    while inflight.join_next().await.is_some() {}
    if abort.is_cancelled() {
        let left = q.lock().len();
        if left > 0 {
            tracing::error!(sink = %q.sink.name, left, "alerts never sent: shutdown deadline passed");
        }
    }
}

/// Delivers one alert to one sink, retrying with exponential backoff.
async fn deliver(
    q: Arc<SinkQueue>,
    alert: Arc<Alert>,
    retry: RetryPolicy,
    abort: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let sink = &q.sink.name;
    let mut backoff = retry.first_backoff;
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        let result = tokio::select! {
            r = q.sink.attempt(&alert) => r,
            _ = abort.cancelled() => Err(AttemptError::Permanent("shutdown deadline passed".into())),
        };
        let error = match result {
            Ok(()) => {
                q.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(sink = %sink, job = %alert.job, rule = %alert.rule, attempt, "{}: alert delivered", alert.job);
                return;
            }
            Err(e) => e,
        };
        if matches!(error, AttemptError::Permanent(_)) || attempt == attempts {
            q.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                sink = %sink,
                job = %alert.job,
                rule = %alert.rule,
                attempt,
                error = %error,
                "{}: alert not delivered; giving up", alert.job
            );
            return;
        }
        let wait = backoff.mul_f64(1.0 + fastrand::f64() / 4.0);
        tracing::warn!(
            sink = %sink,
            job = %alert.job,
            rule = %alert.rule,
            attempt,
            retry_in_ms = wait.as_millis() as u64,
            error = %error,
            "{}: alert delivery failed; will retry", alert.job
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = abort.cancelled() => {}
        }
        backoff = (backoff * 2).min(retry.max_backoff);
    }
}
