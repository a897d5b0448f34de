//! The environment every program opsd starts begins with: a command job's run and a
//! `type = "command"` alert sink's program. Nothing of the daemon's own environment reaches
//! either unless it names the variable in `pass_env`: the daemon's environment holds what its
//! unit or shell gave it (`AWS_SECRET_ACCESS_KEY` for the ec2 jobs, proxies, tokens), which a
//! job run as `nobody` or a mail script must not see. Like cron and systemd, a program gets a
//! fixed, documented set instead ([`base`]); a job's run adds its own ([`build`]).

use std::collections::BTreeMap;
use std::ffi::OsString;

/// The `PATH` every run starts with (systemd's default for services).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The `LANG` of a run when the daemon has none.
pub const DEFAULT_LANG: &str = "C.UTF-8";
/// Variables opsd sets itself; a job's `env` or `pass_env` may not name them, since
/// `OPSD_RUN_ID` is how a run's (or an alert program's) escaped processes are told apart.
pub const RESERVED: &[&str] = &["OPSD_JOB", "OPSD_RUN_ID"];

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
    /// The account the daemon itself runs as, or a bare `root`/`/` when it has no passwd entry.
    pub fn current() -> RunUser {
        match nix::unistd::User::from_uid(nix::unistd::geteuid()) {
            Ok(Some(u)) => RunUser::from(&u),
            _ => RunUser {
                name: nix::unistd::geteuid().to_string(),
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
/// zone), then the job's `env`, then `OPSD_JOB` and `OPSD_RUN_ID`.
pub fn build(
    inputs: &EnvInputs<'_>,
    daemon: impl Fn(&str) -> Option<OsString>,
) -> BTreeMap<OsString, OsString> {
    let mut vars = base(inputs.user, inputs.timezone, inputs.pass_env, daemon);
    for (k, v) in inputs.env {
        vars.insert(k.into(), v.into());
    }
    vars.insert("OPSD_JOB".into(), inputs.job.into());
    vars.insert("OPSD_RUN_ID".into(), inputs.run_id.into());
    vars
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
        assert_eq!(get(&vars, "LANG"), Some(DEFAULT_LANG));
        assert_eq!(get(&vars, "HOME"), Some("/var/backups"));
        assert_eq!(get(&vars, "OPSD_RUN_ID"), Some("abc"));
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
}
