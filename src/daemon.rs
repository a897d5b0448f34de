//! `opsd run`: the daemon's main loop. It owns the scheduler and reacts to signals (SIGHUP
//! reload, SIGTERM/SIGINT shutdown), control-socket requests, and the systemd watchdog.

use crate::alert::{Dispatcher, DispatcherOptions};
use crate::config::{self, Config};
use crate::control::{self, server::Envelope, Request, Response};
use crate::scheduler::{Scheduler, TriggerReply};
use crate::systemd::Notifier;
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

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
/// configuration cannot be loaded or the state directory cannot be created.
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
    let serving =
        match control::server::serve(&opts.socket, cfg.defaults.control_group.as_deref(), tx) {
            Ok(()) => true,
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
    let mut sched = Scheduler::start(cfg, opts.state_dir.clone(), alerts)
        .context("cannot start the scheduler's alarm thread")?;
    release_freed_memory();
    notifier.ready(&status_line(&sched));

    let watchdog = notifier.watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    let freeze_after = std::env::var("OPSD_TEST_FREEZE_LOOP_AFTER")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let started = Instant::now();

    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = reload(&mut sched, &opts, &notifier);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some((req, reply)) = requests.recv() => {
                if let Request::Trigger { job } = req {
                    // The run goes on off the loop; the client waits on its own connection.
                    match sched.trigger(&job) {
                        Ok(rx) => {
                            tokio::spawn(async move {
                                let reply_to = rx.await.unwrap_or_else(|_| {
                                    TriggerReply::NotStarted("the run was abandoned".into())
                                });
                                let _ = reply.send(Response::Triggered { reply: reply_to });
                            });
                        }
                        Err(message) => {
                            let _ = reply.send(Response::Error { message });
                        }
                    }
                } else {
                    let _ = reply.send(handle(req, &mut sched, &opts, &notifier));
                }
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                if freeze_after.is_some_and(|d| started.elapsed() >= d) {
                    tracing::error!("OPSD_TEST_FREEZE_LOOP_AFTER reached: freezing the scheduler loop (test only)");
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
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

/// Answers a status or reload request.
fn handle(req: Request, sched: &mut Scheduler, opts: &Options, notifier: &Notifier) -> Response {
    match req {
        Request::Status => Response::Status {
            config: sched.config().path.display().to_string(),
            jobs: sched.status(),
        },
        Request::Reload => match reload(sched, opts, notifier) {
            Ok(summary) => Response::Reloaded { summary },
            Err(message) => Response::Error { message },
        },
        Request::Trigger { .. } => Response::Error {
            message: "trigger is answered by the run itself".into(),
        },
    }
}

/// Re-reads the job file; a file that fails validation leaves the running configuration alone.
fn reload(
    sched: &mut Scheduler,
    opts: &Options,
    notifier: &Notifier,
) -> Result<crate::scheduler::ReloadSummary, String> {
    notifier.reloading();
    let result = match config::load(&opts.config) {
        Ok(new) => sched
            .reload(new)
            .inspect(|summary| {
                tracing::info!(
                    added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed,
                    unchanged = summary.unchanged, "configuration reloaded"
                );
                spawn_preflights(sched.config(), summary.added.iter().chain(&summary.changed));
                release_freed_memory();
            })
            .inspect_err(|e| {
                tracing::error!(config = %opts.config.display(),
                    "reload rejected ({e}); the previous configuration keeps running");
            }),
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
    };
    notifier.ready(&status_line(sched));
    result
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
            match job.job.preflight().await {
                Ok(None) => {}
                Ok(Some(what)) => tracing::info!(job = %job.name, "{}: {what}", job.name),
                Err(why) => tracing::error!(job = %job.name,
                    "{}: {why}; its runs will fail until this is fixed", job.name),
            }
        });
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
