//! The command line: `opsd check`, `opsd run`, `opsd run-job` and friends.

use crate::config::{self, Config};
use crate::logging::{self, LogFormat};
use crate::scheduler::{self, Trigger};
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
}

/// Parses the command line, runs the subcommand, and turns errors into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("opsd: {e:#}");
            ExitCode::from(2)
        }
    }
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
        Command::Geoip { command } => {
            logging::init(cli.log_format);
            crate::geoip::cli::run(command)
        }
        Command::Check { next } => {
            let cfg = config::load(&cli.config)?;
            print_check(&cfg, next);
            Ok(ExitCode::SUCCESS)
        }
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
                scheduler::execute(&job, state, dry_run, Trigger::Manual, stop).await
            });
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
