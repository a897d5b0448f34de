//! Asking Apache: finding its control program or binary and running `-V`, `-M` and
//! `-t -D DUMP_INCLUDES` on it (each through [`crate::process::call`]: bounded in time and
//! output, a clean environment but for `APACHE_*`; Debian's envvars sourced when `apache2` is
//! run directly), then reading the configuration files it lists. The answers are kept as text;
//! [`super::parse`] reads them. Nothing here judges what Apache said.

use crate::process::call::CallError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Control programs and binaries tried, in order, when `--bin` is not given.
pub const DEFAULT_BINS: &[&str] = &["apachectl", "apache2ctl", "httpd", "apache2"];
/// Directories searched besides `$PATH` (sbin is often missing from a user's path).
const EXTRA_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/apache2/bin",
    "/sbin",
];
/// Debian's environment file for running `apache2` directly.
const DEBIAN_ENVVARS: &str = "/etc/apache2/envvars";
/// How long each Apache call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How to call Apache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorOptions {
    /// The control program or binary.
    pub bin: PathBuf,
    /// Arguments put before each of `-V`, `-M`, `-t -D DUMP_INCLUDES` (e.g. `-f CONF`).
    pub args: Vec<String>,
    /// A shell file sourced first (Debian's `/etc/apache2/envvars` when `bin` is `apache2`).
    pub envvars: Option<PathBuf>,
}

impl DoctorOptions {
    /// Options for `bin` (or the first default found) with `args`; on Debian, running the
    /// `apache2` binary directly sources `/etc/apache2/envvars` as `apache2ctl` would.
    pub fn new(bin: Option<PathBuf>, args: Vec<String>) -> Result<Self, DoctorError> {
        let bin = match bin {
            Some(b) => b,
            None => crate::process::call::find_program(DEFAULT_BINS, EXTRA_DIRS)
                .ok_or(DoctorError::NotFound)?,
        };
        let direct_debian_binary = bin.file_name().is_some_and(|n| n == "apache2")
            && std::env::var_os("APACHE_RUN_DIR").is_none();
        let envvars =
            Some(PathBuf::from(DEBIAN_ENVVARS)).filter(|p| direct_debian_binary && p.is_file());
        Ok(DoctorOptions { bin, args, envvars })
    }
}

/// Why the doctor could not examine the server.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// No `--bin` and none of the default programs exists.
    #[error("no Apache program found (tried {} in $PATH and /usr/sbin); give one with --bin", DEFAULT_BINS.join(", "))]
    NotFound,
    /// The program could not be started.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The program.
        bin: String,
        /// The error from the OS.
        source: std::io::Error,
    },
    /// A call did not finish in time.
    #[error("`{call}` did not finish within {}s", CALL_TIMEOUT.as_secs())]
    Timeout {
        /// The command line.
        call: String,
    },
    /// A call failed; Apache's own message is quoted.
    #[error("`{call}` failed ({status}): {message}{hint}")]
    Failed {
        /// The command line.
        call: String,
        /// How it exited.
        status: String,
        /// Apache's stderr (or stdout), trimmed.
        message: String,
        /// What the message means, when it is a known one.
        hint: String,
    },
}

/// What Apache printed for the three calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApacheOutput {
    /// Output of `-V`.
    pub version: String,
    /// Output of `-M`.
    pub modules: String,
    /// Output of `-t -D DUMP_INCLUDES`.
    pub includes: String,
}

/// The configuration files Apache reads, each with its text (`None`: unreadable).
pub type ConfigFiles = Vec<(PathBuf, Option<String>)>;

/// Runs `-V`, `-M` and `-t -D DUMP_INCLUDES` at once; the first failure is the error.
pub async fn ask(opts: &DoctorOptions) -> Result<ApacheOutput, DoctorError> {
    let (version, modules, includes) = tokio::join!(
        call(opts, &["-V"]),
        call(opts, &["-M"]),
        call(opts, &["-t", "-D", "DUMP_INCLUDES"]),
    );
    Ok(ApacheOutput {
        version: version?,
        modules: modules?,
        includes: includes?,
    })
}

/// Reads each of `paths` as text (lossily); a file that cannot be read is kept with `None`.
pub async fn read_files(paths: Vec<PathBuf>) -> ConfigFiles {
    let mut files = Vec::new();
    for path in paths {
        let text = tokio::fs::read(&path)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        files.push((path, text));
    }
    files
}

/// Runs `bin ARGS... FLAGS...` (through the envvars file when there is one) and returns its
/// stdout; a non-zero exit is [`DoctorError::Failed`] with Apache's message and a hint.
async fn call(opts: &DoctorOptions, flags: &[&str]) -> Result<String, DoctorError> {
    let mut argv: Vec<OsString> = vec![opts.bin.clone().into_os_string()];
    argv.extend(opts.args.iter().map(OsString::from));
    argv.extend(flags.iter().map(OsString::from));
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let (program, args): (&Path, Vec<OsString>) = match &opts.envvars {
        Some(env) => {
            let mut args = vec![
                OsString::from("-c"),
                OsString::from(". \"$0\" && exec \"$@\""),
                env.clone().into_os_string(),
            ];
            args.extend(argv.iter().cloned());
            (Path::new("/bin/sh"), args)
        }
        None => (opts.bin.as_path(), argv[1..].to_vec()),
    };
    // A clean environment but for Apache's own variables (`APACHE_CONFDIR`, `APACHE_RUN_DIR`,
    // ... that a caller who did not need envvars sourced has set).
    let apache_env =
        std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("APACHE_")));
    let output = crate::process::call::call(program, args, apache_env, CALL_TIMEOUT)
        .await
        .map_err(|e| match e {
            CallError::Timeout(_) => DoctorError::Timeout {
                call: shown.clone(),
            },
            CallError::Spawn(source) => DoctorError::Spawn {
                bin: opts.bin.display().to_string(),
                source,
            },
        })?;
    let stdout = output.stdout;
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = output.stderr;
    let message = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    Err(DoctorError::Failed {
        call: shown,
        status: output.status.to_string(),
        message: message.to_string(),
        hint: hint_for(message),
    })
}

/// Explains Apache messages the doctor knows.
fn hint_for(message: &str) -> String {
    if message.contains("not compiled to be threadsafe") {
        "\nhint: this PHP module is not thread-safe and refuses the threaded MPM, so Apache cannot \
         start as configured. Use php-fpm with proxy_fcgi under the event MPM (the real fix), or \
         the prefork MPM (then HTTP/2 is off)."
            .to_string()
    } else if message.contains("APACHE_RUN_DIR") || message.contains("${APACHE_") {
        "\nhint: Debian's apache2 needs the variables in /etc/apache2/envvars; use --bin apache2ctl"
            .to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn apache_gets_a_clean_environment() {
        // A stand-in for Apache that prints its environment as its answer to each call.
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("httpd");
        std::fs::write(&bin, "#!/bin/sh\nenv\n").expect("write");
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let opts = DoctorOptions {
            bin,
            args: Vec::new(),
            envvars: None,
        };
        let out = ask(&opts).await.expect("answers");
        let mut names: Vec<&str> = out
            .version
            .lines()
            .filter_map(|l| l.split_once('=').map(|(n, _)| n))
            .filter(|n| !["PWD", "SHLVL", "_"].contains(n) && !n.starts_with("APACHE_"))
            .collect::<Vec<_>>();
        names.sort_unstable();
        assert_eq!(names, ["LC_ALL", "PATH"], "{}", out.version);
    }

    #[test]
    fn threadsafe_refusal_gets_a_hint() {
        let h = hint_for("[php:crit] Apache is running a threaded MPM, but your PHP Module is not compiled to be threadsafe.");
        assert!(h.contains("php-fpm"), "{h}");
        assert_eq!(hint_for("Syntax error on line 3"), "");
    }
}
