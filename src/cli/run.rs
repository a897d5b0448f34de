//! `opsd run`: the daemon in the foreground, as systemd starts it.

use super::job_file::missing_file_hint;
use super::show::shown_path;
use crate::config::ConfigError;
use crate::daemon;
use crate::logging::{self, LogFormat};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the daemon until it stops; a failure to start is logged (not returned) and exits 2.
pub(super) fn run(
    config: PathBuf,
    state_dir: Option<PathBuf>,
    log_format: LogFormat,
    socket: PathBuf,
) -> anyhow::Result<ExitCode> {
    logging::init(log_format);
    let opts = daemon::Options {
        config,
        state_dir: super::state_dir(state_dir),
        socket,
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

/// Logs why `opsd run` did not start, each thing said once: a rejected job file as one error
/// event per located error (as `opsd check` and a reload list them), then how many there were;
/// any other failure as one error event.
fn log_start_failure(e: &anyhow::Error) {
    let Some(ConfigError::Invalid(located)) = e.downcast_ref::<ConfigError>() else {
        tracing::error!("{}", super::error_text(e));
        return;
    };
    for l in located {
        tracing::error!(file = %shown_path(&l.path), line = l.line, "{l}");
    }
    let n = located.len();
    let errors = if n == 1 { "error" } else { "errors" };
    tracing::error!("not started: {n} {errors} in the job files");
}
