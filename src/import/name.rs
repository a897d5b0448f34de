//! Job names for imported lines, derived from what the command runs (`bash
//! /shell/aws-start-instance.sh` is `aws-start-instance`), made valid for opsd
//! ([`crate::field::valid_name`]) and unique within one import.

use crate::field::valid_name;
use std::collections::BTreeSet;

/// Programs that only guard or prepare the command that matters (`test -x X && real`).
const GUARDS: &[&str] = &[
    "test", "[", "[[", "cd", "command", "true", ":", "exit", "sleep",
];
/// Programs that run the command given after their options (`nice -n 10 real`).
const WRAPPERS: &[&str] = &[
    "nice", "ionice", "nohup", "exec", "sudo", "env", "chronic", "time",
];
/// Interpreters and runners: the script they are given names the job, not they.
const RUNNERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "python",
    "python2",
    "python3",
    "perl",
    "php",
    "ruby",
    "node",
    "run-parts",
];
/// Shell words that separate commands.
const SEPARATORS: &[&str] = &[
    "&&", "||", ";", "|", "&", "if", "then", "else", "elif", "fi", "{", "}", "(", ")", "do",
    "done", "while", "until", "!",
];
/// The longest name made before a `-N` suffix.
const MAX_BASE: usize = 56;

/// The names given so far in one import.
#[derive(Debug, Default)]
pub struct Names {
    taken: BTreeSet<String>,
}

impl Names {
    /// A new unique name from `base` (already a name) or, if taken, `base-2`, `base-3`...
    pub fn unique(&mut self, base: &str) -> String {
        let base = sanitized(base);
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

/// `text` made a valid job name: other characters become `-`, at most [`MAX_BASE`] long,
/// `job` when nothing is left.
fn sanitized(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out: String = out
        .trim_matches(|c| c == '-' || c == '.')
        .chars()
        .take(MAX_BASE)
        .collect();
    let out = out.trim_end_matches(['-', '.']).to_string();
    if valid_name(&out) {
        out
    } else {
        "job".to_string()
    }
}

/// The name a shell command suggests: the program of its first simple command that is not a
/// guard, or for an interpreter the script it runs; without its directory and extension.
pub fn from_command(command: &str) -> String {
    let spaced = command
        .replace("&&", " && ")
        .replace("||", " || ")
        .replace(';', " ; ")
        .replace('|', " | ")
        .replace("|  |", "||");
    let words: Vec<String> = spaced
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    for simple in words.split(|w| SEPARATORS.contains(&w.as_str())) {
        let mut args = simple
            .iter()
            .filter(|w| !w.is_empty())
            .skip_while(|w| is_assignment(w))
            .filter(|w| !w.starts_with(['>', '<']) && !w.starts_with("2>") && !w.starts_with("1>"));
        let Some(program) = args.next() else {
            continue;
        };
        let base = basename(program);
        // A guard, or what is left of one after a `!` (`[ ! -d /x ]`).
        if GUARDS.contains(&base) || base.starts_with('-') || base == "]" {
            continue;
        }
        let mut rest: Vec<&String> = args.collect();
        let mut base = base;
        while WRAPPERS.contains(&base) {
            rest.retain(|a| !a.starts_with('-') && !a.chars().all(|c| c.is_ascii_digit()));
            if rest.is_empty() {
                break;
            }
            base = basename(rest.remove(0));
        }
        if RUNNERS.contains(&base) {
            if let Some(script) = rest.iter().find(|a| !a.starts_with('-')) {
                return stem(basename(script)).to_string();
            }
        }
        return stem(base).to_string();
    }
    "job".to_string()
}

/// `NAME=value`, a shell variable assignment before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(n, _)| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    })
}

fn basename(path: &str) -> &str {
    path.rsplit('/').find(|p| !p.is_empty()).unwrap_or(path)
}

/// A script's name without a common extension (`backup.sh` is `backup`).
fn stem(name: &str) -> &str {
    for ext in [".sh", ".bash", ".py", ".pl", ".php", ".rb", ".js"] {
        if let Some(s) = name.strip_suffix(ext).filter(|s| !s.is_empty()) {
            return s;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_what_the_command_runs() {
        for (command, name) in [
            ("bash /shell/aws-start-instance.sh", "aws-start-instance"),
            ("cd / && run-parts --report /etc/cron.hourly", "cron.hourly"),
            (
                "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
                "cron.daily",
            ),
            (
                "test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r",
                "e2scrub_all",
            ),
            (
                "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
                "sessionclean",
            ),
            ("command -v debian-sa1 > /dev/null && debian-sa1 1 1", "debian-sa1"),
            ("nice -n 19 ionice -c3 /usr/local/bin/backup.sh >/dev/null 2>&1", "backup"),
            ("/usr/bin/python3 -u /opt/app/report.py", "report"),
            ("echo hi", "echo"),
            ("", "job"),
        ] {
            assert_eq!(from_command(command), name, "{command}");
        }
    }

    #[test]
    fn names_are_valid_and_unique() {
        let mut names = Names::default();
        assert_eq!(names.unique("backup"), "backup");
        assert_eq!(names.unique("backup"), "backup-2");
        assert_eq!(names.unique(".hidden file"), "hidden-file");
        assert_eq!(names.unique("ü"), "job");
        let long = names.unique(&"x".repeat(200));
        assert!(valid_name(&long) && long.len() <= 64, "{long}");
    }
}
