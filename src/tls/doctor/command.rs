//! `opsd tls doctor` as a command: its flags, and a run that prints the report (text or
//! JSON) and turns the verdict into the exit code (0 as recommended, 1 something to change,
//! 2 could not examine).

use super::{ConfigPath, DoctorOptions, APACHE_CONF, NGINX_CONF};
use crate::tls::Trust;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `opsd tls doctor` on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// nginx's main configuration (default: /etc/nginx/nginx.conf when it exists). Naming
    /// only one of --nginx-conf and --apache-conf examines only that server.
    #[arg(long, value_name = "PATH", alias = "nginx-config")]
    pub nginx_conf: Option<PathBuf>,
    /// Apache's main configuration (default: /etc/apache2/apache2.conf when it exists;
    /// `--apache-config`, as `opsd apache doctor` spells it, works too).
    #[arg(long, value_name = "PATH", alias = "apache-config")]
    pub apache_conf: Option<PathBuf>,
    /// A PEM file of certificates the probes trust besides the system store (a company CA).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// How long each listener's probe may take (longer than zero, at most 5m, as the tls
    /// job's `probe_timeout`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_probe_timeout)]
    pub probe_timeout: Duration,
    /// Print the examination as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl DoctorArgs {
    /// The configurations to examine: the ones named, else both defaults (each skipped when
    /// absent).
    fn configs(&self) -> (Option<ConfigPath>, Option<ConfigPath>) {
        let named = |p: &Option<PathBuf>| {
            p.as_ref().map(|path| ConfigPath {
                path: path.clone(),
                required: true,
            })
        };
        if self.nginx_conf.is_some() || self.apache_conf.is_some() {
            return (named(&self.nginx_conf), named(&self.apache_conf));
        }
        let default = |p: &str| {
            Some(ConfigPath {
                path: PathBuf::from(p),
                required: false,
            })
        };
        (default(NGINX_CONF), default(APACHE_CONF))
    }
}

/// Parses `--probe-timeout`: a duration longer than zero and at most the tls job's
/// `probe_timeout`, [`crate::tls::MAX_PROBE_TIMEOUT`]; clap names the flag in the error.
pub fn parse_probe_timeout(text: &str) -> Result<Duration, String> {
    let max = crate::tls::MAX_PROBE_TIMEOUT;
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() || d > max {
        return Err(format!(
            "must be longer than zero and at most {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Runs `opsd tls doctor`: prints the report; exit 0 as recommended, 1 something to change,
/// 2 could not examine.
pub fn cli(args: DoctorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("opsd tls doctor: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let trust = match &args.ca_file {
        Some(path) => match Trust::with_ca_file(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("opsd tls doctor: {e}");
                return ExitCode::from(2);
            }
        },
        None => Trust::system(),
    };
    let (nginx, apache) = args.configs();
    let opts = DoctorOptions {
        nginx,
        apache,
        trust,
        timeout: args.probe_timeout,
    };
    let exam = runtime.block_on(super::examine(&opts));
    if args.json {
        match exam.json() {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("opsd tls doctor: cannot encode the examination: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{exam}");
    }
    ExitCode::from(exam.outcome().code())
}
