//! `opsd geoip ...`: the offline GeoIP tools, which log as `--log-format` says.

use crate::geoip::cli::GeoipCommand;
use crate::logging::{self, LogFormat};
use std::process::ExitCode;

/// Starts the log and runs one `opsd geoip` subcommand.
pub(super) fn run(log_format: LogFormat, command: GeoipCommand) -> anyhow::Result<ExitCode> {
    logging::init(log_format);
    crate::geoip::cli::run(command)
}
