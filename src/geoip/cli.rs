//! `opsd geoip …`: the offline commands of the GeoIP module.

use super::build;
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
        /// Where to write GeoIP.dat, GeoIPv6.dat, GeoIPASNum.dat, ….
        #[arg(long, value_name = "DIR")]
        output_dir: PathBuf,
    },
}

/// Runs one `opsd geoip` subcommand.
pub fn run(cmd: GeoipCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GeoipCommand::Build { inputs, output_dir } => {
            if !output_dir.is_dir() {
                anyhow::bail!("--output-dir {}: not a directory", output_dir.display());
            }
            let start = Instant::now();
            let built = build(&inputs, &output_dir).context("GeoIP build failed")?;
            for b in &built {
                println!(
                    "wrote {}: {} {}, {} networks, {} bytes",
                    output_dir.join(b.file_name).display(),
                    b.edition,
                    if b.date.is_empty() {
                        "undated"
                    } else {
                        &b.date
                    },
                    b.networks,
                    b.size
                );
            }
            println!(
                "{} file(s) in {:.2} s",
                built.len(),
                start.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
