//! `opsd geoip …`: the offline commands of the GeoIP module.

use super::guard::{BuildGuard, Stop};
use super::{build_guarded, install, stop, GeoipError};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The `opsd geoip` subcommands.
#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Build legacy GeoIP .dat files from GeoLite2 CSV zips, offline.
    Build {
        /// A GeoLite2-{Country,ASN,City}-CSV_YYYYMMDD.zip (repeat for several editions).
        #[arg(long = "input", required = true, value_name = "ZIP")]
        inputs: Vec<PathBuf>,
        /// An existing directory to install GeoIP.dat, GeoIPv6.dat, GeoIPASNum.dat, … into.
        #[arg(long, value_name = "DIR")]
        output_dir: PathBuf,
    },
}

/// Runs one `opsd geoip` subcommand.
pub fn run(cmd: GeoipCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GeoipCommand::Build { inputs, output_dir } => {
            install::check_output_dir(&output_dir).context("--output-dir")?;
            let guard = BuildGuard::default();
            let received = stop::on_signal_set(guard.stop.clone())
                .context("cannot set up the handling of SIGTERM")?;
            let start = Instant::now();
            let report = match build_guarded(&inputs, &output_dir, &guard) {
                Ok(report) => report,
                Err(GeoipError::Stopped(Stop::Signal)) => {
                    let signal = received.signal();
                    eprintln!(
                        "opsd: GeoIP build stopped by {}; its scratch directory is removed and \
                         nothing was installed",
                        signal.map_or("a signal", |s| s.as_str())
                    );
                    return Ok(ExitCode::from(128 + signal.map_or(15, |s| s as u8)));
                }
                Err(e) => return Err(anyhow::Error::new(e).context("GeoIP build failed")),
            };
            for b in &report.files {
                let date = if b.date.is_empty() {
                    "undated"
                } else {
                    &b.date
                };
                let verb = if report.install.unchanged.iter().any(|n| n == b.file_name) {
                    "unchanged"
                } else {
                    "wrote"
                };
                println!(
                    "{verb} {}: {} {date}, {} networks, {} bytes",
                    output_dir.join(b.file_name).display(),
                    b.edition,
                    b.networks,
                    b.size
                );
            }
            println!(
                "{} file(s) in {:.2} s ({} changed)",
                report.files.len(),
                start.elapsed().as_secs_f64(),
                report.install.changed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
