//! `opsd apache doctor`: asks Apache itself (`-V`, `-M`, `-t -D DUMP_INCLUDES`) what it runs and
//! checks for the known child-segfault recipe of 2.4.27+: a threaded MPM (worker or event), a
//! `php*_module`, `http2_module` + `ssl_module`, `Protocols ... h2` and no `H2MaxWorkers`
//! stopgap (a value of at most [`STOPGAP_MAX_WORKERS`]; a higher one still runs PHP in many
//! HTTP/2 threads at once and is reported as found but no stopgap).
//! The [`Diagnosis`] is also what a child-crash alert quotes.

use serde::Serialize;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::process::Command;

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
/// The first version with the crash recipe (mod_http2 stopped working under prefork).
pub const FIRST_AFFECTED: (u32, u32, u32) = (2, 4, 27);
/// The highest `H2MaxWorkers` that is the stopgap: one HTTP/2 worker thread runs PHP at a time.
pub const STOPGAP_MAX_WORKERS: u32 = 1;

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
            None => find_default_bin().ok_or(DoctorError::NotFound)?,
        };
        let direct_debian_binary = bin.file_name().is_some_and(|n| n == "apache2")
            && std::env::var_os("APACHE_RUN_DIR").is_none();
        let envvars =
            Some(PathBuf::from(DEBIAN_ENVVARS)).filter(|p| direct_debian_binary && p.is_file());
        Ok(DoctorOptions { bin, args, envvars })
    }
}

fn find_default_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    DEFAULT_BINS
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
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

/// Whether one ingredient of the recipe is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// The ingredient is there.
    Yes,
    /// It is not.
    No,
    /// Apache's output did not say.
    Unknown,
}

/// One ingredient of the recipe and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked, in words.
    pub ingredient: &'static str,
    /// Whether it is present.
    pub present: Presence,
    /// What was found (a version, a module, a file:line).
    pub found: String,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every ingredient is there: expect child segfaults under HTTP/2 load.
    Recipe,
    /// Every ingredient but `H2MaxWorkers` is there: the stopgap is in place.
    Mitigated,
    /// At least one ingredient is missing.
    NoRecipe,
}

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The directive as written.
    pub text: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

/// What the doctor found, ingredient by ingredient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// `Server version:` from `-V`, e.g. `Apache/2.4.71 (Debian)`.
    pub server_version: Option<String>,
    /// The numeric version.
    pub version: Option<(u32, u32, u32)>,
    /// The MPM (`event`, `worker`, `prefork`), from `-V` or the module list.
    pub mpm: Option<String>,
    /// Every loaded module from `-M`.
    pub modules: Vec<String>,
    /// The configuration files Apache read (`DUMP_INCLUDES`).
    pub files: Vec<PathBuf>,
    /// Files listed but not readable by the doctor (their directives are unknown).
    pub unreadable: Vec<PathBuf>,
    /// Each `Protocols` directive that enables `h2`.
    pub protocols_h2: Vec<Location>,
    /// Each `H2MaxWorkers` directive.
    pub h2_max_workers: Vec<Location>,
    /// The recipe's ingredients in order.
    pub checks: Vec<Check>,
    /// The verdict.
    pub verdict: Verdict,
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

/// Runs the three calls and reads the configuration files; see [`analyze`].
pub async fn diagnose(opts: &DoctorOptions) -> Result<Diagnosis, DoctorError> {
    let (out, files) = collect(opts).await?;
    Ok(analyze(&out, &files))
}

/// The configuration files Apache reads, each with its text (`None`: unreadable).
pub type ConfigFiles = Vec<(PathBuf, Option<String>)>;

/// Runs `-V`, `-M` and `-t -D DUMP_INCLUDES`, then reads every listed configuration file.
pub async fn collect(opts: &DoctorOptions) -> Result<(ApacheOutput, ConfigFiles), DoctorError> {
    let (version, modules, includes) = tokio::join!(
        call(opts, &["-V"]),
        call(opts, &["-M"]),
        call(opts, &["-t", "-D", "DUMP_INCLUDES"]),
    );
    let out = ApacheOutput {
        version: version?,
        modules: modules?,
        includes: includes?,
    };
    let mut files = Vec::new();
    for path in parse_includes(&out.includes) {
        let text = tokio::fs::read(&path)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        files.push((path, text));
    }
    Ok((out, files))
}

async fn call(opts: &DoctorOptions, flags: &[&str]) -> Result<String, DoctorError> {
    let mut argv: Vec<OsString> = vec![opts.bin.clone().into_os_string()];
    argv.extend(opts.args.iter().map(OsString::from));
    argv.extend(flags.iter().map(OsString::from));
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = match &opts.envvars {
        Some(env) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(". \"$0\" && exec \"$@\"")
                .arg(env)
                .args(&argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // Spawned through the reaper's registry, so the daemon's reaper leaves it to tokio.
    let output = async {
        let (child, _spawned) = crate::process::reaper::spawn(&mut cmd)?;
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(CALL_TIMEOUT, output)
        .await
        .map_err(|_| DoctorError::Timeout {
            call: shown.clone(),
        })?
        .map_err(|source| DoctorError::Spawn {
            bin: opts.bin.display().to_string(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
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

/// Parses the file list printed by `-t -D DUMP_INCLUDES`.
pub fn parse_includes(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('(')?;
            let (tag, path) = rest.split_once(')')?;
            (tag == "*" || tag.chars().all(|c| c.is_ascii_digit()))
                .then(|| PathBuf::from(path.trim()))
        })
        .filter(|p| p.is_absolute())
        .collect()
}

/// Parses `Server version: Apache/2.4.71 (Debian)` into the text and the numbers.
fn parse_version(v: &str) -> (Option<String>, Option<(u32, u32, u32)>) {
    let Some(line) = v
        .lines()
        .find_map(|l| l.trim().strip_prefix("Server version:"))
    else {
        return (None, None);
    };
    let text = line.trim().to_string();
    let numbers = text
        .split_whitespace()
        .next()
        .and_then(|t| t.split_once('/'))
        .and_then(|(_, n)| {
            let mut parts = n.split('.').map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse::<u32>()
                    .ok()
            });
            Some((
                parts.next()??,
                parts.next()??,
                parts.next().flatten().unwrap_or(0),
            ))
        });
    (Some(text), numbers)
}

/// Reads the MPM from `Server MPM:` in `-V`, else from an `mpm_*_module` in the module list.
fn parse_mpm(v: &str, modules: &[String]) -> Option<String> {
    v.lines()
        .find_map(|l| l.trim().strip_prefix("Server MPM:"))
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .or_else(|| {
            modules.iter().find_map(|m| {
                m.strip_prefix("mpm_")
                    .and_then(|r| r.strip_suffix("_module"))
                    .map(str::to_string)
            })
        })
}

/// Parses `-M`: ` name_module (shared)` lines.
pub fn parse_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let kind = words.next()?;
            (name.ends_with("_module") && kind.starts_with('(')).then(|| name.to_string())
        })
        .collect()
}

fn is_php_module(name: &str) -> bool {
    name.strip_prefix("php")
        .and_then(|r| r.strip_suffix("_module"))
        .is_some_and(|mid| mid.chars().all(|c| c.is_ascii_digit()))
}

/// The directives of one file that matter, with continuation lines joined and comments dropped.
fn scan_directives(file: &Path, text: &str, h2: &mut Vec<Location>, max: &mut Vec<Location>) {
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(directive) = words.next() else {
            continue;
        };
        let at = || Location {
            file: file.to_path_buf(),
            line: start,
            text: line.to_string(),
        };
        if directive.eq_ignore_ascii_case("Protocols") {
            if words.any(|w| w.eq_ignore_ascii_case("h2")) {
                h2.push(at());
            }
        } else if directive.eq_ignore_ascii_case("H2MaxWorkers") {
            max.push(at());
        }
    }
}

/// The value of an `H2MaxWorkers` directive, `None` when it is not a number.
fn workers_value(l: &Location) -> Option<u32> {
    l.text.split_whitespace().nth(1)?.parse().ok()
}

/// The last ingredient: no `H2MaxWorkers` stopgap. The last directive read is the one in
/// force; it is the stopgap only with a value of at most [`STOPGAP_MAX_WORKERS`].
fn stopgap_check(h2_max_workers: &[Location], files_known: bool) -> Check {
    let ingredient = "no `H2MaxWorkers` stopgap (H2MaxWorkers 1)";
    let Some(last) = h2_max_workers.last() else {
        return Check {
            ingredient,
            present: if files_known {
                Presence::Yes
            } else {
                Presence::Unknown
            },
            found: "H2MaxWorkers not set".into(),
        };
    };
    let (present, judged) = match workers_value(last) {
        Some(n) if n <= STOPGAP_MAX_WORKERS => (Presence::No, "the stopgap".to_string()),
        Some(n) => (
            Presence::Yes,
            format!(
                "{n} is no stopgap: PHP still runs in up to {n} HTTP/2 threads at once; \
                 the stopgap is H2MaxWorkers {STOPGAP_MAX_WORKERS}"
            ),
        ),
        None => (
            Presence::Yes,
            "not a number, so no stopgap (Apache refuses it at start)".to_string(),
        ),
    };
    Check {
        ingredient,
        present,
        found: format!("{last} ({judged})"),
    }
}

/// Judges Apache's output and the configuration files (`None` text: unreadable).
pub fn analyze(out: &ApacheOutput, files: &[(PathBuf, Option<String>)]) -> Diagnosis {
    let (server_version, version) = parse_version(&out.version);
    let modules = parse_modules(&out.modules);
    let mpm = parse_mpm(&out.version, &modules);
    let mut protocols_h2 = Vec::new();
    let mut h2_max_workers = Vec::new();
    let mut unreadable = Vec::new();
    for (path, text) in files {
        match text {
            Some(t) => scan_directives(path, t, &mut protocols_h2, &mut h2_max_workers),
            None => unreadable.push(path.clone()),
        }
    }
    let has = |m: &str| modules.iter().any(|x| x == m);
    let yes_no = |b: bool| if b { Presence::Yes } else { Presence::No };
    let known_modules = !modules.is_empty();
    let module_check = |present: bool| {
        if known_modules {
            yes_no(present)
        } else {
            Presence::Unknown
        }
    };
    let php: Vec<&str> = modules
        .iter()
        .map(String::as_str)
        .filter(|m| is_php_module(m))
        .collect();
    let files_known = !files.is_empty() && unreadable.is_empty();
    let first = |v: &[Location]| v.first().map(ToString::to_string).unwrap_or_default();
    let checks = vec![
        Check {
            ingredient: "Apache 2.4.27 or later",
            present: version.map_or(Presence::Unknown, |v| yes_no(v >= FIRST_AFFECTED)),
            found: server_version
                .clone()
                .unwrap_or_else(|| "version not reported".into()),
        },
        Check {
            ingredient: "worker or event MPM",
            present: mpm.as_deref().map_or(Presence::Unknown, |m| {
                yes_no(matches!(m, "worker" | "event"))
            }),
            found: mpm.clone().unwrap_or_else(|| "MPM not reported".into()),
        },
        Check {
            ingredient: "a php*_module loaded (mod_php)",
            present: module_check(!php.is_empty()),
            found: if php.is_empty() {
                "no php module".into()
            } else {
                php.join(", ")
            },
        },
        Check {
            ingredient: "http2_module loaded",
            present: module_check(has("http2_module")),
            found: String::new(),
        },
        Check {
            ingredient: "ssl_module loaded",
            present: module_check(has("ssl_module")),
            found: String::new(),
        },
        Check {
            ingredient: "`Protocols ... h2` in the configuration",
            present: if protocols_h2.is_empty() && !files_known {
                Presence::Unknown
            } else {
                yes_no(!protocols_h2.is_empty())
            },
            found: first(&protocols_h2),
        },
        stopgap_check(&h2_max_workers, files_known),
    ];
    let (last, rest) = checks.split_last().expect("the check list is not empty");
    let verdict = if rest.iter().all(|c| c.present == Presence::Yes) {
        if last.present == Presence::No {
            Verdict::Mitigated
        } else {
            Verdict::Recipe
        }
    } else {
        Verdict::NoRecipe
    };
    Diagnosis {
        server_version,
        version,
        mpm,
        modules,
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        unreadable,
        protocols_h2,
        h2_max_workers,
        checks,
        verdict,
    }
}

impl Diagnosis {
    /// True when every ingredient of the crash recipe is present.
    pub fn matches_recipe(&self) -> bool {
        self.verdict == Verdict::Recipe
    }

    /// The verdict in one line, for alerts and logs.
    pub fn summary(&self) -> String {
        let server = self.server_version.as_deref().unwrap_or("Apache");
        let mpm = self.mpm.as_deref().unwrap_or("unknown");
        match self.verdict {
            Verdict::Recipe => format!(
                "opsd apache doctor: {server} matches the known child-crash recipe ({mpm} MPM + mod_php + HTTP/2 over TLS, {}); \
                 stopgap: H2MaxWorkers 1; fix: event MPM + proxy_fcgi + php-fpm; or prefork (HTTP/2 off)",
                self.h2_max_workers.last().map_or_else(
                    || "no H2MaxWorkers".to_string(),
                    |l| format!("{} at {}:{} is too high to be the stopgap", l.text, l.file.display(), l.line)
                )
            ),
            Verdict::Mitigated => format!(
                "opsd apache doctor: {server} has the child-crash recipe ({mpm} MPM + mod_php + HTTP/2) with the H2MaxWorkers stopgap; \
                 the fix is event MPM + proxy_fcgi + php-fpm"
            ),
            Verdict::NoRecipe => {
                let missing: Vec<&str> = self
                    .checks
                    .iter()
                    .filter(|c| c.present != Presence::Yes)
                    .map(|c| c.ingredient)
                    .collect();
                format!(
                    "opsd apache doctor: {server} does not match the known child-crash recipe (missing: {})",
                    missing.join("; ")
                )
            }
        }
    }

    /// What the verdict means for a child crash on this server: the recipe's fix when it
    /// matches, and when it does not, that php-fpm is not the known fix here.
    pub fn crash_advice(&self) -> String {
        match self.verdict {
            Verdict::Recipe => self.summary(),
            Verdict::Mitigated => format!(
                "{}; it crashed anyway: lower H2MaxWorkers to 1 or move PHP to php-fpm",
                self.summary()
            ),
            Verdict::NoRecipe => {
                format!("{}, so php-fpm is not the known fix here", self.summary())
            }
        }
    }

    /// The exit code of `opsd apache doctor`: 1 when the recipe matches, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.matches_recipe())
    }
}

impl fmt::Display for Diagnosis {
    /// The full report: each ingredient, the verdict, and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Apache child-crash recipe check (2.4.27+, threaded MPM + mod_php + HTTP/2):"
        )?;
        for c in &self.checks {
            let mark = match c.present {
                Presence::Yes => "[x]",
                Presence::No => "[ ]",
                Presence::Unknown => "[?]",
            };
            write!(f, "  {mark} {}", c.ingredient)?;
            if !c.found.is_empty() {
                write!(f, ": {}", c.found)?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  ({} configuration file(s) scanned)", self.files.len())?;
        for p in &self.unreadable {
            writeln!(
                f,
                "  could not read {} (its directives are unknown)",
                p.display()
            )?;
        }
        writeln!(f)?;
        match self.verdict {
            Verdict::Recipe => {
                writeln!(
                    f,
                    "VERDICT: RECIPE MATCHED. Under HTTP/2 load, children will die with"
                )?;
                writeln!(
                    f,
                    "`AH00052: child pid N exit signal Segmentation fault (11)`; the parent"
                )?;
                writeln!(f, "respawns them, so only error_log shows it.")?;
                writeln!(f)?;
                write_options(f, self.mpm.as_deref())?;
            }
            Verdict::Mitigated => {
                writeln!(f, "VERDICT: recipe present, H2MaxWorkers stopgap in place.")?;
                if let Some(l) = self.h2_max_workers.last() {
                    writeln!(f, "  {l}")?;
                }
                writeln!(f)?;
                write_options(f, self.mpm.as_deref())?;
            }
            Verdict::NoRecipe => {
                writeln!(
                    f,
                    "VERDICT: no recipe; this server does not match the known crash."
                )?;
                if self.mpm.as_deref() == Some("prefork")
                    && self.modules.iter().any(|m| m == "http2_module")
                {
                    writeln!(
                        f,
                        "note: under prefork mod_http2 does not serve h2 (HTTP/2 is off)."
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn write_options(f: &mut fmt::Formatter<'_>, mpm: Option<&str>) -> fmt::Result {
    let cost = if mpm == Some("worker") {
        "slow on the worker MPM (HTTP/2 requests queue for few threads)"
    } else {
        "tolerable on the event MPM"
    };
    writeln!(f, "Options:")?;
    writeln!(
        f,
        "  1. Stopgap: cap the HTTP/2 worker threads that run PHP, e.g."
    )?;
    writeln!(f, "       H2MinWorkers 1")?;
    writeln!(f, "       H2MaxWorkers 1")?;
    writeln!(f, "     in the server configuration; {cost}.")?;
    writeln!(
        f,
        "  2. Real fix: event MPM + proxy_fcgi + php-fpm (PHP out of the Apache process):"
    )?;
    writeln!(
        f,
        "       Debian: apt install php-fpm; a2dismod php*; a2enmod proxy_fcgi setenvif;"
    )?;
    writeln!(
        f,
        "               a2enconf php*-fpm; a2dismod mpm_worker; a2enmod mpm_event"
    )?;
    writeln!(
        f,
        "       RHEL:   dnf install php-fpm; comment out the php module in conf.modules.d;"
    )?;
    writeln!(f, "               <FilesMatch \\.php$> SetHandler \"proxy:unix:/run/php-fpm/www.sock|fcgi://localhost\" </FilesMatch>")?;
    writeln!(
        f,
        "  3. Or the prefork MPM: mod_php is safe there, but mod_http2 does not serve h2"
    )?;
    writeln!(f, "     under prefork, so HTTP/2 is off.")
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
            .block_on(diagnose(&opts))
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

#[cfg(test)]
mod tests;
