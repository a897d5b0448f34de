//! The environment every program opsd starts begins with: a command job's run and a
//! `type = "command"` alert sink's program. Nothing of the daemon's own environment reaches
//! either unless it names the variable in `pass_env`: the daemon's environment holds what its
//! unit or shell gave it (`AWS_SECRET_ACCESS_KEY` for the ec2 jobs, proxies, tokens), which a
//! job run as `nobody` or a mail script must not see. Like cron and systemd, a program gets a
//! fixed, documented set instead ([`base`]); a job's run adds its own ([`build`]), which may
//! come in part from an `env_file` in systemd's `EnvironmentFile=` format ([`read_env_file`]).

use crate::field::FieldError;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The `PATH` every run starts with (systemd's default for services).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The `LANG` of a run when the daemon has none: glibc's C locale in UTF-8, spelled as the
/// directory Debian's `libc-bin` ships it in (`/usr/lib/locale/C.utf8`). `C.UTF-8` names the
/// same locale, but glibc first looks for each of its 12 categories under that exact name and
/// finds it only at a second try under the normalised one: 12 failed `open`s in every program
/// a run starts that sets its locale (`date`, `sort`, `grep`).
pub const DEFAULT_LANG: &str = "C.utf8";
/// Variables opsd sets itself; a job's `env` or `pass_env` may not name them, since
/// `OPSD_RUN_ID` is how a run's (or an alert program's) escaped processes are told apart.
pub const RESERVED: &[&str] = &["OPSD_JOB", "OPSD_RUN_ID", "OPSD_FENCING_TOKEN"];

/// Who a run runs as, for `HOME`, `USER`, `LOGNAME` and `SHELL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUser {
    /// The login name.
    pub name: String,
    /// The home directory.
    pub home: OsString,
    /// The login shell (`/bin/sh` when the account has none).
    pub shell: OsString,
}

impl RunUser {
    /// The account the daemon itself runs as, or its bare uid with `HOME=/` when it has no
    /// passwd entry. A found account is kept until the daemon's uid or `/etc/passwd` (its
    /// inode, modification or change time) changes: every run of a job with no `user` asks,
    /// and reading and parsing the whole passwd file for each of a thousand runs a second was
    /// CPU the runs' starts waited for. A failed lookup is never kept (the next run asks
    /// again); an account served by NSS from elsewhere (LDAP, sssd) is read again only when
    /// `/etc/passwd` changes.
    pub fn current() -> RunUser {
        use std::os::unix::fs::MetadataExt as _;
        type Known = (nix::unistd::Uid, [i64; 5], RunUser);
        static KNOWN: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);
        let known = || {
            KNOWN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let uid = nix::unistd::geteuid();
        let stamp = std::fs::metadata("/etc/passwd").ok().map(|m| {
            [
                m.ino() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ]
        });
        if let (Some((u, s, user)), Some(stamp)) = (known().as_ref(), stamp) {
            if *u == uid && *s == stamp {
                return user.clone();
            }
        }
        // Looked up outside the lock: a slow NSS source holds up this run only.
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(u)) => {
                let user = RunUser::from(&u);
                *known() = stamp.map(|s| (uid, s, user.clone()));
                user
            }
            _ => RunUser {
                name: uid.to_string(),
                home: "/".into(),
                shell: "/bin/sh".into(),
            },
        }
    }
}

impl From<&nix::unistd::User> for RunUser {
    fn from(u: &nix::unistd::User) -> RunUser {
        let shell = if u.shell.as_os_str().is_empty() {
            "/bin/sh".into()
        } else {
            u.shell.clone().into_os_string()
        };
        RunUser {
            name: u.name.clone(),
            home: u.dir.clone().into_os_string(),
            shell,
        }
    }
}

/// What a run's environment is built from.
#[derive(Debug)]
pub struct EnvInputs<'a> {
    /// The job's name.
    pub job: &'a str,
    /// The run's id.
    pub run_id: &'a str,
    /// The user the run runs as.
    pub user: &'a RunUser,
    /// The job's time zone name (`TZ`); empty leaves `TZ` unset.
    pub timezone: &'a str,
    /// Daemon variables the job asked for by name.
    pub pass_env: &'a [String],
    /// The variables of the job's `env_file`, applied before `env`.
    pub env_file: &'a [(String, String)],
    /// The job's own `env`, applied last.
    pub env: &'a BTreeMap<String, String>,
}

/// The part of the environment every program opsd starts gets, in order: `PATH`, `HOME`,
/// `USER`, `LOGNAME`, `SHELL` of `user`, `LANG` (the daemon's, or [`DEFAULT_LANG`]), `TZ` when
/// `timezone` is not empty, then the `pass_env` variables the daemon has. `daemon` looks a
/// variable up in the daemon's environment.
pub fn base(
    user: &RunUser,
    timezone: &str,
    pass_env: &[String],
    daemon: impl Fn(&str) -> Option<OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
    let mut set = |k: &str, v: OsString| {
        vars.insert(k.into(), v);
    };
    set("PATH", DEFAULT_PATH.into());
    set("HOME", user.home.clone());
    set("USER", user.name.clone().into());
    set("LOGNAME", user.name.clone().into());
    set("SHELL", user.shell.clone());
    set(
        "LANG",
        daemon("LANG")
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| DEFAULT_LANG.into()),
    );
    if !timezone.is_empty() {
        set("TZ", timezone.into());
    }
    for name in pass_env {
        if let Some(value) = daemon(name) {
            set(name, value);
        }
    }
    vars
}

/// Builds a run's whole environment: the [`base`] every program gets (with `TZ` the job's
/// zone), then the job's `env_file`, then its `env`, then `OPSD_JOB` and `OPSD_RUN_ID`.
pub fn build(
    inputs: &EnvInputs<'_>,
    daemon: impl Fn(&str) -> Option<OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut vars = base(inputs.user, inputs.timezone, inputs.pass_env, daemon);
    for (k, v) in inputs.env_file {
        vars.insert(k.into(), v.into());
    }
    for (k, v) in inputs.env {
        vars.insert(k.into(), v.into());
    }
    vars.insert("OPSD_JOB".into(), inputs.job.into());
    vars.insert("OPSD_RUN_ID".into(), inputs.run_id.into());
    vars
}

/// The usable names of a `PREFIX.pass_env` list, each unusable one reported in `errors` at its
/// place (see [`name_problem`]).
pub fn check_pass_env(
    names: &[Spanned<String>],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let mut usable = Vec::new();
    for name in names {
        match name_problem(name.get_ref()) {
            Some(problem) => errors.push(FieldError::new(
                name.span(),
                format!("{prefix}.pass_env"),
                problem,
            )),
            None => usable.push(name.get_ref().clone()),
        }
    }
    usable
}

/// Why a variable name cannot be used in `env` or `pass_env`, or `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("an environment variable name cannot be empty".into())
    } else if name.contains(['=', '\0']) {
        Some(format!(
            "{name:?} is not an environment variable name (no '=' or NUL)"
        ))
    } else if RESERVED.contains(&name) {
        Some(format!(
            "{name} is set by opsd itself and cannot be replaced"
        ))
    } else {
        None
    }
}

/// The largest `env_file` read; a larger one fails the run rather than fill the memory.
pub const MAX_ENV_FILE: u64 = 1 << 20;

/// Why an `env_file` could not be used. No message holds a value from the file (they are
/// often secrets), nor the text of a line that is not `KEY=VALUE`.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    /// The file could not be opened or read.
    #[error("env_file {}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a regular file (a FIFO, a device, a directory).
    #[error("env_file {}: it is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead ("a FIFO", ...).
        kind: &'static str,
    },
    /// The file is larger than [`MAX_ENV_FILE`].
    #[error("env_file {}: larger than {} KiB; is it the right file?", path.display(), MAX_ENV_FILE / 1024)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is not in the `KEY=VALUE` format.
    #[error("env_file {}:{line}: {problem}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong, without the line's text.
        problem: &'static str,
    },
}

/// Reads an `env_file` now (each run reads it again, so a rotated secret is picked up): its
/// variables in file order. With `optional` (a leading `-` in the job file, as systemd's), a
/// missing file gives none. It is read with [`crate::bounded_read`]: a FIFO or a device is
/// refused at once ([`EnvFileError::NotRegular`]) rather than waited on or read forever.
/// Blocking (the open may still hang on a stale network mount): call it off the async threads.
pub fn read_env_file(path: &Path, optional: bool) -> Result<Vec<(String, String)>, EnvFileError> {
    use crate::bounded_read::ReadError;
    let read_error = |source| EnvFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match crate::bounded_read::read(path, MAX_ENV_FILE) {
        Ok(bytes) => bytes,
        Err(e) if optional && e.is_not_found() => return Ok(Vec::new()),
        Err(ReadError::Open(e) | ReadError::Read(e)) => return Err(read_error(e)),
        Err(ReadError::NotRegular(kind)) => {
            return Err(EnvFileError::NotRegular {
                path: path.to_path_buf(),
                kind,
            })
        }
        Err(ReadError::TooLarge(_)) => {
            return Err(EnvFileError::TooLarge {
                path: path.to_path_buf(),
            })
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })?;
    parse_env_file(&text).map_err(|(line, problem)| EnvFileError::Syntax {
        path: path.to_path_buf(),
        line,
        problem,
    })
}

/// Parses systemd's `EnvironmentFile=` format: `KEY=VALUE` lines, blank lines and lines
/// starting with `#` or `;` skipped, whitespace around the key and before the value dropped,
/// trailing whitespace of an unquoted value dropped, `'single'` (literal) and `"double"`
/// (`\"`, `\\`, `\$`, `` \` `` escapes) quotes that may span lines, and a `\` that escapes
/// the next character or, at the end of a line, joins the next. A key given twice keeps its
/// last value. An error is the 1-based line and what is wrong.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, &'static str)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // The start of a line: blank, a comment, or a key.
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        match chars.peek() {
            None => break,
            Some('\n') => {
                chars.next();
                line += 1;
                continue;
            }
            Some('#' | ';') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
                continue;
            }
            Some(_) => {}
        }
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some('\n') | None => {
                    return Err((line, "not KEY=VALUE (no '=' on the line; systemd would ignore the line, opsd refuses it so that a typo cannot drop a variable unseen)"))
                }
                Some(c) => key.push(c),
            }
        }
        let key = key.trim_end().to_string();
        let mut name = key.chars();
        let valid = name
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err((
                line,
                "the name before '=' is not a variable name (letters, digits and '_'; no `export`): systemd would ignore the line, opsd refuses it so that a typo cannot drop a variable unseen",
            ));
        }
        let key_line = line;
        let value = env_file_value(&mut chars, &mut line).map_err(|p| (key_line, p))?;
        vars.retain(|(k, _)| *k != key);
        vars.push((key, value));
    }
    Ok(vars)
}

/// Reads a value up to the end of its line (the newline is consumed), counting lines.
fn env_file_value(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    line: &mut usize,
) -> Result<String, &'static str> {
    while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
    let mut value = String::new();
    // Where the value ends once trailing unquoted whitespace is dropped.
    let mut kept = 0;
    // Quotes open only at the start of the value or right after a quoted part, as systemd's.
    let mut quote_may_open = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                *line += 1;
                break;
            }
            '\'' if quote_may_open => {
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => {
                            if c == '\n' {
                                *line += 1;
                            }
                            value.push(c);
                        }
                        None => return Err("a ' quote is not closed"),
                    }
                }
                kept = value.len();
            }
            '"' if quote_may_open => {
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => *line += 1,
                            Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                            Some(c) => {
                                value.push('\\');
                                value.push(c);
                            }
                            None => return Err("a \" quote is not closed"),
                        },
                        Some(c) => {
                            if c == '\n' {
                                *line += 1;
                            }
                            value.push(c);
                        }
                        None => return Err("a \" quote is not closed"),
                    }
                }
                kept = value.len();
            }
            '\\' => {
                quote_may_open = false;
                match chars.next() {
                    Some('\n') => *line += 1,
                    Some(c) => {
                        value.push(c);
                        kept = value.len();
                    }
                    None => {}
                }
            }
            ' ' | '\t' => value.push(c),
            c => {
                quote_may_open = false;
                value.push(c);
                kept = value.len();
            }
        }
    }
    value.truncate(kept);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> RunUser {
        RunUser {
            name: "backup".into(),
            home: "/var/backups".into(),
            shell: "/bin/bash".into(),
        }
    }

    fn get<'a>(vars: &'a BTreeMap<OsString, OsString>, k: &str) -> Option<&'a str> {
        vars.get(&OsString::from(k)).and_then(|v| v.to_str())
    }

    #[test]
    fn only_the_documented_variables_and_the_asked_for_ones_are_set() {
        let env = BTreeMap::from([("DB".to_string(), "app".to_string())]);
        let pass = vec!["HTTPS_PROXY".to_string(), "NOT_SET".to_string()];
        let u = user();
        let inputs = EnvInputs {
            job: "dump",
            run_id: "abc",
            user: &u,
            timezone: "Asia/Seoul",
            pass_env: &pass,
            env_file: &[
                ("DB".to_string(), "from-file".to_string()),
                ("FROM_FILE".to_string(), "1".to_string()),
            ],
            env: &env,
        };
        let daemon = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://127.0.0.1:3128".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            _ => None,
        };
        let vars = build(&inputs, daemon);
        let keys: Vec<_> = vars.keys().filter_map(|k| k.to_str()).collect();
        assert_eq!(
            keys,
            [
                "DB",
                "FROM_FILE",
                "HOME",
                "HTTPS_PROXY",
                "LANG",
                "LOGNAME",
                "OPSD_JOB",
                "OPSD_RUN_ID",
                "PATH",
                "SHELL",
                "TZ",
                "USER"
            ]
        );
        assert_eq!(get(&vars, "TZ"), Some("Asia/Seoul"));
        assert_eq!(get(&vars, "DB"), Some("app"), "env overrides env_file");
        assert_eq!(get(&vars, "LANG"), Some(DEFAULT_LANG));
        assert_eq!(get(&vars, "HOME"), Some("/var/backups"));
        assert_eq!(get(&vars, "OPSD_RUN_ID"), Some("abc"));
    }

    #[test]
    fn the_default_lang_is_found_at_the_first_lookup() {
        // libc-bin ships the C locale as this directory; a name glibc has to normalise first
        // (C.UTF-8) costs each program a failed open per locale category.
        let dir = std::path::Path::new("/usr/lib/locale").join(DEFAULT_LANG);
        assert!(
            dir.join("LC_CTYPE").is_file(),
            "{} is missing: is this Debian's libc-bin?",
            dir.display()
        );
    }

    #[test]
    fn the_jobs_env_comes_last_but_cannot_replace_the_run_id() {
        let env = BTreeMap::from([("PATH".to_string(), "/opt/bin".to_string())]);
        let u = user();
        let inputs = EnvInputs {
            job: "j",
            run_id: "r1",
            user: &u,
            timezone: "UTC",
            pass_env: &[],
            env_file: &[],
            env: &env,
        };
        let vars = build(&inputs, |k| (k == "LANG").then(|| "de_DE.UTF-8".into()));
        assert_eq!(get(&vars, "PATH"), Some("/opt/bin"));
        assert_eq!(get(&vars, "LANG"), Some("de_DE.UTF-8"));
        assert!(name_problem("OPSD_RUN_ID").is_some());
        assert!(name_problem("A=B").is_some());
        assert!(name_problem("").is_some());
        assert_eq!(name_problem("HTTPS_PROXY"), None);
    }

    #[test]
    fn the_base_every_program_gets_has_no_run_variables_and_no_daemon_secrets() {
        let u = user();
        let pass = vec!["HTTPS_PROXY".to_string()];
        let daemon = |k: &str| match k {
            "HTTPS_PROXY" => Some("http://127.0.0.1:3128".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            _ => None,
        };
        let vars = base(&u, "", &pass, daemon);
        let keys: Vec<_> = vars.keys().filter_map(|k| k.to_str()).collect();
        assert_eq!(
            keys,
            [
                "HOME",
                "HTTPS_PROXY",
                "LANG",
                "LOGNAME",
                "PATH",
                "SHELL",
                "USER"
            ]
        );
        assert_eq!(get(&vars, "SHELL"), Some("/bin/bash"));
    }

    #[test]
    fn an_env_file_reads_as_systemds_environmentfile() {
        let text = "# comment\n; also a comment\n\n  A=1\nB = two words  \nC='single $x \\ '\n\
                    D=\"dq \\\"x\\\" \\$y\"\nE=it's\nF=\"multi\nline\"\nG=a\\\nb\nA=last\nH=\n";
        let vars = parse_env_file(text).unwrap();
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("B", "two words"),
                ("C", "single $x \\ "),
                ("D", "dq \"x\" $y"),
                ("E", "it's"),
                ("F", "multi\nline"),
                ("G", "ab"),
                ("A", "last"),
                ("H", ""),
            ]
        );
    }

    #[test]
    fn a_bad_env_file_line_is_located_without_its_text() {
        assert_eq!(
            parse_env_file("A=1\nhunter2\n"),
            Err((2, "not KEY=VALUE (no '=' on the line; systemd would ignore the line, opsd refuses it so that a typo cannot drop a variable unseen)"))
        );
        assert_eq!(
            parse_env_file("A=1\n\n9X=s3cret\n").map_err(|e| e.0),
            Err(3)
        );
        assert_eq!(parse_env_file("A='open\n").map_err(|e| e.0), Err(1));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "TOKEN=s3cret\nbroken s3cret\n").unwrap();
        let e = read_env_file(&file, false).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("env_file {}:2: ", file.display())),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        let missing = dir.path().join("missing");
        assert!(read_env_file(&missing, true).unwrap().is_empty());
        let e = read_env_file(&missing, false).unwrap_err().to_string();
        assert!(e.contains("missing: cannot read it"), "{e}");
        std::fs::write(&file, vec![b'x'; MAX_ENV_FILE as usize + 1]).unwrap();
        assert!(matches!(
            read_env_file(&file, false),
            Err(EnvFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_fifo_or_a_device_env_file_is_refused_at_once_and_a_symlinked_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.env");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking open would wait for a writer for good: this test would hang.
        let e = read_env_file(&fifo, true).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "env_file {}: it is a FIFO, not a regular file",
                fifo.display()
            )
        );
        let e = read_env_file(Path::new("/dev/zero"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a character device"), "{e}");
        let file = dir.path().join("real.env");
        std::fs::write(&file, "A=1\n").unwrap();
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            read_env_file(&link, false).unwrap(),
            [("A".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn any_env_file_text_parses_or_fails_without_panicking() {
        let alphabet: Vec<char> = "AB_9= \t\n#;'\"\\$`x\u{e9}".chars().collect();
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            match parse_env_file(&text) {
                Ok(vars) => assert!(
                    vars.iter()
                        .all(|(k, _)| name_problem(k).is_none() && !k.is_empty()),
                    "{text:?}"
                ),
                Err((line, _)) => assert!(
                    (1..=text.lines().count().max(1)).contains(&line),
                    "{text:?}: line {line}"
                ),
            }
        }
    }

    #[test]
    fn pass_env_keeps_the_usable_names_and_reports_the_others_at_their_place() {
        let names = vec![
            Spanned::new(1..5, "HOME".to_string()),
            Spanned::new(7..8, String::new()),
            Spanned::new(10..20, "OPSD_JOB".to_string()),
        ];
        let mut errors = Vec::new();
        assert_eq!(check_pass_env(&names, "jobs.x", &mut errors), vec!["HOME"]);
        let found: Vec<_> = errors
            .iter()
            .map(|e| (e.span.clone(), e.key.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    7..8,
                    "jobs.x.pass_env",
                    "an environment variable name cannot be empty"
                ),
                (
                    10..20,
                    "jobs.x.pass_env",
                    "OPSD_JOB is set by opsd itself and cannot be replaced"
                ),
            ]
        );
    }
}
