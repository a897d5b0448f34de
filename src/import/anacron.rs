//! anacron: `/etc/anacrontab` lines (`period delay job-id command`) and the scripts of the
//! directories they hand to run-parts (`/etc/cron.daily/` and the like).
//!
//! A job line becomes a schedule with `catch_up = "once"` (what anacron is for: a run missed
//! while the machine was off happens once when it is back). Its delay becomes a fixed offset
//! in the schedule, not a jitter: anacron waits exactly that many minutes, and the delays
//! (5, 10, 15 in Debian's file) put the jobs in a fixed order; `RANDOM_DELAY` is the random
//! part and becomes `jitter`. A `run-parts DIR` line becomes one job per script DIR holds,
//! at the time the system crontab runs DIR (Debian's `/etc/crontab`: cron.daily at 06:25).

use super::crontab::{content_lines, env_line, set_var, take_word, Vars};
use super::times::Times;
use super::{Command, Import, Job, Options, Source};
use std::path::Path;

/// A script of a run-parts directory, as the caller found it.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its file name.
    pub name: String,
    /// True when its execute bit is set (run-parts runs only those).
    pub executable: bool,
}

/// Imports the anacrontab `text` (named `file`) into `out`; `crontab` is the system crontab
/// (text and name) that says when each run-parts directory runs, and `list` lists a
/// directory's scripts.
pub fn import_anacrontab(
    text: &str,
    file: &str,
    crontab: Option<(&str, &str)>,
    list: &dyn Fn(&Path) -> Result<Vec<Script>, String>,
    opts: &Options,
    out: &mut Import,
) {
    let mut vars = Vars::default();
    for (source, trimmed) in content_lines(text, file) {
        let trimmed = match trimmed {
            Ok(t) => t,
            Err(why) => {
                out.report(&source, why);
                continue;
            }
        };
        if let Some((name, value)) = env_line(trimmed) {
            if name != "RANDOM_DELAY" && name != "START_HOURS_RANGE" {
                set_var(&mut vars, &name, &value, &source, out);
            } else {
                vars.env.retain(|(n, _)| *n != name);
                vars.env.push((name, value));
            }
            continue;
        }
        job_line(trimmed, &source, &vars, crontab, list, opts, out);
    }
}

/// One `period delay job-id command` line.
fn job_line(
    line: &str,
    source: &Source,
    vars: &Vars,
    crontab: Option<(&str, &str)>,
    list: &dyn Fn(&Path) -> Result<Vec<Script>, String>,
    opts: &Options,
    out: &mut Import,
) {
    let words = take_word(line).and_then(|(period, r)| {
        let (delay, r) = take_word(r)?;
        let (id, r) = take_word(r)?;
        Some((period, delay, id, r.trim_start()))
    });
    let Some((period, delay, id, command)) = words.filter(|w| !w.3.is_empty()) else {
        out.report(source, "not `period delay job-id command`");
        return;
    };
    let Ok(delay) = delay.parse::<u32>() else {
        out.report(
            source,
            format!("the delay {delay:?} is not a number of minutes"),
        );
        return;
    };
    let jitter = match vars.get("RANDOM_DELAY").map(str::parse::<u32>) {
        Some(Ok(n)) if n > 0 => Some(n),
        Some(Err(_)) => {
            out.report(source, "RANDOM_DELAY is not a number of minutes");
            return;
        }
        _ => None,
    };
    if let Some(dir) = run_parts_dir(command) {
        scripts(&dir, id, source, vars, crontab, list, jitter, opts, out);
        return;
    }
    let start_hour = match vars.get("START_HOURS_RANGE") {
        Some(range) => match range
            .split_once('-')
            .and_then(|(a, _)| a.trim().parse::<u32>().ok())
        {
            Some(h) if h < 24 => h,
            _ => {
                out.report(
                    source,
                    format!("START_HOURS_RANGE={range:?} is not HOUR-HOUR"),
                );
                return;
            }
        },
        None => 0,
    };
    let at = start_hour * 60 + delay;
    if at >= 24 * 60 {
        out.report(source, "its start hour and delay go past midnight");
        return;
    }
    let (h, m) = (at / 60, at % 60);
    let schedule = match period.to_ascii_lowercase().as_str() {
        "1" | "@daily" => format!("{m} {h} * * *"),
        "7" | "@weekly" => format!("{m} {h} * * 0"),
        "@monthly" => format!("{m} {h} 1 * *"),
        "@yearly" | "@annually" => format!("{m} {h} 1 1 *"),
        p => match p.parse::<u32>() {
            Ok(n) if (2..=366).contains(&n) => format!("@every {n}d"),
            _ => {
                out.report(source, format!("the period {period:?} is not days (1-366) or @daily/@weekly/@monthly/@yearly"));
                return;
            }
        },
    };
    let mut notes = vec![format!(
        "anacron job {id} (period {period}, delay {delay} min): the delay is a fixed time of day here; a run missed while down runs once at start"
    )];
    if schedule.starts_with("@every") {
        notes.push(format!(
            "an @every schedule has no offset: the {delay} min delay is not kept"
        ));
        out.note(
            source,
            format!("the {delay} min delay of anacron job {id} is not kept (@every has no offset)"),
        );
    }
    let name = out.names.unique(id);
    out.jobs.push(Job {
        name,
        source: source.clone(),
        schedule,
        timezone: opts.zone,
        user: None,
        command: shell_command(command, vars),
        env: vars
            .env
            .iter()
            .filter(|(n, _)| !is_anacron_var(n))
            .cloned()
            .collect(),
        anacron: true,
        jitter_minutes: jitter,
        notes,
        mailto: vars.mailto.clone(),
        working_dir: None,
    });
}

fn is_anacron_var(name: &str) -> bool {
    name == "RANDOM_DELAY" || name == "START_HOURS_RANGE"
}

fn shell_command(command: &str, vars: &Vars) -> Command {
    if vars.shell() == super::crontab::DEFAULT_SHELL {
        Command::Shell(command.to_string())
    } else {
        Command::Argv(vec![vars.shell().into(), "-c".into(), command.into()])
    }
}

/// The directory of `run-parts [--options] DIR` (possibly after `cd DIR &&` or `nice`).
fn run_parts_dir(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.rsplit('/').next() == Some("run-parts"))?;
    let rest = &words[at + 1..];
    let dir = rest.iter().find(|w| !w.starts_with('-'))?;
    let tail = &rest[rest.iter().position(|w| w == dir)? + 1..];
    (tail.is_empty() && dir.starts_with('/')).then(|| dir.trim_end_matches(';').to_string())
}

/// The line of the system crontab that runs run-parts on `dir`, with its times.
fn crontab_line(dir: &str, crontab: Option<(&str, &str)>) -> Option<(Source, Times)> {
    let (text, file) = crontab?;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || env_line(t).is_some() {
            continue;
        }
        let mut rest = t;
        let mut fields = Vec::new();
        while fields.len() < 5 {
            let Some((w, r)) = take_word(rest) else {
                break;
            };
            fields.push(w);
            rest = r;
        }
        if fields.len() < 5 {
            continue;
        }
        let names_dir = rest
            .split(|c: char| c.is_whitespace() || c == ';')
            .any(|w| w == dir);
        if !names_dir || !rest.contains("run-parts") {
            continue;
        }
        let Ok(times) = Times::parse([fields[0], fields[1], fields[2], fields[3], fields[4]])
        else {
            continue;
        };
        let source = Source {
            file: file.to_string(),
            line: i + 1,
            text: line.to_string(),
        };
        return Some((source, times));
    }
    None
}

/// A job per script of `dir`, at the time the system crontab runs the directory.
#[allow(clippy::too_many_arguments)]
fn scripts(
    dir: &str,
    id: &str,
    source: &Source,
    vars: &Vars,
    crontab: Option<(&str, &str)>,
    list: &dyn Fn(&Path) -> Result<Vec<Script>, String>,
    jitter: Option<u32>,
    opts: &Options,
    out: &mut Import,
) {
    let Some((cron_source, times)) = crontab_line(dir, crontab) else {
        out.report(
            source,
            format!("no line of the system crontab runs {dir}, so there is no time to give its scripts (pass --crontab)"),
        );
        return;
    };
    let found = match list(Path::new(dir)) {
        Ok(s) => s,
        Err(e) => {
            out.report(source, format!("cannot list {dir}: {e}"));
            return;
        }
    };
    let prefix = Path::new(dir)
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_start_matches("cron.").to_string())
        .unwrap_or_else(|| id.to_string());
    let before = out.jobs.len();
    for script in found {
        let path = format!("{}/{}", dir.trim_end_matches('/'), script.name);
        let script_source = Source {
            file: path.clone(),
            line: 0,
            text: String::new(),
        };
        if !run_parts_name(&script.name) {
            if !script.name.starts_with('.') {
                out.report(&script_source, "run-parts skips it: its name has characters other than letters, digits, `_` and `-` (a package manager's leftover?)");
            }
            continue;
        }
        if !script.executable {
            out.report(&script_source, "run-parts skips it: it is not executable");
            continue;
        }
        if script.name == "0anacron" {
            out.report(
                &script_source,
                "anacron's own time-stamp script: opsd keeps its own state (catch_up)",
            );
            continue;
        }
        let (schedule, timezone, note) =
            match super::crontab::schedule_for(&times, opts.zone, true, opts) {
                Ok(s) => s,
                Err(why) => {
                    out.report(&cron_source, why);
                    return;
                }
            };
        if let Some(n) = note
            .as_ref()
            .filter(|_| timezone == opts.zone && opts.rezone.is_some())
        {
            out.note(&cron_source, n.clone());
        }
        let mut notes = vec![format!(
            "{path}: run by run-parts through {source} (anacron job {id}), at the time {cron_source} runs {dir}; caught up once after downtime"
        )];
        notes.extend(note);
        let name = out.names.unique(&format!("{prefix}-{}", script.name));
        out.jobs.push(Job {
            name,
            source: cron_source.clone(),
            schedule,
            timezone,
            user: None,
            command: Command::Argv(vec![path]),
            env: vars
                .env
                .iter()
                .filter(|(n, _)| !is_anacron_var(n))
                .cloned()
                .collect(),
            anacron: true,
            jitter_minutes: jitter,
            working_dir: None,
            notes,
            mailto: vars.mailto.clone(),
        });
    }
    if out.jobs.len() == before {
        out.report(
            source,
            format!("{dir} holds no script run-parts would run that maps to a job (see its scripts above)"),
        );
    }
}

/// Debian run-parts' rule for the names it runs: letters, digits, `_` and `-` only.
pub fn run_parts_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_parts_lines_name_their_directory() {
        assert_eq!(
            run_parts_dir("run-parts --report /etc/cron.daily"),
            Some("/etc/cron.daily".into())
        );
        assert_eq!(
            run_parts_dir("nice run-parts /etc/cron.weekly"),
            Some("/etc/cron.weekly".into())
        );
        assert_eq!(run_parts_dir("run-parts /etc/x && echo done"), None);
        assert_eq!(run_parts_dir("/usr/local/bin/backup"), None);
    }

    #[test]
    fn run_parts_runs_only_plain_names() {
        assert!(run_parts_name("logrotate") && run_parts_name("apt-compat"));
        assert!(!run_parts_name("backup.sh") && !run_parts_name("x.dpkg-old"));
    }
}
