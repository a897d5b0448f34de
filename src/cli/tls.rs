//! `opsd tls doctor`: the TLS commands that examine the local machine rather than run a job.

use clap::Subcommand;
use std::process::ExitCode;

/// `opsd tls ...`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Examine the local nginx and Apache: their OpenSSL, whether TLS 1.3 can be on and is
    /// configured on, every TLS site's protocols with the directive to write, then probe each
    /// local listener; exit 0 as recommended, 1 something to change, 2 could not examine.
    Doctor(crate::tls::doctor::DoctorArgs),
}

/// Runs one `opsd tls` subcommand.
pub(super) fn run(command: TlsCommand) -> ExitCode {
    match command {
        TlsCommand::Doctor(args) => crate::tls::doctor::cli(args),
    }
}
