//! `opsd run`: the daemon's main loop. It owns the scheduler and reacts to signals (SIGHUP
//! reload, SIGTERM/SIGINT shutdown), control-socket requests, and the systemd watchdog.

use crate::alert::{Dispatcher, DispatcherOptions};
use crate::config::{self, Config, ConfigError, JobConfig};
use crate::control::{self, server::Envelope, Request, Response};
use crate::metrics::{self, Metrics};
use crate::scheduler::{Scheduler, TriggerReply};
use crate::systemd::Notifier;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How often the status line shown by `systemctl status` is refreshed (and freed memory
/// handed back to the system).
const STATUS_EVERY: Duration = Duration::from_secs(15);

/// Where the daemon reads and keeps things.
#[derive(Debug, Clone)]
pub struct Options {
    /// The job file.
    pub config: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The control socket path.
    pub socket: PathBuf,
}

/// Runs the daemon until SIGTERM or SIGINT. Fails (exit != 0) only when the first
/// configuration cannot be loaded, the state directory cannot be created, or another daemon
/// holds the state directory or answers on the control socket.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let cfg = config::load(&opts.config)?;
    std::fs::create_dir_all(&opts.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            opts.state_dir.display()
        )
    })?;
    let _lock = crate::state::lock_daemon(&opts.state_dir)?;
    let _supervisor = crate::process::supervise(&opts.state_dir);
    let notifier = Notifier;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let (tx, mut requests) = mpsc::channel::<Envelope>(16);
    let to_metrics = tx.clone();
    let serving =
        match control::server::serve(&opts.socket, cfg.defaults.control_group.as_deref(), tx) {
            Ok(()) => true,
            // Two daemons on one job file would run every job twice, and the second could
            // never be reached by status, trigger or reload: refuse, as for the state dir.
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                anyhow::bail!(
                    "control socket {}: {e}; refusing to start a second daemon",
                    opts.socket.display()
                )
            }
            Err(e) => {
                tracing::warn!(
                    "control socket {} unavailable ({e}); opsd status/trigger/reload will not work",
                    opts.socket.display()
                );
                false
            }
        };
    let jobs = cfg.jobs.len();
    tracing::info!(config = %opts.config.display(), jobs, "opsd started");
    if jobs == 0 {
        tracing::info!(config = %opts.config.display(),
            "no jobs in {}: nothing to do until a [jobs.NAME] section is added and opsd reloaded",
            opts.config.display());
    }
    let alerts =
        Dispatcher::new(&cfg.alerts, DispatcherOptions::default()).context("alert sinks")?;
    spawn_preflights(&cfg, cfg.jobs.keys());
    spawn_file_checks(&cfg);
    let metrics = Arc::new(Metrics::new(chrono::Utc::now()));
    let source = metrics::Source::new(to_metrics, alerts.clone());
    metrics::publish(&cfg.metrics, Arc::clone(&metrics), source).await;
    // The fleet first: its registration runs while the jobs are armed, and a caught-up fleet
    // slot is put to the gate (which waits for the registration) rather than refused.
    let gate = fleet_gate(&cfg, &alerts, &opts);
    let mut sched =
        Scheduler::start_gated(cfg, opts.state_dir.clone(), alerts, metrics.clone(), gate)
            .context("cannot start the scheduler's alarm thread")?;
    release_freed_memory();
    notifier.ready(&status_line(&sched));

    let watchdog = notifier.watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    let mut reloads = Reloads::default();

    loop {
        tokio::select! {
            _ = hup.recv() => reloads.request(None, &opts, &notifier),
            loaded = reloads.finished(), if reloads.loading.is_some() => {
                let before = sched.config().metrics.clone();
                metrics.reloaded(reloads.apply(loaded, &mut sched, &opts, &notifier));
                if sched.config().metrics != before {
                    tracing::warn!(config = %opts.config.display(),
                        "[metrics] changed; the change takes effect when opsd is restarted");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some((req, reply)) = requests.recv() => match req {
                Request::Status => {
                    let _ = reply.send(status(&sched));
                }
                Request::Changes { since } => {
                    let _ = reply.send(Response::Changes { changes: sched.changes_since(since) });
                }
                Request::Reload => reloads.request(Some(reply), &opts, &notifier),
                Request::Trigger { job } => trigger(&sched, &job, reply),
            },
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                notifier.watchdog();
            }
            _ = status_tick.tick() => {
                notifier.status(&status_line(&sched));
                release_freed_memory();
            }
        }
    }
    notifier.stopping();
    let grace = sched.config().defaults.shutdown_timeout;
    tracing::info!("shutting down");
    sched.shutdown(grace).await;
    if serving {
        let _ = std::fs::remove_file(&opts.socket);
    }
    tracing::info!("opsd stopped");
    Ok(())
}

/// The answer to `opsd status`.
fn status(sched: &Scheduler) -> Response {
    Response::Status {
        config: sched.config().path.display().to_string(),
        jobs: sched.status(),
    }
}

/// Starts a run for `opsd trigger`; the run goes on off the loop and `reply` hears how it
/// ended (the client waits on its own connection).
fn trigger(sched: &Scheduler, job: &str, reply: oneshot::Sender<Response>) {
    match sched.trigger(job) {
        Ok(rx) => {
            tokio::spawn(async move {
                let ran = rx
                    .await
                    .unwrap_or_else(|_| TriggerReply::NotStarted("the run was abandoned".into()));
                let _ = reply.send(Response::Triggered { reply: ran });
            });
        }
        Err(message) => {
            let _ = reply.send(Response::Error { message });
        }
    }
}

/// Who is waiting for a reload's result: `opsd reload` clients (SIGHUP has nobody to tell).
type Waiters = Vec<oneshot::Sender<Response>>;

/// Reloads in progress. The job file is read and validated (regexes compiled, users looked up)
/// on a blocking thread, so the loop goes on answering `opsd status` and feeding the watchdog
/// however long that takes; only swapping in the validated configuration happens on the loop.
/// Requests that come while a file is being read are coalesced into one more reload after it,
/// because the file may have changed after it was read: every request is answered by a read
/// that started after the request came.
#[derive(Default)]
struct Reloads {
    /// The file being read, and who asked for that read.
    loading: Option<(JoinHandle<Result<Config, ConfigError>>, Waiters)>,
    /// Requests for the next read, once the current one is done.
    queued: Option<Waiters>,
}

impl Reloads {
    /// Starts a reload now, or queues one after the reload in progress.
    fn request(
        &mut self,
        reply: Option<oneshot::Sender<Response>>,
        opts: &Options,
        notifier: &Notifier,
    ) {
        if self.loading.is_some() {
            let queued = self.queued.get_or_insert_with(Vec::new);
            queued.extend(reply);
            tracing::info!(
                config = %opts.config.display(),
                "reload requested while one is in progress; it follows once that one is done"
            );
            return;
        }
        notifier.reloading();
        let path = opts.config.clone();
        let task = tokio::task::spawn_blocking(move || config::load(&path));
        self.loading = Some((task, reply.into_iter().collect()));
    }

    /// Waits for the file being read; only polled while one is.
    async fn finished(&mut self) -> Result<Result<Config, ConfigError>, tokio::task::JoinError> {
        match self.loading.as_mut() {
            Some((task, _)) => task.await,
            None => std::future::pending().await,
        }
    }

    /// Applies a finished read, answers who asked for it, and starts the queued reload if any;
    /// true when the configuration read is the one in force now.
    fn apply(
        &mut self,
        loaded: Result<Result<Config, ConfigError>, tokio::task::JoinError>,
        sched: &mut Scheduler,
        opts: &Options,
        notifier: &Notifier,
    ) -> bool {
        let waiters = self.loading.take().map(|(_, w)| w).unwrap_or_default();
        let result = match loaded {
            Ok(new) => reload(new, sched, opts),
            Err(e) => {
                tracing::error!(config = %opts.config.display(),
                    "reading the job file failed ({e}); the previous configuration keeps running");
                Err(format!(
                    "reload failed ({e}); the previous configuration keeps running"
                ))
            }
        };
        for reply in waiters {
            let _ = reply.send(match &result {
                Ok(summary) => Response::Reloaded {
                    summary: summary.clone(),
                },
                Err(message) => Response::Error {
                    message: message.clone(),
                },
            });
        }
        match self.queued.take() {
            Some(waiters) => {
                let mut waiters = waiters.into_iter();
                self.request(waiters.next(), opts, notifier);
                if let Some((_, w)) = self.loading.as_mut() {
                    w.extend(waiters);
                }
            }
            None => notifier.ready(&status_line(sched)),
        }
        result.is_ok()
    }
}

/// Swaps in a configuration read for a reload; a file that failed validation leaves the
/// running configuration alone.
fn reload(
    loaded: Result<Config, ConfigError>,
    sched: &mut Scheduler,
    opts: &Options,
) -> Result<crate::scheduler::ReloadSummary, String> {
    match loaded {
        Ok(new) => {
            let fleet_changed = new.fleet != sched.config().fleet;
            let reloaded = sched.reload(new);
            if reloaded.is_ok() && fleet_changed {
                sched.set_gate(fleet_gate(sched.config(), sched.alerts(), opts));
            }
            reloaded
            .inspect(|summary| {
                tracing::info!(
                    added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed,
                    unchanged = summary.unchanged, "configuration reloaded"
                );
                // A file cut short by a full disk or an editor's crash parses as valid and
                // empty: say loudly that it stopped everything.
                if sched.config().jobs.is_empty() && !summary.removed.is_empty() {
                    tracing::warn!(config = %opts.config.display(), removed = summary.removed.len(),
                        "the reloaded {} has no jobs: all {} job(s) were removed and nothing will run",
                        opts.config.display(), summary.removed.len());
                }
                spawn_preflights(sched.config(), summary.added.iter().chain(&summary.changed));
                spawn_file_checks(sched.config());
                release_freed_memory();
            })
            .inspect_err(|e| {
                tracing::error!(config = %opts.config.display(),
                    "reload rejected ({e}); the previous configuration keeps running");
            })
        }
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!(config = %opts.config.display(), "{line}");
            }
            tracing::error!(config = %opts.config.display(),
                "reload rejected; the previous configuration keeps running");
            Err(format!(
                "reload rejected, the previous configuration keeps running:\n{e}"
            ))
        }
    }
}

/// This host's part of the fleet of `cfg`'s `[fleet]`, if it has one, alerting lost runs
/// through `alerts`; a client that cannot be set up (an unreadable TLS file) is logged at
/// error, and fleet jobs then refuse their slots.
fn fleet_gate(
    cfg: &Config,
    alerts: &Dispatcher,
    opts: &Options,
) -> Option<Arc<dyn crate::scheduler::SlotGate>> {
    let settings = cfg.fleet.as_ref()?;
    crate::fleet::start(settings, alerts.clone(), opts.state_dir.clone())
        .inspect_err(|e| {
            tracing::error!(config = %cfg.path.display(),
                "fleet: {e}; fleet jobs will not run on this host")
        })
        .ok()
}

/// Hands freed memory back to the system, which glibc's allocator would otherwise keep: what
/// reading a job file used (its TOML document, spans and strings: megabytes with 1,000 jobs),
/// and what bursts of runs or an in-process GeoIP build (~100 MB for City) left behind.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only returns free heap pages to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Checks, off the loop, what the named jobs need from outside (EC2 credentials), so a
/// missing credential is logged at error when the job is loaded, not at its first run.
fn spawn_preflights<'a>(cfg: &Config, names: impl IntoIterator<Item = &'a String>) {
    for name in names {
        let Some(job) = cfg.jobs.get(name).filter(|j| j.enabled).cloned() else {
            continue;
        };
        tokio::spawn(async move {
            match job.spec.preflight().await {
                Ok(None) => {}
                Ok(Some(what)) => tracing::info!(job = %job.name, "{}: {what}", job.name),
                Err(why) => tracing::error!(job = %job.name,
                    "{}: {why}; its runs will fail until this is fixed", job.name),
            }
        });
    }
}

/// Warns, naming the job and the file, for each enabled job with a file its runs read that
/// cannot be used now (a command job's `env_file` missing when required, not a regular file,
/// unreadable, not `KEY=VALUE`): each run reads it again and would fail, and without this the
/// journal says nothing until the first run does. All jobs are checked at each reload, changed
/// or not, since the file may have gone meanwhile. The checks run on a thread of their own: a
/// stat or open of a file on a dead mount blocks, and must block neither the main loop nor the
/// runtime's shutdown.
fn spawn_file_checks(cfg: &Config) {
    let jobs: Vec<Arc<JobConfig>> = cfg.jobs.values().filter(|j| j.enabled).cloned().collect();
    let spawned = std::thread::Builder::new()
        .name("job-file-check".into())
        .spawn(move || {
            for job in jobs {
                for (path, why) in job.spec.as_spec().unusable_files() {
                    tracing::warn!(job = %job.name, file = %path.display(),
                        "{}: {why}; its runs will fail until this is fixed", job.name);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the thread that checks the files jobs read: {e}");
    }
}

/// "7 jobs; next: geoip-weekly at 2026-11-29 04:00:00 KST".
fn status_line(sched: &Scheduler) -> String {
    let cfg: &Config = sched.config();
    let n = cfg.jobs.len();
    let jobs = if n == 1 {
        "1 job".to_string()
    } else {
        format!("{n} jobs")
    };
    match sched.next_due() {
        Some((name, at, tz)) => format!(
            "{jobs}; next: {name} at {}",
            at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z")
        ),
        None => format!("{jobs}; nothing scheduled"),
    }
}
