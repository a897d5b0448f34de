//! The lines of a crontab, `/etc/crontab` or a cron.d file, read as Debian's cron reads them:
//! `NAME=value` lines set variables for the lines after them (`MAILTO`, `SHELL`, `CRON_TZ` have
//! their own meaning), other lines are five time fields or a `@nickname`, a user field in
//! system files, and the command, in which an unescaped `%` ends the command and starts its
//! standard input (each further `%` a newline).

use super::name::from_command;
use super::rezone::{local_times, rezone};
use super::times::Times;
use super::{Command, Import, Job, Options, Source};
use crate::schedule::Schedule;
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// Cron's shell when `SHELL=` does not name another.
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// The variables in force at a line of one file.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `NAME=value` lines, in order (a name set again keeps its first place).
    pub env: Vec<(String, String)>,
    /// `SHELL`, if set.
    pub shell: Option<String>,
    /// `MAILTO`, if set and not empty.
    pub mailto: Option<String>,
    /// `CRON_TZ`, if set.
    pub cron_tz: Option<Tz>,
}

impl Vars {
    /// The shell commands run under.
    pub fn shell(&self) -> &str {
        self.shell.as_deref().unwrap_or(DEFAULT_SHELL)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a line with bytes that are not UTF-8 (read as U+FFFD) is not mapped.
const NOT_UTF8: &str = "the line is not valid UTF-8 (a jobs.toml is UTF-8): convert the file, \
                        e.g. `iconv -f latin1 -t utf-8`, and import it again";

/// The lines of a crontab or anacrontab that say something (not blank, not a comment), each
/// with its place and its text left-trimmed, or why it cannot be read (bytes that were not
/// UTF-8).
pub(super) fn content_lines<'a>(
    text: &'a str,
    file: &'a str,
) -> impl Iterator<Item = (Source, Result<&'a str, &'static str>)> + 'a {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let source = Source {
            file: file.to_string(),
            line: i + 1,
            text: line.to_string(),
        };
        if trimmed.contains(char::REPLACEMENT_CHARACTER) {
            Some((source, Err(NOT_UTF8)))
        } else {
            Some((source, Ok(trimmed)))
        }
    })
}

/// Imports the crontab `text`, named `file` in reports and comments, into `out`.
pub fn import_crontab(text: &str, file: &str, opts: &Options, out: &mut Import) {
    let mut vars = Vars::default();
    if !opts.user_field && opts.user.is_none() {
        let whole = Source {
            file: file.to_string(),
            line: 0,
            text: String::new(),
        };
        out.note(
            &whole,
            "no --user: the jobs get no `user` and run as the daemon's user (root), where cron \
             ran them as the crontab's owner; import with --user NAME",
        );
    }
    for (source, trimmed) in content_lines(text, file) {
        let trimmed = match trimmed {
            Ok(t) => t,
            Err(why) => {
                out.report(&source, why);
                continue;
            }
        };
        if let Some((name, value)) = env_line(trimmed) {
            set_var(&mut vars, &name, &value, &source, out);
            continue;
        }
        entry(trimmed, &source, &vars, opts, out);
    }
}

/// `NAME=value` (spaces around `=` allowed, the value's matching quotes taken off), or `None`
/// for a line that is not a variable.
pub fn env_line(line: &str) -> Option<(String, String)> {
    let end = line.find(|c: char| c == '=' || c.is_whitespace())?;
    let name = &line[..end];
    let value = line[end..].trim_start().strip_prefix('=')?.trim();
    if name.is_empty() {
        return None;
    }
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| {
            value
                .strip_prefix(*q)
                .and_then(|v| v.strip_suffix(*q))
                .filter(|_| value.len() >= 2)
        })
        .unwrap_or(value);
    Some((name.to_string(), unquoted.to_string()))
}

/// Applies one variable line.
pub fn set_var(vars: &mut Vars, name: &str, value: &str, source: &Source, out: &mut Import) {
    match name {
        "MAILTO" => {
            vars.mailto = (!value.is_empty()).then(|| value.to_string());
            if let Some(m) = &vars.mailto {
                out.mailtos.push((m.clone(), source.clone()));
            }
            return;
        }
        "CRON_TZ" => {
            match value.parse::<Tz>() {
                Ok(tz) => vars.cron_tz = Some(tz),
                Err(_) => out.report(
                    source,
                    format!("CRON_TZ={value:?} is not an IANA time zone opsd knows; the lines after it keep the previous zone"),
                ),
            }
            return;
        }
        "SHELL" => vars.shell = Some(value.to_string()),
        "TZ" => out.note(
            source,
            "TZ= is passed to the commands (env) as cron does; cron still read the times in \
             its own zone (CRON_TZ= changes that), and so do the imported jobs",
        ),
        _ => {}
    }
    if let Some(problem) = env_name_problem(name) {
        out.report(source, problem);
        return;
    }
    match vars.env.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => vars.env.push((name.to_string(), value.to_string())),
    }
}

/// Why opsd's `env` cannot hold `name`, if it cannot.
fn env_name_problem(name: &str) -> Option<String> {
    let ok = !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Some(format!(
            "{name:?} is not a variable name a program can be given (letters, digits, _)"
        ));
    }
    if name == "OPSD_JOB" || name == "OPSD_RUN_ID" {
        return Some(format!(
            "{name} is set by opsd for each run and cannot be replaced"
        ));
    }
    None
}

/// The first whitespace-separated word of `s` and what follows it.
pub fn take_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// When a line fires: cron times, or `@reboot`.
enum When {
    Times(Times),
    Reboot,
}

/// One job line.
fn entry(line: &str, source: &Source, vars: &Vars, opts: &Options, out: &mut Import) {
    let Some((first, mut rest)) = take_word(line) else {
        return;
    };
    let when = if first.starts_with('@') {
        if first.eq_ignore_ascii_case("@reboot") {
            Ok(When::Reboot)
        } else {
            Times::nickname(first).map(When::Times)
        }
    } else {
        let mut fields = [first, "", "", "", ""];
        for slot in fields.iter_mut().skip(1) {
            match take_word(rest) {
                Some((w, r)) => {
                    *slot = w;
                    rest = r;
                }
                None => {
                    out.report(source, "fewer than five time fields and a command");
                    return;
                }
            }
        }
        Times::parse(fields).map(When::Times)
    };
    let when = match when {
        Ok(w) => w,
        Err(e) => {
            out.report(source, e.to_string());
            return;
        }
    };
    let user = if opts.user_field {
        match take_word(rest) {
            Some((u, r)) => {
                rest = r;
                Some(u.to_string())
            }
            None => {
                out.report(
                    source,
                    "no user field and command (a system crontab line has both)",
                );
                return;
            }
        }
    } else {
        opts.user.clone()
    };
    let raw = rest.trim_start_matches([' ', '\t']);
    if raw.trim().is_empty() {
        out.report(source, "no command after the times");
        return;
    }
    let (command_text, stdin) = split_percent(raw);
    let mut notes = Vec::new();
    let command = match &stdin {
        Some(data) => {
            notes.push(
                "`%` in the command: cron gave the text after it to the command's standard \
                 input (each further `%` a newline); printf pipes the same text in"
                    .to_string(),
            );
            Command::Shell(format!(
                "printf '%s' {} | {} -c {}",
                sh_quote(data),
                vars.shell(),
                sh_quote(&command_text)
            ))
        }
        None if vars.shell() == DEFAULT_SHELL => Command::Shell(command_text.clone()),
        None => Command::Argv(vec![
            vars.shell().to_string(),
            "-c".to_string(),
            command_text.clone(),
        ]),
    };
    let zone = vars.cron_tz.unwrap_or(opts.zone);
    let (schedule, timezone) = match when {
        When::Reboot => {
            notes.push(
                "@reboot ran once when cron started at boot; @start runs at every start of \
                 opsd (a `systemctl restart opsd` too)"
                    .to_string(),
            );
            ("@start".to_string(), zone)
        }
        When::Times(times) => match schedule_for(&times, zone, vars.cron_tz.is_none(), opts) {
            Ok((expr, tz, note)) => {
                if let Some(n) = note {
                    if tz == zone && opts.rezone.is_some() {
                        out.note(source, n.clone());
                    }
                    notes.push(n);
                }
                (expr, tz)
            }
            Err(why) => {
                out.report(source, why);
                return;
            }
        },
    };
    let working_dir = home(vars, user.as_deref());
    if working_dir.is_none() {
        out.note(
            source,
            "cron started the command in the user's $HOME; no HOME= line and no known user's \
             home here, so the job has no working_dir and starts in /",
        );
    }
    let base = from_command(&command_text);
    let name = out.names.unique(&base);
    out.jobs.push(Job {
        name,
        source: source.clone(),
        schedule,
        timezone,
        user,
        command,
        env: vars.env.clone(),
        anacron: false,
        jitter_minutes: None,
        notes,
        mailto: vars.mailto.clone(),
        working_dir,
    });
}

/// Where cron started a line's command: `$HOME`, which the crontab's `HOME=` sets, else the
/// user's home in the account database.
fn home(vars: &Vars, user: Option<&str>) -> Option<String> {
    if let Some(h) = vars.get("HOME").filter(|h| !h.is_empty()) {
        return Some(h.to_string());
    }
    let user = crate::account::user(user?)?;
    Some(user.dir.to_string_lossy().into_owned())
}

/// The expression and zone for `times` read in `zone` (rezoned when asked and exactly
/// equivalent), with a note for the comment; an error when opsd would refuse it.
pub fn schedule_for(
    times: &Times,
    zone: Tz,
    may_rezone: bool,
    opts: &Options,
) -> Result<(String, Tz, Option<String>), String> {
    let expr = times.expression();
    if let Err(e) = Schedule::parse(&expr, zone, BTreeSet::new()) {
        return Err(format!(
            "cron accepts it but it never runs, and opsd refuses such a schedule: {e}"
        ));
    }
    let Some(target) = opts.rezone.filter(|_| may_rezone) else {
        return Ok((expr, zone, None));
    };
    match rezone(times, zone, target, opts.start) {
        Ok(moved) => {
            let new = moved.expression();
            let note = format!(
                "rezoned: \"{expr}\" in {zone} is \"{new}\" in {target} (the same instants \
                 over the next two years)"
            );
            Ok((new, target, Some(note)))
        }
        Err(why) => Ok((
            expr,
            zone,
            Some(format!(
                "kept in {zone}, not rezoned: {why}; {}",
                local_times(times, zone, target, opts.start)
            )),
        )),
    }
}

/// The command and, after an unescaped `%`, its standard input, as cron makes them: `\%` is a
/// `%` in the command, and in the input each `%` is a newline, with one at the end.
pub fn split_percent(raw: &str) -> (String, Option<String>) {
    let mut command = String::new();
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        if escaped {
            if c == '%' {
                command.pop();
            }
            command.push(c);
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            command.push(c);
            continue;
        }
        if c == '%' {
            return (command, Some(stdin_text(&raw[i + 1..])));
        }
        command.push(c);
    }
    (command, None)
}

/// Cron's translation of the input part (do_command.c): `%` to newline unless escaped, and a
/// newline at the end if there is none.
fn stdin_text(input: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    let mut need_newline = false;
    for c in input.chars() {
        let mut ch = c;
        if escaped {
            if ch != '%' {
                out.push('\\');
            }
        } else if ch == '%' {
            ch = '\n';
        }
        escaped = ch == '\\';
        if !escaped {
            out.push(ch);
        }
        need_newline = ch != '\n';
    }
    if escaped {
        out.push('\\');
    }
    if need_newline {
        out.push('\n');
    }
    out
}

/// `s` in single quotes for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_splits_command_and_input_as_cron_does() {
        assert_eq!(split_percent("echo hi"), ("echo hi".into(), None));
        assert_eq!(
            split_percent("mail -s report root%line one%line two"),
            (
                "mail -s report root".into(),
                Some("line one\nline two\n".into())
            )
        );
        assert_eq!(
            split_percent(r"date +\%Y-\%m-\%d > /tmp/d"),
            ("date +%Y-%m-%d > /tmp/d".into(), None)
        );
        assert_eq!(
            split_percent(r"cat%a\%b"),
            ("cat".into(), Some("a%b\n".into()))
        );
        assert_eq!(split_percent("cat%"), ("cat".into(), Some(String::new())));
        assert_eq!(split_percent(r"echo a\b"), (r"echo a\b".into(), None));
    }

    #[test]
    fn variable_lines_are_told_from_job_lines() {
        assert_eq!(
            env_line("MAILTO=a@b"),
            Some(("MAILTO".into(), "a@b".into()))
        );
        assert_eq!(env_line("X = \"a b\" "), Some(("X".into(), "a b".into())));
        assert_eq!(env_line("Y='it'"), Some(("Y".into(), "it".into())));
        assert_eq!(env_line("*/5 * * * * X=1 cmd"), None);
        assert_eq!(env_line("0 1 * * * cmd"), None);
        assert_eq!(env_line("@daily A=1 cmd"), None);
    }

    fn opts(user: Option<&str>, user_field: bool) -> Options {
        Options {
            zone: chrono_tz::UTC,
            rezone: None,
            user: user.map(str::to_string),
            user_field,
            start: chrono::Utc::now(),
        }
    }

    #[test]
    fn jobs_start_in_home_as_cron_started_them() {
        let mut out = Import::default();
        let text =
            "0 1 * * * root a\nHOME=/srv/x\n0 2 * * * root b\n0 3 * * * opsd-no-such-user-x c\n";
        import_crontab(text, "f", &opts(None, true), &mut out);
        let dirs: Vec<Option<&str>> = out.jobs.iter().map(|j| j.working_dir.as_deref()).collect();
        assert_eq!(dirs, [Some("/root"), Some("/srv/x"), Some("/srv/x")]);

        let mut out = Import::default();
        import_crontab(
            "0 1 * * * a\n",
            "f",
            &opts(Some("opsd-no-such-user-x"), false),
            &mut out,
        );
        assert_eq!(out.jobs[0].working_dir, None);
        assert!(out.notes.iter().any(|n| n.text.contains("$HOME")));
        let toml = crate::import::render(&out, "crontab");
        assert!(!toml.contains("working_dir"));

        let mut out = Import::default();
        import_crontab("0 1 * * * a\n", "f", &opts(Some("root"), false), &mut out);
        assert!(crate::import::render(&out, "crontab").contains("working_dir = \"/root\""));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_by_number_and_the_others_mapped() {
        // What the command line reads from "# caf\xe9\n0 1 * * * caf\xe9\n0 2 * * * b\n".
        let text = String::from_utf8_lossy(b"# caf\xe9\n0 1 * * * caf\xe9\n0 2 * * * b\n");
        let mut out = Import::default();
        import_crontab(&text, "f", &opts(Some("root"), false), &mut out);
        let reported: Vec<usize> = out.reports.iter().map(|r| r.source.line).collect();
        assert_eq!(reported, [2], "{:?}", out.reports);
        assert!(out.reports[0].why.contains("UTF-8"));
        assert_eq!(out.jobs.len(), 1);
        assert_eq!(out.jobs[0].source.line, 3);
    }

    #[test]
    fn a_crontab_without_user_says_its_jobs_run_as_root() {
        let mut out = Import::default();
        import_crontab("0 1 * * * a\n", "f", &opts(None, false), &mut out);
        assert!(out.notes.iter().any(|n| n.text.contains("no --user")));
        let mut out = Import::default();
        import_crontab("0 1 * * * a\n", "f", &opts(Some("root"), false), &mut out);
        assert!(!out.notes.iter().any(|n| n.text.contains("no --user")));
    }
}
