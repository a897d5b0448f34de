//! The command line: `opsd check`, `opsd run`, `opsd run-job` and friends.

use crate::alert::{Dispatcher, DispatcherOptions};
use crate::config::{self, Config};
use crate::control::{self, client, Request, Response};
use crate::daemon;
use crate::logging::{self, LogFormat};
use crate::scheduler::{self, Trigger};
use crate::scheduler::{JobStatus, TriggerReply};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// opsd: the ops scheduler that runs jobs at second precision in your own time zone.
#[derive(Debug, Parser)]
#[command(name = "opsd", version, about, long_about = None)]
pub struct Cli {
    /// The job file.
    #[arg(long, short, global = true, default_value = config::DEFAULT_PATH, env = "OPSD_CONFIG")]
    pub config: PathBuf,
    /// Where opsd keeps its state (default: $STATE_DIRECTORY, else /var/lib/opsd).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the job file and print each job's next fire times.
    Check {
        /// How many upcoming fire times to print per job.
        #[arg(long, default_value_t = 3)]
        next: usize,
    },
    /// Run the daemon in the foreground (this is what systemd starts).
    Run {
        /// Where to serve the control socket.
        #[arg(long, default_value_os_t = control::default_socket())]
        socket: PathBuf,
    },
    /// Show each job's schedule, next and last run, like `systemctl list-timers`.
    Status {
        /// The daemon's control socket.
        #[arg(long, default_value_os_t = control::default_socket())]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to run a job now (its overlap policy applies) and print the outcome.
    Trigger {
        /// The job's name.
        name: String,
        /// The daemon's control socket.
        #[arg(long, default_value_os_t = control::default_socket())]
        socket: PathBuf,
    },
    /// Ask the running daemon to re-read its job file (like SIGHUP) and report whether it took.
    Reload {
        /// The daemon's control socket.
        #[arg(long, default_value_os_t = control::default_socket())]
        socket: PathBuf,
    },
    /// Run one job once now, in the foreground, and exit with its result.
    RunJob {
        /// The job's name in the job file.
        name: String,
        /// Report what would change without changing anything (job types that support it).
        #[arg(long)]
        dry_run: bool,
    },
    /// Offline GeoIP tools: build legacy .dat files from GeoLite2 CSV zips.
    Geoip {
        /// What to do.
        #[command(subcommand)]
        command: crate::geoip::cli::GeoipCommand,
    },
    /// Apache helpers.
    Apache {
        /// What to do.
        #[command(subcommand)]
        command: ApacheCommand,
    },
}

/// `opsd apache ...`.
#[derive(Debug, Subcommand)]
pub enum ApacheCommand {
    /// Check this Apache for the 2.4.27+ child-crash recipe (threaded MPM + mod_php + HTTP/2);
    /// exit 0 no recipe, 1 recipe matched, 2 could not run Apache.
    Doctor(crate::apache::doctor::DoctorArgs),
}

/// Parses the command line, runs the subcommand, and turns errors into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        restore_sigpipe();
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("opsd: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Lets `opsd check | head` end quietly, like other Unix tools: Rust ignores SIGPIPE, which
/// turns a closed pipe into a panic in `println!`. The daemon (`opsd run`) keeps ignoring it.
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: the default disposition installs no handler; no other thread runs yet.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// The state directory: the flag, else systemd's `$STATE_DIRECTORY`, else `/var/lib/opsd`.
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("STATE_DIRECTORY").and_then(|v| std::env::split_paths(&v).next())
    })
    .unwrap_or_else(|| PathBuf::from("/var/lib/opsd"))
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Apache {
            command: ApacheCommand::Doctor(args),
        } => Ok(crate::apache::doctor::cli(args)),
        Command::Geoip { command } => {
            logging::init(cli.log_format);
            crate::geoip::cli::run(command)
        }
        Command::Check { next } => {
            let cfg = config::load(&cli.config)?;
            print_check(&cfg, next);
            let preflights = check_preflights(&cfg)?;
            let geoip = check_geoip_jobs(&cfg)?;
            Ok(if preflights && geoip {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Run { socket } => {
            logging::init(cli.log_format);
            let opts = daemon::Options {
                config: cli.config.clone(),
                state_dir: state_dir(cli.state_dir),
                socket,
            };
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            if let Err(e) = rt.block_on(daemon::run(opts)) {
                tracing::error!("{e:#}");
                return Err(e);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { socket, json } => {
            match client::call(&socket, &Request::Status)? {
                Response::Status { config, jobs } if json => {
                    println!("{}", serde_json::json!({ "config": config, "jobs": jobs }));
                }
                Response::Status { config, jobs } => print_status(&config, &jobs),
                other => return Err(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger { name, socket } => {
            match client::call(&socket, &Request::Trigger { job: name.clone() })? {
                Response::Triggered {
                    reply: TriggerReply::Ran(run),
                } => {
                    println!(
                        "{name}: {} ({} ms, run {}){}",
                        run.outcome,
                        run.duration_ms,
                        run.run_id,
                        run.detail.map(|d| format!(": {d}")).unwrap_or_default()
                    );
                    Ok(if run.outcome.is_error() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                Response::Triggered {
                    reply: TriggerReply::NotStarted(why),
                } => {
                    println!("{name}: not started: {why}");
                    Ok(ExitCode::FAILURE)
                }
                other => Err(unexpected(other)),
            }
        }
        Command::Reload { socket } => match client::call(&socket, &Request::Reload)? {
            Response::Reloaded { summary } => {
                println!(
                    "reloaded: {} added, {} changed, {} removed, {} unchanged",
                    summary.added.len(),
                    summary.changed.len(),
                    summary.removed.len(),
                    summary.unchanged
                );
                for (what, names) in [
                    ("added", &summary.added),
                    ("changed", &summary.changed),
                    ("removed", &summary.removed),
                ] {
                    for n in names {
                        println!("  {what}: {n}");
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            other => Err(unexpected(other)),
        },
        Command::RunJob { name, dry_run } => {
            logging::init(cli.log_format);
            let cfg = config::load(&cli.config)?;
            let job = cfg.jobs.get(&name).cloned().with_context(|| {
                let names: Vec<&str> = cfg.jobs.keys().map(String::as_str).collect();
                let hint = config::did_you_mean(&name, names.iter().copied())
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_default();
                format!("no job named {name:?} in {}{hint}", cli.config.display())
            })?;
            let state = state_dir(cli.state_dir);
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let finished = rt.block_on(async move {
                let stop = CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        on_signal.cancel();
                    }
                });
                let alerts = Dispatcher::new(&cfg.alerts, DispatcherOptions::default())?;
                let finished =
                    scheduler::execute(&job, state, &alerts, dry_run, Trigger::Manual, stop, None)
                        .await;
                alerts.shutdown(std::time::Duration::from_secs(30)).await;
                Ok::<_, anyhow::Error>(finished)
            })?;
            let r = &finished.report;
            println!(
                "{name}: {}{} ({} ms)",
                r.outcome,
                r.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default(),
                finished.duration.as_millis()
            );
            Ok(match (r.outcome.is_error(), r.exit_code) {
                (false, _) => ExitCode::SUCCESS,
                (true, Some(code)) if (1..=255).contains(&code) => ExitCode::from(code as u8),
                (true, _) => ExitCode::FAILURE,
            })
        }
    }
}

/// Turns an error or unexpected answer from the daemon into an error.
fn unexpected(r: Response) -> anyhow::Error {
    match r {
        Response::Error { message } => anyhow::anyhow!("{message}"),
        other => anyhow::anyhow!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Prints the job table of `opsd status`.
fn print_status(config: &str, jobs: &[JobStatus]) {
    println!("{config}: {} job(s)\n", jobs.len());
    let fmt_local = |t: chrono::DateTime<chrono::Utc>, tz: Option<&str>| match tz
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
    {
        Some(tz) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    };
    let mut rows = vec![[
        "JOB".to_string(),
        "TYPE".into(),
        "SCHEDULE".into(),
        "NEXT".into(),
        "NEXT (UTC)".into(),
        "LAST".into(),
        "OUTCOME".into(),
        "DURATION".into(),
        "RUNNING".into(),
    ]];
    for j in jobs {
        let schedule = match (&j.schedule, &j.timezone) {
            (Some(s), Some(z)) => format!("{s} ({z})"),
            _ => "continuous".into(),
        };
        let (next, next_utc) = match (&j.broken, j.next) {
            (Some(why), _) => (format!("BROKEN: {why}"), "-".into()),
            (None, Some(t)) => (
                fmt_local(t, j.timezone.as_deref()),
                t.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            (None, None) if !j.enabled => ("disabled".into(), "-".into()),
            (None, None) => ("-".into(), "-".into()),
        };
        let (last, outcome, duration) = match &j.last {
            Some(l) => (
                fmt_local(l.started, j.timezone.as_deref()),
                l.outcome.to_string(),
                format!("{} ms", l.duration_ms),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let running = if j.running > 0 {
            format!("yes ({})", j.running)
        } else {
            "no".into()
        };
        rows.push([
            j.name.clone(),
            j.job_type.clone(),
            schedule,
            next,
            next_utc,
            last,
            outcome,
            duration,
            running,
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Runs each job's preflight (EC2 credentials) and prints what it found; false if any failed.
fn check_preflights(cfg: &Config) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut ok = true;
    let mut first = true;
    for job in cfg.jobs.values() {
        let line = match rt.block_on(job.job.preflight()) {
            Ok(None) => continue,
            Ok(Some(what)) => what,
            Err(why) => {
                ok = false;
                why
            }
        };
        if std::mem::take(&mut first) {
            println!();
        }
        println!("{}: {line}", job.name);
    }
    Ok(ok)
}

/// Says for each geoip job whether its license key and output directory are there, with the
/// file, line and key of a problem; false when one would fail every run of an enabled job.
fn check_geoip_jobs(cfg: &Config) -> anyhow::Result<bool> {
    use crate::jobs::geoip::preflight::{preflight, Severity};
    let specs: Vec<(&crate::config::JobConfig, &crate::jobs::geoip::GeoipSpec)> = cfg
        .jobs
        .values()
        .filter_map(|j| match &j.job {
            crate::jobs::JobType::Geoip(spec) => Some((&**j, spec)),
            _ => None,
        })
        .collect();
    if specs.is_empty() {
        return Ok(true);
    }
    let text = std::fs::read_to_string(&cfg.path)
        .with_context(|| format!("{}: cannot read configuration", cfg.path.display()))?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let mut ok = true;
    println!();
    for (job, spec) in specs {
        for f in preflight(spec, credentials.as_deref()) {
            let (label, suffix) = match f.severity {
                Severity::Ok => {
                    println!("{}: {}: {}", job.name, f.key, f.message);
                    continue;
                }
                Severity::Error if job.enabled => {
                    ok = false;
                    ("error", "")
                }
                Severity::Error | Severity::Warning if !job.enabled => {
                    ("warning", " (the job is disabled)")
                }
                Severity::Error | Severity::Warning => ("warning", ""),
            };
            let key = format!("jobs.{}.{}", job.name, f.key);
            match f.span {
                Some(span) => {
                    let (line, column) = config::line_col(&text, span.start);
                    println!(
                        "{}:{line}:{column}: `{key}`: {label}: {}{suffix}",
                        cfg.path.display(),
                        f.message
                    );
                }
                None => println!("{}: `{key}`: {label}: {}{suffix}", job.name, f.message),
            }
        }
    }
    Ok(ok)
}

/// Prints each job with its schedule, zone and next fire times (local and UTC).
fn print_check(cfg: &Config, next: usize) {
    println!("{}: OK, {} job(s)", cfg.path.display(), cfg.jobs.len());
    let now = chrono::Utc::now();
    for job in cfg.jobs.values() {
        let state = if job.enabled { "" } else { " (disabled)" };
        match &job.schedule {
            None => println!(
                "\n{} [{}]{state}: runs continuously",
                job.name,
                job.job.type_name()
            ),
            Some(s) => {
                println!(
                    "\n{} [{}]{state}: \"{s}\" in {}",
                    job.name,
                    job.job.type_name(),
                    s.timezone()
                );
                if s.is_start() {
                    println!("  once when the daemon starts");
                }
                let mut t = now;
                for _ in 0..next {
                    let Some(n) = s.next_after(t) else { break };
                    let local = n.with_timezone(&s.timezone());
                    println!(
                        "  {}  ({} UTC)",
                        local.format("%Y-%m-%d %H:%M:%S %Z (%a)"),
                        n.format("%Y-%m-%d %H:%M:%S")
                    );
                    t = n;
                }
            }
        }
    }
}
