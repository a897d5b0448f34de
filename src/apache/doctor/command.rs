//! `opsd apache doctor` as a command: its flags, and a run that prints the report (text or
//! JSON) and turns the verdict into the exit code (0 no recipe, 1 recipe, 2 could not run).

use super::analyse::Diagnosis;
use super::probe::{DoctorError, DoctorOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// `opsd apache doctor` on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The Apache control program or binary (default: the first of apachectl, apache2ctl,
    /// httpd, apache2 found in $PATH or /usr/sbin).
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Print the diagnosis as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Extra arguments for every call, e.g. `-- -f /etc/httpd/conf/other.conf`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

impl Diagnosis {
    /// The exit code of `opsd apache doctor`: 1 when the recipe matches, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.matches_recipe())
    }
}

/// Runs `opsd apache doctor`: prints the report; exit 0 no recipe, 1 recipe, 2 could not run.
pub fn cli(args: DoctorArgs) -> ExitCode {
    let result = DoctorOptions::new(args.bin, args.args).and_then(|opts| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| DoctorError::Spawn {
                bin: "the async runtime".into(),
                source,
            })?
            .block_on(super::diagnose(&opts))
    });
    match result {
        Ok(d) => {
            if args.json {
                match serde_json::to_string_pretty(&d) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("opsd apache doctor: cannot encode the diagnosis: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{d}");
            }
            ExitCode::from(d.exit_code())
        }
        Err(e) => {
            eprintln!("opsd apache doctor: {e}");
            ExitCode::from(2)
        }
    }
}
