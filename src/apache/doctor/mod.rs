//! `opsd apache doctor`: asks Apache itself (`-V`, `-M`, `-t -D DUMP_INCLUDES`) what it runs and
//! checks for the known child-segfault recipe of 2.4.27+: a threaded MPM (worker or event), a
//! `php*_module`, `http2_module` + `ssl_module`, `Protocols ... h2` and no `H2MaxWorkers`
//! stopgap (a value of at most [`STOPGAP_MAX_WORKERS`]; a higher one still runs PHP in many
//! HTTP/2 threads at once and is reported as found but no stopgap). A server with the recipe
//! loses children to segfaults under HTTP/2 load, which only error_log shows; the doctor says
//! so before (on the command line) and after (the [`Diagnosis`] is what a child-crash alert
//! quotes, run once at an `apache_log` job's start).
//!
//! # Layout
//! One step per file, each using only the ones before it (the probe stands apart):
//! - [`probe`]: finds the Apache program and runs the three calls, reads the listed files;
//! - [`parse`]: turns that text into a typed [`Setup`] (version, MPM, modules, directives);
//! - [`analyse`]: judges a [`Setup`] ingredient by ingredient into a [`Diagnosis`];
//! - [`report`]: renders a [`Diagnosis`] (the text report, the one-line summary, crash advice);
//! - [`command`]: `opsd apache doctor`'s flags, output and exit code.
//!
//! This file joins them: [`collect`] (probe + the include list), [`analyze`] (parse + analyse)
//! and [`diagnose`] (both).

pub mod analyse;
pub mod command;
pub mod parse;
pub mod probe;
pub mod report;

pub use analyse::{Check, Diagnosis, Presence, Verdict, FIRST_AFFECTED, STOPGAP_MAX_WORKERS};
pub use command::{cli, DoctorArgs};
pub use parse::{parse_includes, parse_modules, Location, Setup};
pub use probe::{ApacheOutput, ConfigFiles, DoctorError, DoctorOptions, DEFAULT_BINS};

/// Runs the three calls and reads the configuration files; see [`analyze`].
pub async fn diagnose(opts: &DoctorOptions) -> Result<Diagnosis, DoctorError> {
    let (out, files) = collect(opts).await?;
    Ok(analyze(&out, &files))
}

/// Runs `-V`, `-M` and `-t -D DUMP_INCLUDES`, then reads every listed configuration file.
pub async fn collect(opts: &DoctorOptions) -> Result<(ApacheOutput, ConfigFiles), DoctorError> {
    let out = probe::ask(opts).await?;
    let files = probe::read_files(parse_includes(&out.includes)).await;
    Ok((out, files))
}

/// Judges Apache's output and the configuration files (`None` text: unreadable).
pub fn analyze(out: &ApacheOutput, files: &[(std::path::PathBuf, Option<String>)]) -> Diagnosis {
    analyse::judge(parse::describe(&out.version, &out.modules, files))
}

#[cfg(test)]
mod tests;
