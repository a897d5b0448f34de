//! The command line: `opsd check`, `opsd run`, `opsd run-job` and friends. This file holds
//! the clap definition and hands each subcommand to the file named after it:
//!
//! - `run.rs`: `opsd run`, the daemon in the foreground (what systemd starts)
//! - `run_job.rs`: `opsd run-job`, one job once in the foreground
//! - `check.rs`: `opsd check`, the job file validated and what each job type checks
//! - `status.rs` (and `table.rs`, its job table): `opsd status`
//! - `control.rs`: `opsd trigger` and `opsd reload`, the other socket commands
//! - `apache.rs`: `opsd apache doctor|test-rules`; `geoip.rs`: `opsd geoip ...`
//! - `tls.rs`: `opsd tls doctor`
//! - `import.rs`: `opsd import crontab|cron-d|anacron`, cron's files turned into a drop-in
//! - `fleet.rs`: `opsd fleet status`, the fleet's hosts and fleet jobs read from etcd
//! - `dist_assets.rs`: `opsd completions` and the man pages and scripts the package installs
//! - `job_file.rs` and `show.rs`: loading the job file and printing outside text, for all of them

mod apache;
mod check;
mod control;
mod dist_assets;
mod fleet;
mod geoip;
mod import;
mod job_file;
mod run;
mod run_job;
mod show;
mod status;
mod table;
mod tls;

use crate::config;
use crate::control as socket;
use crate::logging::LogFormat;
use apache::ApacheCommand;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tls::TlsCommand;

/// opsd: the ops scheduler that runs jobs at second precision in your own time zone.
#[derive(Debug, Parser)]
#[command(name = "opsd", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--config`, for the subcommands that read the job file.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The job file (or $OPSD_CONFIG); the *.toml files of the jobs.d directory beside it are
    /// read after it.
    #[arg(long, short, value_name = "FILE", default_value = config::DEFAULT_PATH, env = "OPSD_CONFIG")]
    pub config: PathBuf,
}

/// `--state-dir`, for the subcommands that run jobs.
#[derive(Debug, Args)]
pub struct StateDirArg {
    /// Where opsd keeps its state (default: $STATE_DIRECTORY, else /var/lib/opsd).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `--log-format`, for the subcommands that log.
#[derive(Debug, Args)]
pub struct LogFormatArg {
    /// Log format (or $OPSD_LOG_FORMAT; auto: journald under systemd, else text).
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, env = "OPSD_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// `--socket`, the one source of the control socket's path for the daemon and its clients.
#[derive(Debug, Args)]
pub struct SocketArg {
    /// The control socket (or $OPSD_SOCKET; default: $RUNTIME_DIRECTORY/opsd.sock, else
    /// /run/opsd/opsd.sock).
    #[arg(long, value_name = "PATH", env = "OPSD_SOCKET", default_value_os_t = socket::default_socket())]
    pub socket: PathBuf,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the job file and its jobs.d/*.toml, print each job's next fire times, and warn
    /// of paths the systemd unit hides from the daemon (warnings do not change the exit code).
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// How many upcoming fire times to print per job.
        #[arg(long, default_value_t = 3)]
        next: usize,
    },
    /// Run the daemon in the foreground (this is what systemd starts).
    Run {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        state_dir: StateDirArg,
        #[command(flatten)]
        log: LogFormatArg,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show each job's schedule, next and last run, like `systemctl list-timers`; with NAME,
    /// that job's last run in full, with the last lines it printed.
    Status {
        /// Show only this job, with its last run's output.
        name: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to run a job now (its overlap policy applies) and print the outcome.
    Trigger {
        /// The job's name.
        name: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Ask the running daemon to re-read its job file (like SIGHUP); exits non-zero, printing
    /// the errors, when the file is rejected (this is the unit's ExecReload=).
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Run one job once now, in the foreground, and exit with its result.
    RunJob {
        /// The job's name in the job file.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        state_dir: StateDirArg,
        #[command(flatten)]
        log: LogFormatArg,
        /// Report what would change without changing anything (job types that support it).
        #[arg(long)]
        dry_run: bool,
    },
    /// Offline GeoIP tools: build legacy .dat files from GeoLite2 CSV zips.
    Geoip {
        /// Log format.
        #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
        log_format: LogFormat,
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
    /// TLS helpers.
    Tls {
        /// What to do.
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Turn a crontab, /etc/cron.d files or an anacron setup into a jobs.d drop-in (stdout);
    /// lines that cannot be mapped are reported on stderr with their file, line and why.
    Import {
        /// What to import.
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// The fleet this host belongs to ([fleet] in the job file).
    Fleet {
        /// What to do.
        #[command(subcommand)]
        command: fleet::FleetCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages and completion scripts the package installs into DIR (used when
    /// building the .deb).
    #[command(hide = true)]
    DistAssets {
        /// The directory to write `man/` and `completions/` into.
        dir: PathBuf,
    },
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
            eprintln!("opsd: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose text is already in the
/// message (as in `cannot read configuration: No such file …`) is not repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.is_empty() {
            text = s;
        } else if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
    }
    text
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

/// Hands each subcommand to the file that runs it.
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { config, next } => check::run(&config.config, next),
        Command::Run {
            config,
            state_dir,
            log,
            socket,
        } => run::run(
            config.config,
            state_dir.state_dir,
            log.log_format,
            socket.socket,
        ),
        Command::Status { name, socket, json } => status::run(name, &socket.socket, json),
        Command::Trigger { name, socket } => control::trigger(&name, &socket.socket),
        Command::Reload { socket } => control::reload(&socket.socket),
        Command::RunJob {
            name,
            config,
            state_dir,
            log,
            dry_run,
        } => run_job::run(
            &name,
            &config.config,
            state_dir.state_dir,
            log.log_format,
            dry_run,
        ),
        Command::Geoip {
            log_format,
            command,
        } => geoip::run(log_format, command),
        Command::Apache { command } => apache::run(command),
        Command::Tls { command } => Ok(tls::run(command)),
        Command::Import { command } => import::run(command),
        Command::Fleet { command } => fleet::run(command),
        Command::Completions { shell } => dist_assets::completions(shell),
        Command::DistAssets { dir } => dist_assets::dist_assets(&dir),
    }
}

#[cfg(test)]
mod tests {
    use super::job_file::missing_file_hint;
    use super::*;
    use crate::config::ConfigError;
    use clap::CommandFactory;
    use std::io::ErrorKind;
    use std::path::Path;

    /// The long flags `opsd ARGS… --help` lists.
    fn flags_in_help(path: &[&str]) -> Vec<String> {
        let mut cmd = Cli::command();
        cmd.build();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        let help = sub.render_long_help().to_string();
        let mut flags: Vec<String> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_alphanumeric())
                    .to_string()
            })
            .filter(|w| !["--help", "--version"].contains(&w.as_str()))
            .collect();
        flags.sort();
        flags.dedup();
        flags
    }

    #[test]
    fn each_subcommand_lists_only_the_flags_it_uses() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["check"], &["--config", "--next"]),
            (
                &["run"],
                &["--config", "--log-format", "--socket", "--state-dir"],
            ),
            (&["status"], &["--json", "--socket"]),
            (&["trigger"], &["--socket"]),
            (&["reload"], &["--socket"]),
            (
                &["run-job"],
                &["--config", "--dry-run", "--log-format", "--state-dir"],
            ),
            (
                &["geoip", "build"],
                &["--input", "--log-format", "--output-dir"],
            ),
            (
                &["apache", "doctor"],
                &["--apache-config", "--bin", "--json"],
            ),
            (&["apache", "test-rules"], &["--config", "--job"]),
            (
                &["tls", "doctor"],
                &[
                    "--apache-conf",
                    "--ca-file",
                    "--json",
                    "--nginx-conf",
                    "--probe-timeout",
                ],
            ),
            (&["completions"], &[]),
            (
                &["import", "crontab"],
                &["--check", "--rezone", "--user", "--zone"],
            ),
            (&["import", "cron-d"], &["--check", "--rezone", "--zone"]),
            (
                &["import", "anacron"],
                &["--check", "--crontab", "--rezone", "--root", "--zone"],
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(
                flags_in_help(path),
                expected.to_vec(),
                "opsd {} --help",
                path.join(" ")
            );
        }
    }

    #[test]
    fn a_flag_a_subcommand_does_not_use_is_an_error() {
        for argv in [
            &["opsd", "status", "--config", "x.toml"][..],
            &["opsd", "--config", "x.toml", "status"],
            &["opsd", "reload", "--state-dir", "/tmp"],
            &["opsd", "check", "--log-format", "json"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?} was accepted");
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let e = anyhow::Error::from(ConfigError::Read {
            path: "/etc/opsd/jobs.toml".into(),
            source: std::io::Error::from(ErrorKind::PermissionDenied),
        });
        let text = error_text(&e);
        assert_eq!(text.matches("permission denied").count(), 1, "{text}");
        let hinted = missing_file_hint(
            ConfigError::Read {
                path: "/etc/opsd/jobs.toml".into(),
                source: std::io::Error::from(ErrorKind::NotFound),
            }
            .into(),
            Path::new("/etc/opsd/jobs.toml"),
        );
        let text = error_text(&hinted);
        assert!(
            text.contains("--config") && text.contains("examples/jobs.toml"),
            "{text}"
        );
        let dangling = missing_file_hint(
            ConfigError::Read {
                path: "/etc/opsd/jobs.d/x.toml".into(),
                source: std::io::Error::from(ErrorKind::NotFound),
            }
            .into(),
            Path::new("/etc/opsd/jobs.toml"),
        );
        let text = error_text(&dangling);
        assert!(
            text.starts_with("/etc/opsd/jobs.d/x.toml: cannot read") && !text.contains("--config"),
            "{text}"
        );
    }
}
