//! `opsd trigger` and `opsd reload`: asking the running daemon, over its control socket.

use super::show::{detail_text, print_output};
use crate::control::{client, Request, Response};
use crate::scheduler::TriggerReply;
use std::path::Path;
use std::process::ExitCode;

/// Asks the daemon to run job `name` now and prints the outcome; fails when the run did.
pub(super) fn trigger(name: &str, socket: &Path) -> anyhow::Result<ExitCode> {
    match client::call(
        socket,
        &Request::Trigger {
            job: name.to_string(),
        },
    )? {
        Response::Triggered {
            reply: TriggerReply::Ran(run),
        } => {
            println!(
                "{}: {} ({} ms, run {}){}",
                crate::escape::control(name),
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
                crate::escape::control(name),
                crate::escape::control(&why)
            );
            Ok(ExitCode::FAILURE)
        }
        other => Err(unexpected(other)),
    }
}

/// Asks the daemon to re-read its job file and prints what changed.
pub(super) fn reload(socket: &Path) -> anyhow::Result<ExitCode> {
    match client::call(socket, &Request::Reload)? {
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
    }
}

/// Turns an error or unexpected answer from the daemon into an error.
pub(super) fn unexpected(r: Response) -> anyhow::Error {
    match r {
        Response::Error { message } => anyhow::anyhow!("{message}"),
        other => anyhow::anyhow!("unexpected answer from the daemon: {other:?}"),
    }
}
