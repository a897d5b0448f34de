//! The `command` job type: run a program (argv, no shell) or a `/bin/sh -c` line in its own
//! process group, log its output line by line (keeping its last lines for the run's report),
//! and stop the whole group on cancel.

pub mod check;
mod kind;
mod spawn;
pub mod tail;

use super::{Outcome, RunContext, RunReport};
pub use crate::command_line::CommandLine;
use crate::field::FieldError;
use crate::process::{env, starts};
pub use kind::KIND;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;
use tail::{Stream, Tail};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use toml::Spanned;

/// Longest output line logged as is; longer lines are cut with a note of how much was dropped.
const MAX_LINE: usize = 4096;
/// Bytes first read from a run's stdout or stderr at a time: small, because 1,000 runs at once
/// hold two of these each and most print a line or two.
const READ_FIRST: usize = 256;
/// Bytes read at a time once a stream has filled a whole [`READ_FIRST`] read (a chatty job).
const READ_CHATTY: usize = 8192;
/// How long output may keep arriving after the command exits before its leftovers are stopped.
const DRAIN: Duration = Duration::from_millis(200);
/// How often the run's process group is checked for leftovers while they are being stopped.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// Lines logged per stream per run before the rest is only counted, so a chatty job cannot
/// flood the journal.
const MAX_LINES_PER_RUN: u64 = 10_000;

/// The `type = "command"` keys of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommandSpec {
    /// The program and its arguments, or a shell line.
    pub command: Spanned<CommandLine>,
    /// Extra environment variables for the program, applied after opsd's own ([`env::build`]).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the daemon's environment variables a run may see (none by default).
    #[serde(default)]
    pub pass_env: Vec<Spanned<String>>,
    /// A file of `KEY=VALUE` lines (systemd's `EnvironmentFile=` format) read at each run,
    /// below `env`; a leading `-` means a missing file is no error.
    pub env_file: Option<Spanned<String>>,
    /// The job's time zone name, a run's `TZ`; filled in from the job's `timezone` key.
    #[serde(skip)]
    pub timezone: String,
    /// Directory to run in (default: the daemon's, `/` under systemd).
    pub working_dir: Option<Spanned<PathBuf>>,
    /// Run as this user (only when the daemon runs as root).
    pub user: Option<Spanned<String>>,
    /// Run with this group (only when the daemon runs as root).
    pub group: Option<Spanned<String>>,
}

impl CommandSpec {
    /// Checks what serde cannot: a non-empty command and existing user and group.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        errors.extend(crate::command_line::empty_error(
            &self.command,
            prefix,
            "give a program path (e.g. [\"/usr/bin/true\"]) or a shell line",
        ));
        env::check_pass_env(&self.pass_env, prefix, &mut errors);
        if let Some(file) = &self.env_file {
            if !self.env_file_path().is_some_and(|(p, _)| p.is_absolute()) {
                errors.push(FieldError::new(
                    file.span(),
                    format!("{prefix}.env_file"),
                    "env_file must be an absolute path (\"-/path\" when the file may be missing)",
                ));
            }
        }
        if let Some(dir) = &self.working_dir {
            if !dir.get_ref().is_absolute() {
                errors.push(FieldError::new(
                    dir.span(),
                    format!("{prefix}.working_dir"),
                    "working_dir must be an absolute path",
                ));
            }
        }
        if let Some(user) = &self.user {
            if crate::account::user(user.get_ref()).is_none() {
                errors.push(FieldError::new(
                    user.span(),
                    format!("{prefix}.user"),
                    format!("no such user {:?} on this machine", user.get_ref()),
                ));
            }
        }
        if let Some(group) = &self.group {
            if crate::account::group(group.get_ref()).is_none() {
                errors.push(FieldError::new(
                    group.span(),
                    format!("{prefix}.group"),
                    format!("no such group {:?} on this machine", group.get_ref()),
                ));
            }
        }
        errors
    }

    /// The `env_file` path, and whether it may be missing (a leading `-`, as systemd's).
    pub fn env_file_path(&self) -> Option<(PathBuf, bool)> {
        self.env_file
            .as_ref()
            .map(|f| match f.get_ref().strip_prefix('-') {
                Some(rest) => (PathBuf::from(rest), true),
                None => (PathBuf::from(f.get_ref()), false),
            })
    }

    /// A short human description of what runs, for logs and `opsd check`.
    pub fn describe(&self) -> String {
        match self.command.get_ref() {
            CommandLine::Argv(v) => v.join(" "),
            CommandLine::Shell(s) => format!("sh -c {s:?}"),
        }
    }
}

/// Runs the command once: spawns it, logs its output (and copies it to opsd's own stdout and
/// stderr in the foreground), keeps its last lines in the report, and on cancel stops its whole
/// process group (SIGTERM, then SIGKILL after `kill_grace`).
pub async fn run(spec: &CommandSpec, ctx: &RunContext) -> RunReport {
    // Nothing the run starts can leave its cgroup (when opsd has a delegated one).
    let cgroup = crate::process::cgroup::for_run(&ctx.run_id).unwrap_or_else(|e| {
        tracing::warn!(job = %ctx.job, run_id = %ctx.run_id,
            "{}: cannot create the run's cgroup ({e}); what it leaves running is found by its OPSD_RUN_ID only", ctx.job);
        None
    });
    let mut cmd = match spawn::build(spec, ctx, cgroup.as_ref()).await {
        Ok(c) => c,
        Err(e) => return RunReport::failed(e),
    };
    // Runs due at once start a few at a time, at the pace the machine can start processes.
    let turns = starts::Turns::daemon();
    let turn = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => {
            return RunReport::failed("stopped before its process started".to_string())
        }
        turn = turns.take() => turn,
    };
    let (mut child, _spawned) = match crate::process::reaper::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => return RunReport::failed(format!("cannot start {}: {e}", spec.describe())),
    };
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // Removed (dropped) only once everything the run started is gone.
    let _run_file = pgid.and_then(|p| {
        crate::process::ledger::record(&ctx.state_dir, &ctx.job, &ctx.run_id, p.as_raw())
            .inspect_err(|e| {
                tracing::warn!(job = %ctx.job, run_id = %ctx.run_id,
                    "{}: cannot record the run in {} ({e}); if opsd is killed, its processes will not be stopped at the next start",
                    ctx.job, ctx.state_dir.display());
            })
            .ok()
    });
    let tail = Tail::default();
    let readers: Vec<JoinHandle<()>> = [
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(log_stream(s, ctx.clone(), Stream::Stdout, tail.clone()))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(log_stream(s, ctx.clone(), Stream::Stderr, tail.clone()))),
    ]
    .into_iter()
    .flatten()
    .collect();

    let (status, cancelled) = tokio::select! {
        status = starts::hold_while(turn, child.wait()) => (status, false),
        () = ctx.cancel.cancelled() => {
            if let Some(pgid) = pgid {
                let _ = killpg(pgid, Signal::SIGTERM);
            }
            let status = match tokio::time::timeout(ctx.kill_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    if let Some(pgid) = pgid {
                        let _ = killpg(pgid, Signal::SIGKILL);
                    }
                    child.wait().await
                }
            };
            (status, true)
        }
    };
    if let Some(pgid) = pgid {
        end_group(pgid, readers, ctx, cancelled).await;
    }
    // What left the process group (setsid, a double fork) is found by the run id it carries.
    let grace = if cancelled {
        Duration::ZERO
    } else {
        ctx.kill_grace
    };
    let escaped = crate::process::reaper::stop_run(&ctx.run_id, grace).await;
    if escaped > 0 {
        tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, processes = escaped,
            "{}: stopped {escaped} processes the run left running outside its process group", ctx.job);
    }
    // What is still in the run's cgroup: hidden from /proc, or with its environment cleared.
    if let Some(cg) = cgroup {
        let left = cg.end(grace).await;
        if left > 0 {
            tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, processes = left,
                "{}: stopped {left} processes the run left behind in its cgroup", ctx.job);
        }
    }
    let output = tail.lines();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let mut report = RunReport::failed(format!("lost track of the process: {e}"));
            report.output = output;
            return report;
        }
    };
    let exit_code = status.code();
    let signal = status.signal();
    let outcome = if cancelled {
        Outcome::Killed
    } else if status.success() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    let detail = match (exit_code, signal) {
        (Some(0), _) => None,
        (Some(c), _) => Some(format!("exited with code {c}")),
        (None, Some(s)) => Some(format!("ended by signal {}", signal_name(s))),
        (None, None) => None,
    };
    RunReport {
        outcome,
        exit_code,
        signal,
        detail,
        output,
    }
}

/// Ends what the command left behind once its leader has exited: output still flowing gets
/// [`DRAIN`] to arrive, then anything left in the run's process group is stopped (SIGTERM,
/// SIGKILL after `kill_grace`), like systemd stops a finished oneshot service's leftovers. A
/// background child therefore never outlives its run or holds the run open through its output.
async fn end_group(pgid: Pid, readers: Vec<JoinHandle<()>>, ctx: &RunContext, cancelled: bool) {
    let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
    let output = futures_util::future::join_all(readers);
    tokio::pin!(output);
    let group_alive = || killpg(pgid, None).is_ok();
    let mut drained = false;
    if !cancelled {
        drained = tokio::select! {
            _ = &mut output => true,
            () = tokio::time::sleep(DRAIN) => false,
            () = ctx.cancel.cancelled() => false,
        };
    }
    if group_alive() {
        // A cancelled run's group has had its SIGTERM and kill_grace already.
        if !cancelled {
            tracing::warn!(job = %ctx.job, run_id = %ctx.run_id,
                "{}: the command exited but left processes running in its process group; stopping them", ctx.job);
            let _ = killpg(pgid, Signal::SIGTERM);
            let deadline = tokio::time::Instant::now() + ctx.kill_grace;
            while group_alive() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(GROUP_POLL).await;
            }
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    if !drained && tokio::time::timeout(DRAIN, &mut output).await.is_err() {
        // Only a process that left the group (setsid, daemonized) can still hold the pipes.
        tracing::warn!(job = %ctx.job, run_id = %ctx.run_id,
            "{}: a process outside the run's process group keeps its output open; no longer logging it", ctx.job);
        aborts.iter().for_each(tokio::task::AbortHandle::abort);
    }
}

/// The conventional name of a signal number, e.g. `SIGKILL`.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_string())
}

/// Reads a child's stream to its end, logging each line (stdout at info, stderr at warn) and
/// keeping it in `tail`; in the foreground each chunk is also copied as it is to opsd's own
/// stdout or stderr, so `opsd run-job x > out` captures what the job printed.
async fn log_stream(
    mut reader: impl AsyncRead + Unpin,
    ctx: RunContext,
    stream: Stream,
    tail: Tail,
) {
    let mut buf = vec![0u8; READ_FIRST];
    let mut line: Vec<u8> = Vec::new();
    let mut dropped_in_line = 0usize;
    let mut logged = 0u64;
    let mut suppressed = 0u64;
    // Each complete line is kept for the report and logged (until the per-run limit).
    let mut end_line = |line: &[u8], dropped: usize| {
        tail.push(stream, line);
        emit(&ctx, stream, line, dropped, &mut logged, &mut suppressed);
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let full = n == buf.len();
        if ctx.foreground {
            echo(stream, &buf[..n]);
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                end_line(&line, dropped_in_line);
                line.clear();
                dropped_in_line = 0;
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                dropped_in_line += 1;
            }
        }
        if full && buf.len() < READ_CHATTY {
            buf.resize(READ_CHATTY, 0);
        }
    }
    // A last line without its newline is still a line.
    if !line.is_empty() || dropped_in_line > 0 {
        end_line(&line, dropped_in_line);
    }
    if suppressed > 0 {
        tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, suppressed,
            "{}: {suppressed} more output lines were not logged (limit {MAX_LINES_PER_RUN} per run)", ctx.job);
    }
}

/// Copies a chunk of the job's output to opsd's own stream of the same name. A closed stdout
/// (`opsd run-job x | head`) does not stop the run: the output is still logged.
fn echo(stream: Stream, chunk: &[u8]) {
    let _ = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(chunk).and_then(|()| out.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(chunk),
    };
}

/// Logs one output line, unless the run has logged [`MAX_LINES_PER_RUN`] already.
fn emit(
    ctx: &RunContext,
    stream: Stream,
    line: &[u8],
    dropped: usize,
    logged: &mut u64,
    suppressed: &mut u64,
) {
    if *logged >= MAX_LINES_PER_RUN {
        *suppressed += 1;
        return;
    }
    *logged += 1;
    // Escaped, not blanked: the line keeps what the job wrote and still cannot forge another.
    let mut text = crate::escape::bytes(line);
    if dropped > 0 {
        text.push_str(&format!(" …[{dropped} more bytes]"));
    }
    match stream {
        Stream::Stdout => {
            tracing::info!(job = %ctx.job, run_id = %ctx.run_id, stream = "stdout", "{}: {text}", ctx.job)
        }
        Stream::Stderr => {
            tracing::warn!(job = %ctx.job, run_id = %ctx.run_id, stream = "stderr", "{}: {text}", ctx.job)
        }
    }
}
