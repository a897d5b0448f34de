//! A command sink's delivery: one run of its program per attempt, the alert as JSON on its
//! stdin, in the same clean environment as a job's run, in its own process group (and cgroup
//! when opsd has one), everything it started stopped when the attempt ends.

use super::CommandSink;
use crate::alert::record::Alert;
use crate::alert::sink::attempt::{quote, Attempt, AttemptError, Deliver};
use crate::process::env::{self, RunUser};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

impl Deliver for CommandSink {
    fn attempt<'a>(&'a self, alert: &'a Alert) -> Attempt<'a> {
        Box::pin(run_program(self, alert))
    }
}

async fn run_program(sink: &CommandSink, alert: &Alert) -> Result<(), AttemptError> {
    let (program, args) = sink
        .command
        .program_and_args()
        .ok_or_else(|| AttemptError::Permanent("the command is empty".into()))?;
    // The marker its processes carry, so what leaves its process group is found and stopped.
    let marker = format!("alert-{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
    // The same clean environment as a job's run (the daemon's `TZ`, as alerts have no zone of
    // their own): an alert program must not see the daemon's secrets unless it asks by name.
    let timezone = std::env::var("TZ").unwrap_or_default();
    let vars = env::base(&RunUser::current(), &timezone, &sink.pass_env, |name| {
        std::env::var_os(name)
    });
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(vars)
        .env("OPSD_RUN_ID", &marker);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // Nothing the program starts can leave its cgroup (when opsd has a delegated one).
    let cgroup = crate::process::cgroup::for_run(&marker).unwrap_or_else(|e| {
        tracing::warn!("cannot create a cgroup for alert program {program} ({e}); what it leaves running is found by its OPSD_RUN_ID only");
        None
    });
    if let Some(cg) = &cgroup {
        cg.join_at_exec(&mut cmd);
    }
    let (mut child, _spawned) = crate::process::reaper::spawn(&mut cmd)
        .map_err(|e| AttemptError::Retry(format!("cannot start {program}: {e}")))?;
    let pid = child.id();
    // Kills the program's process group however the attempt ends, even when the dispatcher
    // abandons it at shutdown (the attempt is dropped then).
    let group = GroupGuard(pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw));
    let mut json = alert.to_json().into_bytes();
    json.push(b'\n');
    let stdin = child.stdin.take();
    let writer = async move {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input is judged by its exit status.
            let _ = stdin.write_all(&json).await;
        }
    };
    let run = async { tokio::join!(writer, child.wait_with_output()).1 };
    let result = tokio::time::timeout(sink.timeout, run).await;
    // Whatever the program left in its group or outside it ends with the attempt.
    drop(group);
    crate::process::reaper::stop_run(&marker, Duration::ZERO).await;
    if let Some(cg) = cgroup {
        let left = cg.end(Duration::ZERO).await;
        if left > 0 {
            tracing::warn!(
                processes = left,
                "alert program {program}: stopped {left} processes it left behind in its cgroup"
            );
        }
    }
    match result {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(AttemptError::Retry(format!(
            "{program} exited with {}: {}",
            out.status,
            quote(&out.stderr)
        ))),
        Ok(Err(e)) => Err(AttemptError::Retry(format!("{program}: {e}"))),
        Err(_) => Err(AttemptError::Retry(format!(
            "{program} did not finish within {}",
            humantime::format_duration(sink.timeout)
        ))),
    }
}

/// SIGKILLs a command sink's process group when dropped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // The group may be gone already; nothing more to do then.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}
