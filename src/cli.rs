//! The command line: `opsd check`, `opsd run`, `opsd run-job` and friends.

use crate::alert::{Dispatcher, DispatcherOptions};
use crate::config::sandbox::Sandbox;
use crate::config::ConfigError;
use crate::config::{self, Config};
use crate::control::{self, client, Request, Response};
use crate::daemon;
use crate::logging::{self, LogFormat};
use crate::scheduler::{self, RunMode, Trigger};
use crate::scheduler::{JobStatus, TriggerReply};
use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    #[arg(long, value_name = "PATH", env = "OPSD_SOCKET", default_value_os_t = control::default_socket())]
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

/// `opsd apache ...`.
#[derive(Debug, Subcommand)]
pub enum ApacheCommand {
    /// Check this Apache for the 2.4.27+ child-crash recipe (threaded MPM + mod_php + HTTP/2);
    /// exit 0 no recipe, 1 recipe matched, 2 could not run Apache.
    Doctor(DoctorCli),
    /// Print what each rule would match in an error log, and the alerts the watch would send,
    /// without sending any (like fail2ban-regex).
    TestRules {
        #[command(flatten)]
        args: crate::apache::test_rules::TestRulesArgs,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `opsd apache doctor`'s command line: the doctor's flags and the Apache configuration to
/// examine, under a name that cannot be taken for opsd's own job file.
#[derive(Debug, Args)]
pub struct DoctorCli {
    /// The Apache configuration file to examine (Apache's `-f FILE`; default: the one Apache
    /// was built with).
    #[arg(long, value_name = "FILE")]
    pub apache_config: Option<PathBuf>,
    /// Refused with a pointer to --apache-config: `--config` names opsd's job file.
    #[arg(long, short, hide = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub doctor: crate::apache::doctor::DoctorArgs,
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

/// Where the annotated example job file is, for the hint when there is no job file.
const EXAMPLE_HINT: &str = "an annotated example is /usr/share/doc/opsd/examples/jobs.toml \
     (installed by the package) or config/jobs.toml in the source tree";

/// Loads the job file, with [`missing_file_hint`] for a missing one.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).map_err(|e| missing_file_hint(e.into(), path))
}

/// Replaces a job file's bare `No such file or directory` with a hint at `--config` and the
/// example; other errors (a `jobs.d` file that went, a dangling link there) pass unchanged.
fn missing_file_hint(e: anyhow::Error, path: &Path) -> anyhow::Error {
    match e.downcast_ref::<ConfigError>() {
        Some(ConfigError::Read { source, path: read })
            if source.kind() == ErrorKind::NotFound && read == path =>
        {
            anyhow::anyhow!(
                "{}: no such job file; name another with --config FILE (or OPSD_CONFIG), \
                 or write this one ({EXAMPLE_HINT})",
                shown_path(path)
            )
        }
        _ => e,
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

/// Runs `opsd apache doctor`, turning `--apache-config FILE` into Apache's `-f FILE`.
fn apache_doctor(cli: DoctorCli) -> anyhow::Result<ExitCode> {
    if let Some(file) = cli.config {
        anyhow::bail!(
            "opsd apache doctor has no --config ({} would be opsd's job file): name the Apache \
             configuration to examine with --apache-config {}",
            file.display(),
            file.display()
        );
    }
    let mut doctor = cli.doctor;
    if let Some(file) = cli.apache_config {
        // Apache reads a relative -f below its ServerRoot, not the current directory.
        let file = std::path::absolute(&file)
            .with_context(|| format!("--apache-config {}", file.display()))?;
        if !file.is_file() {
            anyhow::bail!("--apache-config {}: no such file", file.display());
        }
        let mut args = vec!["-f".to_string(), file.display().to_string()];
        args.append(&mut doctor.args);
        doctor.args = args;
    }
    Ok(crate::apache::doctor::cli(doctor))
}

/// Runs `opsd apache test-rules`: the rules of `--job` (from the job file) or the built-in ones,
/// over the log, printed; exit 0 once the log was read.
fn apache_test_rules(
    args: &crate::apache::test_rules::TestRulesArgs,
    config_path: &Path,
) -> anyhow::Result<ExitCode> {
    let (rules, source) = match &args.job {
        None => (
            crate::apache::rules::builtin_rules(),
            "built-in; --job NAME tests a job's own".to_string(),
        ),
        Some(name) => {
            let cfg = load_config(config_path)?;
            let apache_jobs = || {
                cfg.jobs
                    .values()
                    .filter(|j| matches!(j.job, crate::jobs::JobType::ApacheLog(_)))
                    .map(|j| j.name.as_str())
            };
            let Some(job) = cfg.jobs.get(name) else {
                let hint = crate::field::did_you_mean_hint(name, apache_jobs()).unwrap_or_default();
                anyhow::bail!(
                    "{}: no job {name:?}{hint} (apache_log jobs: {})",
                    shown_path(config_path),
                    apache_jobs().collect::<Vec<_>>().join(", ")
                );
            };
            let crate::jobs::JobType::ApacheLog(spec) = &job.job else {
                anyhow::bail!(
                    "{}: job {name:?} is a {} job, not an apache_log job",
                    shown_path(config_path),
                    job.job.type_name()
                );
            };
            (
                spec.rules(),
                format!("of job {name} in {}", shown_path(config_path)),
            )
        }
    };
    let report = if args.file == Path::new("-") {
        crate::apache::test_rules::test_rules(rules, std::io::stdin().lock(), &args.file)?
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        crate::apache::test_rules::test_rules(rules, file, &args.file)?
    };
    print!("{}", report.render(&args.file, &source));
    Ok(ExitCode::SUCCESS)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Apache {
            command: ApacheCommand::Doctor(args),
        } => apache_doctor(args),
        Command::Apache {
            command: ApacheCommand::TestRules { args, config },
        } => apache_test_rules(&args, &config.config),
        Command::Geoip {
            log_format,
            command,
        } => {
            logging::init(log_format);
            crate::geoip::cli::run(command)
        }
        Command::Completions { shell } => {
            crate::dist_assets::write_completion(&Cli::command(), shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::DistAssets { dir } => {
            let written = crate::dist_assets::write_assets(&mut Cli::command(), &dir)
                .with_context(|| format!("cannot write into {}", dir.display()))?;
            for path in written {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, next } => {
            let cfg = load_config(&config.config)?;
            check(&cfg, next)
        }
        Command::Run {
            config,
            state_dir: state,
            log,
            socket,
        } => {
            logging::init(log.log_format);
            let opts = daemon::Options {
                config: config.config,
                state_dir: state_dir(state.state_dir),
                socket: socket.socket,
            };
            let path = opts.config.clone();
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            if let Err(e) = rt.block_on(daemon::run(opts)) {
                // Said once, through the log (stderr or the journal): returning the error
                // would make `main` print it a second time.
                log_start_failure(&missing_file_hint(e, &path));
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { name, socket, json } => {
            match client::call(&socket.socket, &Request::Status)? {
                Response::Status { config, jobs } if name.is_some() => {
                    let name = name.unwrap_or_default();
                    let Some(job) = jobs.iter().find(|j| j.name == name) else {
                        let hint = crate::field::did_you_mean_hint(
                            &name,
                            jobs.iter().map(|j| j.name.as_str()),
                        )
                        .unwrap_or_default();
                        anyhow::bail!(
                            "no job named {name:?} in the loaded job files ({} and its \
                             jobs.d/*.toml){hint}",
                            crate::escape::control(&config)
                        );
                    };
                    if json {
                        print_json(&serde_json::json!(job));
                    } else {
                        print_job_status(job);
                    }
                }
                Response::Status { config, jobs } if json => {
                    print_json(&serde_json::json!({ "config": config, "jobs": jobs }));
                }
                Response::Status { config, jobs } => print_status(&config, &jobs),
                other => return Err(unexpected(other)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trigger { name, socket } => {
            match client::call(&socket.socket, &Request::Trigger { job: name.clone() })? {
                Response::Triggered {
                    reply: TriggerReply::Ran(run),
                } => {
                    println!(
                        "{}: {} ({} ms, run {}){}",
                        crate::escape::control(&name),
                        run.outcome,
                        run.duration_ms,
                        crate::escape::control(&run.run_id),
                        detail_text(run.detail.as_deref())
                    );
                    print_output(&run.output);
                    Ok(if run.outcome.is_error() {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                Response::Triggered {
                    reply: TriggerReply::NotStarted(why),
                } => {
                    println!(
                        "{}: not started: {}",
                        crate::escape::control(&name),
                        crate::escape::control(&why)
                    );
                    Ok(ExitCode::FAILURE)
                }
                other => Err(unexpected(other)),
            }
        }
        Command::Reload { socket } => match client::call(&socket.socket, &Request::Reload)? {
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
                        println!("  {what}: {}", crate::escape::control(n));
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            other => Err(unexpected(other)),
        },
        Command::RunJob {
            name,
            config,
            state_dir: state,
            log,
            dry_run,
        } => {
            logging::init(log.log_format);
            let cfg = load_config(&config.config)?;
            let job = cfg.jobs.get(&name).cloned().with_context(|| {
                let names: Vec<&str> = cfg.jobs.keys().map(String::as_str).collect();
                let hint = crate::field::did_you_mean_hint(&name, names.iter().copied())
                    .unwrap_or_default();
                format!(
                    "no job named {name:?} in the loaded job files ({} and its \
                     jobs.d/*.toml){hint}",
                    shown_path(&config.config)
                )
            })?;
            let state = state_dir(state.state_dir);
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let finished = rt.block_on(async move {
                let control = scheduler::RunControl {
                    why: vec![scheduler::StopReason::default()],
                    ..Default::default()
                };
                let (on_signal, why) = (control.stop.clone(), control.why[0].clone());
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        why.set("interrupted (SIGINT)");
                        on_signal.cancel();
                    }
                });
                let alerts = Dispatcher::new(&cfg.alerts, DispatcherOptions::default())?;
                let mode = RunMode {
                    dry_run,
                    foreground: true,
                };
                let finished =
                    scheduler::execute(&job, state, &alerts, mode, Trigger::Manual, control, None)
                        .await;
                alerts.shutdown(std::time::Duration::from_secs(30)).await;
                Ok::<_, anyhow::Error>(finished)
            })?;
            // Stdout holds the job's own output (`opsd run-job x > out`); the verdict goes
            // beside the log lines, with the last output again when the run failed.
            let r = &finished.report;
            eprintln!(
                "{}: {}{} ({} ms)",
                crate::escape::control(&name),
                r.outcome,
                detail_text(r.detail.as_deref()),
                finished.duration.as_millis()
            );
            if r.outcome.is_error() {
                for line in &r.output {
                    eprintln!("  | {}", crate::escape::control(line));
                }
            }
            Ok(match (r.outcome.is_error(), r.exit_code) {
                (false, _) => ExitCode::SUCCESS,
                (true, Some(code)) if (1..=255).contains(&code) => ExitCode::from(code as u8),
                (true, _) => ExitCode::FAILURE,
            })
        }
    }
}

/// Logs why `opsd run` did not start, each thing said once: a rejected job file as one error
/// event per located error (as `opsd check` and a reload list them), then how many there were;
/// any other failure as one error event.
fn log_start_failure(e: &anyhow::Error) {
    let Some(ConfigError::Invalid(located)) = e.downcast_ref::<ConfigError>() else {
        tracing::error!("{}", error_text(e));
        return;
    };
    for l in located {
        tracing::error!(file = %shown_path(&l.path), line = l.line, "{l}");
    }
    let n = located.len();
    let errors = if n == 1 { "error" } else { "errors" };
    tracing::error!("not started: {n} {errors} in the job files");
}

/// Turns an error or unexpected answer from the daemon into an error.
fn unexpected(r: Response) -> anyhow::Error {
    match r {
        Response::Error { message } => anyhow::anyhow!("{message}"),
        other => anyhow::anyhow!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Prints a run's last output lines under its one-line summary, as `systemctl status` shows
/// a unit's last log lines, each escaped: the job wrote them.
fn print_output(lines: &[String]) {
    for line in lines {
        println!("  | {}", crate::escape::control(line));
    }
}

/// `: DETAIL` escaped for one line (a run's detail quotes what the job or a file said), or
/// nothing.
fn detail_text(detail: Option<&str>) -> String {
    detail
        .map(|d| format!(": {}", crate::escape::control(d)))
        .unwrap_or_default()
}

/// A path as `opsd` prints it: on one line, with what its name holds that could move the
/// cursor or end the line escaped (a file name is anyone's text).
fn shown_path(path: &Path) -> String {
    crate::escape::control(&path.to_string_lossy()).into_owned()
}

/// Prints `value` as one JSON line with every character that could reach a terminal raw
/// (DEL, C1, line separators, bidi) escaped; serde_json escapes the rest.
fn print_json(value: &serde_json::Value) {
    println!("{}", crate::escape::json(&value.to_string()));
}

/// Prints `opsd status NAME`: one job, its last run and the last lines that run printed.
fn print_job_status(j: &JobStatus) {
    use crate::escape::control;
    println!("{} ({})", control(&j.name), control(&j.job_type));
    match (&j.schedule, &j.timezone) {
        (Some(s), Some(z)) => println!("  schedule: {} ({})", control(s), control(z)),
        _ => println!("  schedule: continuous"),
    }
    match j.next {
        Some(t) => println!("  next:     {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
        None if !j.enabled => println!("  next:     disabled"),
        None => println!("  next:     -"),
    }
    if j.running > 0 {
        println!("  running:  yes ({})", j.running);
    }
    if let Some(live) = &j.live {
        print_live(live);
    }
    let Some(l) = &j.last else {
        println!("  last run: none yet");
        return;
    };
    println!(
        "  last run: {} {} ({} ms, run {}){}",
        l.started.format("%Y-%m-%d %H:%M:%S UTC"),
        l.outcome,
        l.duration_ms,
        control(&l.run_id),
        detail_text(l.detail.as_deref())
    );
    if l.output.is_empty() {
        println!("  (no output)");
    } else {
        print_output(&l.output);
    }
}

/// Prints what the run going now published about itself, one labelled value a line. The
/// time is when a figure last changed (a job republishes only then), not when it last looked:
/// a quiet watch shows an old time while it keeps polling.
fn print_live(live: &crate::jobs::LiveStatus) {
    println!(
        "  now:      figures last changed {}",
        live.updated.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let width = live
        .fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    for (label, value) in &live.fields {
        let label = format!("{}:", crate::escape::control(label));
        println!("    {label:<width$} {}", crate::escape::control(value));
    }
}

/// Prints the job table of `opsd status`.
fn print_status(config: &str, jobs: &[JobStatus]) {
    println!(
        "{}: {} job(s)\n",
        crate::escape::control(config),
        jobs.len()
    );
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
        "NOW".into(),
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
        let now = j
            .live
            .as_ref()
            .map_or_else(|| "-".to_string(), |l| l.summary.clone());
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
            now,
        ]);
    }
    // Cells hold what jobs.toml and jobs wrote: one line each, and short enough for a table
    // (a 1 MB schedule once made the padding panic).
    for row in &mut rows {
        for cell in row.iter_mut() {
            *cell = table_cell(cell);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
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

/// The longest cell of the status table, in characters.
const CELL_CHARS: usize = 60;

/// `text` as one table cell: control characters escaped, cut to [`CELL_CHARS`] with an ellipsis.
fn table_cell(text: &str) -> String {
    let safe = crate::escape::control(text);
    match safe.char_indices().nth(CELL_CHARS - 1) {
        Some((end, _)) if safe.chars().count() > CELL_CHARS => format!("{}…", &safe[..end]),
        _ => safe.into_owned(),
    }
}

/// Runs `opsd check` on a loaded file: the outside checks first, so that the header can say
/// what the exit code says, then the jobs and what the checks found.
fn check(cfg: &Config, next: usize) -> anyhow::Result<ExitCode> {
    let mut findings = Vec::new();
    let mut texts = Texts::default();
    let preflights = check_preflights(cfg, &mut findings)?;
    let geoip = check_geoip_jobs(cfg, &mut texts, &mut findings)?;
    let env_files = check_env_files(cfg, &mut texts, &mut findings)?;
    let ok = preflights && geoip && env_files;
    let mut warnings = Vec::new();
    check_hidden_paths(cfg, &Sandbox::shipped(), &mut texts, &mut warnings);
    check_hidden_aws_files(cfg, &Sandbox::shipped(), &mut warnings);
    print_check(cfg, next, ok);
    for line in findings {
        println!("{line}");
    }
    if !warnings.is_empty() {
        println!();
        for line in &warnings {
            println!("{line}");
        }
        println!(
            "\n{} warning(s) about what the daemon cannot see; warnings do not change the exit \
             code ({})",
            warnings.len(),
            if ok { "0" } else { "1, for the errors above" }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs each job's preflight (EC2 credentials) and adds what it found to `out`; false if any
/// failed.
fn check_preflights(cfg: &Config, out: &mut Vec<String>) -> anyhow::Result<bool> {
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
            out.push(String::new());
        }
        out.push(format!("{}: {line}", job.name));
    }
    Ok(ok)
}

/// Says for each geoip job whether its license key and output directory are there, with the
/// file, line and key of a problem; false when one would fail every run of an enabled job.
fn check_geoip_jobs(
    cfg: &Config,
    texts: &mut Texts,
    out: &mut Vec<String>,
) -> anyhow::Result<bool> {
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
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let mut ok = true;
    out.push(String::new());
    for (job, spec) in specs {
        for f in preflight(spec, credentials.as_deref()) {
            let (label, suffix) = match f.severity {
                Severity::Ok => {
                    out.push(format!("{}: {}: {}", job.name, f.key, f.message));
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
            let at = texts.locate(job, f.span)?;
            out.push(format!("{at}: `{key}`: {label}: {}{suffix}", f.message));
        }
    }
    Ok(ok)
}

/// Reads each command job's `env_file` as a run would: OK with its number of variables, or
/// the problem (never a value) at the job's `env_file` key; false when one would fail every
/// run of an enabled job. A file check may not read (not root) is only a warning.
fn check_env_files(cfg: &Config, texts: &mut Texts, out: &mut Vec<String>) -> anyhow::Result<bool> {
    use crate::process::env::{read_env_file, EnvFileError};
    let mut ok = true;
    let mut first = true;
    for job in cfg.jobs.values() {
        let crate::jobs::JobType::Command(spec) = &job.job else {
            continue;
        };
        let (Some(key), Some((path, optional))) = (&spec.env_file, spec.env_file_path()) else {
            continue;
        };
        if std::mem::take(&mut first) {
            out.push(String::new());
        }
        let e = match read_env_file(&path, optional) {
            Ok(vars) if vars.is_empty() && optional && !path.exists() => {
                out.push(format!(
                    "{}: env_file: {} does not exist (optional: runs get none)",
                    job.name,
                    shown_path(&path)
                ));
                continue;
            }
            Ok(vars) => {
                out.push(format!(
                    "{}: env_file: OK ({}, {} variable(s))",
                    job.name,
                    shown_path(&path),
                    vars.len()
                ));
                continue;
            }
            Err(e) => e,
        };
        let denied = matches!(&e, EnvFileError::Read { source, .. }
            if source.kind() == ErrorKind::PermissionDenied);
        let (label, suffix) = if denied {
            ("warning", " (the daemon reads it as root)")
        } else if !job.enabled {
            ("warning", " (the job is disabled)")
        } else {
            ok = false;
            ("error", "; every run fails until it is fixed")
        };
        let at = texts.locate(job, Some(key.span()))?;
        out.push(format!(
            "{at}: `jobs.{}.env_file`: {label}: {e}{suffix}",
            job.name
        ));
    }
    Ok(ok)
}

/// The text of each job file `opsd check` looked into, read once, to turn spans into lines.
#[derive(Debug, Default)]
struct Texts(std::collections::BTreeMap<PathBuf, String>);

impl Texts {
    /// `FILE:LINE:COL` of `span` in the file `job` is defined in; the job's name when there
    /// is no span.
    fn locate(
        &mut self,
        job: &config::JobConfig,
        span: Option<std::ops::Range<usize>>,
    ) -> anyhow::Result<String> {
        let Some(span) = span else {
            return Ok(job.name.clone());
        };
        let text = match self.0.entry(job.file.to_path_buf()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let text = std::fs::read_to_string(&job.file).with_context(|| {
                    format!("{}: cannot read configuration", shown_path(&job.file))
                })?;
                e.insert(text)
            }
        };
        let (line, column) = config::line_col(text, span.start);
        Ok(format!("{}:{line}:{column}", shown_path(&job.file)))
    }
}

/// Warns, for each path a job needs ([`config::needs::files_needed`]) and each alert program,
/// when the shipped unit hides it from the daemon: check sees it, the daemon will not.
fn check_hidden_paths(cfg: &Config, sandbox: &Sandbox, texts: &mut Texts, out: &mut Vec<String>) {
    for job in cfg.jobs.values() {
        for needed in config::needs::files_needed(job) {
            let problem = match sandbox.hiding(&needed.path) {
                Some(hiding) => format!(
                    "{} is hidden from the daemon by {} in {}; {}",
                    needed.written,
                    hiding.setting,
                    config::sandbox::UNIT_NAME,
                    hiding.advice
                ),
                None => match needed
                    .written_to
                    .then(|| sandbox.read_only(&needed.path))
                    .flatten()
                {
                    Some(why) => format!("{}: {why}", needed.written),
                    None => continue,
                },
            };
            // The file was read a moment ago; if it went, the job's name still says which.
            let at = texts
                .locate(job, needed.span.clone())
                .unwrap_or_else(|_| job.name.clone());
            out.push(format!(
                "{at}: `jobs.{}.{}`: warning: {problem}",
                job.name, needed.key
            ));
        }
    }
    for sink in cfg.alerts.values() {
        let config::SinkKind::Command(c) = &sink.kind else {
            continue;
        };
        let program = match &c.command {
            crate::jobs::command::CommandLine::Argv(argv) => argv.first().map(String::as_str),
            crate::jobs::command::CommandLine::Shell(line) => line.split_whitespace().next(),
        };
        let Some(program) = program.map(Path::new).filter(|p| p.is_absolute()) else {
            continue;
        };
        if let Some(hiding) = sandbox.hiding(program) {
            out.push(format!(
                "{}: `alerts.{}.command`: warning: {} is hidden from the daemon by {} in {}; {}",
                shown_path(&cfg.path),
                sink.name,
                shown_path(program),
                hiding.setting,
                config::sandbox::UNIT_NAME,
                hiding.advice
            ));
        }
    }
}

/// Warns, for each ec2 job, when the AWS shared credentials or config file the SDK reads for
/// the user running check (`$AWS_SHARED_CREDENTIALS_FILE`, `$AWS_CONFIG_FILE`, else
/// `~/.aws/credentials` and `~/.aws/config`) is one the unit hides: `credentials: OK` above
/// then holds for check and not for the daemon.
fn check_hidden_aws_files(cfg: &Config, sandbox: &Sandbox, out: &mut Vec<String>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(named) => Some((PathBuf::from(named), format!("${var}"))),
        None => home
            .as_ref()
            .map(|h| h.join(".aws").join(default))
            .filter(|p| p.exists())
            .map(|p| (p, "the default".to_string())),
    };
    let files: Vec<(PathBuf, String)> = [
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        file("AWS_CONFIG_FILE", "config"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for job in cfg.jobs.values() {
        if !matches!(job.job, crate::jobs::JobType::Ec2(_)) {
            continue;
        }
        for (path, why) in &files {
            let Some(hiding) = sandbox.hiding(path) else {
                continue;
            };
            out.push(format!(
                "{}: `jobs.{}`: warning: the AWS file the credential chain reads here ({why}), {}, is hidden \
                 from the daemon by {} in {}, so what check found is not what the daemon will \
                 find; give the daemon its own credentials: an EnvironmentFile= drop-in (0600 \
                 root), LoadCredential= with AWS_SHARED_CREDENTIALS_FILE under \
                 $CREDENTIALS_DIRECTORY, or an instance profile (docs/ec2.md)",
                shown_path(&job.file),
                job.name,
                shown_path(path),
                hiding.setting,
                config::sandbox::UNIT_NAME,
            ));
        }
    }
}

/// Prints the header (`OK` only when `ok`, as the exit code), then each job with its schedule,
/// zone and next fire times (local and UTC).
fn print_check(cfg: &Config, next: usize, ok: bool) {
    let path = shown_path(&cfg.path);
    match (ok, cfg.jobs.len()) {
        (true, 0) => {
            println!("{path}: OK, no jobs: nothing will run until a [jobs.NAME] section is added")
        }
        (true, n) => println!("{path}: OK, {n} job(s)"),
        (false, n) => println!("{path}: {n} job(s), FAILED: the problems are listed below"),
    }
    for file in &cfg.files {
        let n = cfg.jobs.values().filter(|j| *j.file == **file).count();
        println!("  read {} ({n} job(s))", shown_path(file));
    }
    for (file, why) in &cfg.skipped {
        println!("  skipped {} ({why})", file.display());
    }
    if cfg.files.len() == 1 {
        println!(
            "  (no {}/*.toml files)",
            shown_path(&config::drop_in_dir(&cfg.path))
        );
    }
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
                    "\n{} [{}]{state}: \"{}\" in {}",
                    job.name,
                    job.job.type_name(),
                    table_cell(&s.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_or_multi_line_cell_is_cut_and_kept_on_one_line() {
        let huge = "0 0 3 1 1 * ".to_string() + &"2030,".repeat(300_000);
        let cell = table_cell(&huge);
        assert_eq!(cell.chars().count(), CELL_CHARS);
        assert!(cell.ends_with('…'), "{cell}");
        assert_eq!(table_cell("a\nb"), "a\\nb");
        assert_eq!(table_cell("@every 5s"), "@every 5s");
    }

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
            (&["completions"], &[]),
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
    fn apache_doctor_refuses_config_and_names_apache_config() {
        let cli = Cli::try_parse_from(["opsd", "apache", "doctor", "--config", "/etc/x.conf"])
            .expect("parsed");
        let Command::Apache {
            command: ApacheCommand::Doctor(args),
        } = cli.command
        else {
            panic!("not the doctor: {cli:?}");
        };
        let err = apache_doctor(args).expect_err("--config must be refused");
        assert!(
            err.to_string().contains("--apache-config /etc/x.conf"),
            "{err}"
        );
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
