//! The [`Dispatcher`]: logs each alert to the journal at its severity and hands it to the named
//! sinks. Each sink has its own bounded queue and worker, so a slow or failing sink delays only
//! itself; deliveries are retried with exponential backoff; the caller never waits.

use super::deliver::Sink;
use super::record::Alert;
use super::sink::AttemptError;
use super::sink::{PrepareError, SinkConfig};
use crate::logging::CRITICAL_TARGET;
use crate::severity::Severity;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
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
    /// Alerts abandoned when a deadline passed (shutdown, or the grace of replaced sinks),
    /// whether still queued or being delivered.
    pub abandoned: u64,
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
    /// The sink sets a reload replaced, with their drains; shutdown waits for them too, and
    /// abandons what they still hold at its own deadline.
    retiring: Mutex<Vec<(Arc<Generation>, JoinHandle<()>)>>,
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
    /// Which deadline passed, set just before `abort` fires, for the log lines of what it cost.
    abort_why: Arc<OnceLock<String>>,
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
    abandoned: AtomicU64,
    /// `job/rule` of the first [`LOST_NAMED`] alerts abandoned, for the summary line.
    lost: Mutex<Vec<String>>,
}

/// Abandoned alerts named in the summary of a drain; the rest are counted.
const LOST_NAMED: usize = 10;

/// What a drain left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Abandoned {
    /// How many alerts were abandoned, queued or in delivery.
    count: u64,
    /// `job/rule` of the first of them.
    lost: Vec<String>,
}

impl Abandoned {
    /// `N alert(s) (job/rule, ...)`, for log lines.
    fn describe(&self) -> String {
        let more = self.count.saturating_sub(self.lost.len() as u64);
        let mut names = self.lost.join(", ");
        if more > 0 {
            names.push_str(&format!(" and {more} more"));
        }
        format!("{} alert(s) ({names})", self.count)
    }
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

    /// Counts `alert` as abandoned because `why` (a deadline passed) and says so at error.
    fn abandon(&self, alert: &Alert, why: &str) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        if lost.len() < LOST_NAMED {
            lost.push(format!("{}/{}", alert.job, alert.rule));
        }
        tracing::error!(
            sink = %self.sink.name,
            job = %alert.job,
            rule = %alert.rule,
            "{}: alert never sent: {why}", alert.job
        );
    }
}

/// Why a dispatcher could not be built.
#[derive(Debug)]
pub struct DispatcherError {
    /// The sink at fault.
    pub sink: String,
    /// What went wrong, in its sink type's words (e.g. "cannot prepare the HTTP client: ...").
    pub source: PrepareError,
}

impl std::fmt::Display for DispatcherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "alert sink {}: {}", self.sink, self.source)
    }
}

/// The lower error is the sink type's own cause (for a webhook, the HTTP client's error), so the
/// chain reads as it did when a dispatcher only prepared HTTP clients.
impl std::error::Error for DispatcherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
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
        let abort_why = Arc::new(OnceLock::new());
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
                abandoned: AtomicU64::new(0),
                lost: Mutex::new(Vec::new()),
            });
            workers.push(tokio::spawn(worker(
                q.clone(),
                options,
                closing.clone(),
                Abort {
                    token: abort.clone(),
                    why: abort_why.clone(),
                },
            )));
            queues.insert(name, q);
        }
        Ok(Generation {
            sinks: queues,
            workers: Mutex::new(workers),
            closing,
            abort,
            abort_why,
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
                    abandoned: q.abandoned.load(Ordering::Relaxed),
                };
                (name.clone(), stats)
            })
            .collect()
    }

    /// Stops taking alerts and delivers what is pending, for at most `deadline`, then abandons
    /// the rest saying `why`; returns what was abandoned (nothing when all was flushed).
    async fn drain(&self, deadline: Duration, why: &str) -> Abandoned {
        self.closing.cancel();
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut all = futures_util::future::join_all(workers);
        if tokio::time::timeout(deadline, &mut all).await.is_err() {
            self.abort_now(why);
            all.await;
        }
        self.abandoned()
    }

    /// Abandons every alert still queued or in delivery, saying `why` (the first reason stays).
    fn abort_now(&self, why: &str) {
        let _ = self.abort_why.set(why.to_string());
        self.abort.cancel();
    }

    /// What was abandoned so far, over every sink.
    fn abandoned(&self) -> Abandoned {
        let mut total = Abandoned::default();
        for q in self.sinks.values() {
            total.count += q.abandoned.load(Ordering::Relaxed);
            let lost = q.lost.lock().unwrap_or_else(PoisonError::into_inner);
            let room = LOST_NAMED.saturating_sub(total.lost.len());
            total.lost.extend(lost.iter().take(room).cloned());
        }
        total
    }
}

/// The abandon signal of one sink set, with which deadline passed.
#[derive(Debug, Clone)]
struct Abort {
    token: CancellationToken,
    why: Arc<OnceLock<String>>,
}

impl Abort {
    /// Which deadline passed.
    fn why(&self) -> &str {
        self.why.get().map_or("a deadline passed", String::as_str)
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
    /// sinks take no new alerts and get `RETIRE_GRACE` to deliver what was queued for them;
    /// `previous alert sinks retired` is logged when they are done. On error nothing changes.
    pub fn replace(&self, sinks: &BTreeMap<String, SinkConfig>) -> Result<(), DispatcherError> {
        let fresh = Arc::new(Generation::start(sinks, self.shared.options)?);
        // Senders queue while holding the read lock, so once the write lock is ours no alert can
        // still reach the old sinks: their workers see every queued one before they stop.
        let old = std::mem::replace(&mut *self.write(), fresh);
        let retired = Arc::clone(&old);
        let drain = tokio::spawn(async move {
            let why = format!(
                "the sinks a reload replaced had {} to deliver it",
                humantime::format_duration(RETIRE_GRACE)
            );
            let abandoned = old.drain(RETIRE_GRACE, &why).await;
            if abandoned.count == 0 {
                tracing::info!("previous alert sinks retired; their queues are empty");
            } else {
                tracing::error!(
                    abandoned = abandoned.count,
                    lost = %abandoned.lost.join(", "),
                    "previous alert sinks retired; {} still pending for them were abandoned: {}",
                    abandoned.describe(),
                    old.abort_why.get().map_or("a deadline passed", String::as_str)
                );
            }
        });
        let mut retiring = self.retiring();
        retiring.retain(|(_, d)| !d.is_finished());
        retiring.push((retired, drain));
        Ok(())
    }

    fn retiring(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<Generation>, JoinHandle<()>)>> {
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
        let (retired, drains): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *self.retiring()).into_iter().unzip();
        let why = format!(
            "opsd was stopping and the shutdown deadline ({}) passed",
            humantime::format_duration(deadline)
        );
        // Sinks a recent reload replaced finish their own drain meanwhile, within this deadline
        // too: what they still hold then is abandoned, and their drain says what.
        let mut drains = futures_util::future::join_all(drains);
        let (abandoned, retired_in_time) = tokio::join!(
            current.drain(deadline, &why),
            tokio::time::timeout(deadline, &mut drains)
        );
        if retired_in_time.is_err() {
            for old in &retired {
                old.abort_now(&why);
            }
            drains.await;
        }
        if abandoned.count == 0 {
            tracing::info!("alert sinks flushed");
        } else {
            tracing::error!(
                abandoned = abandoned.count,
                lost = %abandoned.lost.join(", "),
                deadline_ms = deadline.as_millis() as u64,
                "{} still pending at the shutdown deadline were abandoned",
                abandoned.describe()
            );
        }
        let retired_lost: u64 = retired.iter().map(|g| g.abandoned().count).sum();
        abandoned.count == 0 && retired_lost == 0
    }
}

/// Takes alerts off one sink's queue and delivers each in its own task, at most
/// `options.concurrency` at a time, until shutdown has drained the queue.
async fn worker(
    q: Arc<SinkQueue>,
    options: DispatcherOptions,
    closing: CancellationToken,
    abort: Abort,
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
            _ = abort.token.cancelled() => break,
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
    if abort.token.is_cancelled() {
        while let Some(alert) = q.pop() {
            q.abandon(&alert, abort.why());
        }
    }
}

/// Delivers one alert to one sink, retrying with exponential backoff.
async fn deliver(
    q: Arc<SinkQueue>,
    alert: Arc<Alert>,
    retry: RetryPolicy,
    abort: Abort,
    _slot: OwnedSemaphorePermit,
) {
    let sink = &q.sink.name;
    let mut backoff = retry.first_backoff;
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        let result = tokio::select! {
            r = q.sink.attempt(&alert) => r,
            _ = abort.token.cancelled() => {
                q.abandon(&alert, abort.why());
                return;
            }
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
            _ = abort.token.cancelled() => {
                q.abandon(&alert, abort.why());
                return;
            }
        }
        backoff = (backoff * 2).min(retry.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A webhook endpoint on 127.0.0.1 that takes connections and never answers; `seen` hears
    /// of each connection (its alert is then being delivered, no longer queued).
    async fn hanging_hook() -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = tx.send(());
                tokio::spawn(async move {
                    let _open = sock;
                    std::future::pending::<()>().await
                });
            }
        });
        (addr, rx)
    }

    fn stuck_sink(addr: std::net::SocketAddr) -> BTreeMap<String, SinkConfig> {
        let text = format!(
            "[alerts.stuck]\ntype = \"webhook\"\nurl = \"http://{addr}/\"\ntimeout = \"1h\"\n"
        );
        crate::config::parse(Path::new("jobs.toml"), &text)
            .expect("valid sink")
            .alerts
    }

    fn one_at_a_time() -> DispatcherOptions {
        DispatcherOptions {
            queue_capacity: 8,
            concurrency: 1,
            retry: RetryPolicy::default(),
        }
    }

    fn alert(rule: &str) -> Alert {
        Alert::new("web", rule, Severity::High, "summary")
    }

    async fn wait(seen: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
        tokio::time::timeout(Duration::from_secs(30), seen.recv())
            .await
            .expect("the sink was never called");
    }

    #[tokio::test]
    async fn a_drain_out_of_time_counts_and_names_the_alert_in_delivery_and_the_queued_one() {
        let (addr, mut seen) = hanging_hook().await;
        let generation = Generation::start(&stuck_sink(addr), one_at_a_time()).unwrap();
        let to = ["stuck".to_string()];
        generation.push(Arc::new(alert("child_crash")), &to);
        wait(&mut seen).await;
        generation.push(Arc::new(alert("worker_exhaustion")), &to);
        assert_eq!(generation.stats()["stuck"].queued, 1);

        let abandoned = generation
            .drain(Duration::from_millis(100), "the test's deadline passed")
            .await;
        // Before: the count was of the queue alone (the alert in delivery was not in it).
        assert_eq!(abandoned.count, 2);
        assert_eq!(abandoned.lost, ["web/child_crash", "web/worker_exhaustion"]);
        assert_eq!(
            abandoned.describe(),
            "2 alert(s) (web/child_crash, web/worker_exhaustion)"
        );
        let stats = generation.stats()["stuck"];
        assert_eq!((stats.queued, stats.failed, stats.abandoned), (0, 0, 2));
    }

    #[tokio::test]
    async fn shutdown_abandons_what_replaced_sinks_still_hold_and_says_it_was_the_shutdown() {
        let (addr, mut seen) = hanging_hook().await;
        let d = Dispatcher::new(&stuck_sink(addr), one_at_a_time()).unwrap();
        d.send(alert("child_crash"), &["stuck".to_string()]);
        wait(&mut seen).await;
        let old = d.read().clone();
        d.replace(&BTreeMap::new()).unwrap();
        // Before: true, as the new (empty) sinks were flushed; the old sink's alert was lost.
        assert!(!d.shutdown(Duration::from_millis(100)).await);
        assert_eq!(old.abandoned().count, 1);
        let why = old.abort_why.get().map(String::as_str).unwrap_or_default();
        assert_eq!(
            why,
            "opsd was stopping and the shutdown deadline (100ms) passed"
        );
    }
}
