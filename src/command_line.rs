//! What a command job or a command alert sink runs, as written in `jobs.toml`: an argv list
//! (no shell) or one line for `/bin/sh -c`. It imports only the `field` leaf, so `config`,
//! `jobs` and `alert` all use it without importing one another.

use crate::field::FieldError;
use serde::Deserialize;
use toml::Spanned;

/// What to run: an argv list (no shell) or one string for `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// `["/usr/bin/prog", "--flag"]`, run directly.
    Argv(Vec<String>),
    /// `"pg_dump app | gzip > x"`, run under `/bin/sh -c`.
    Shell(String),
}

impl CommandLine {
    /// True when there is nothing to run: no program, a blank program name, or a blank line.
    pub fn is_empty(&self) -> bool {
        match self {
            CommandLine::Argv(v) => v.first().is_none_or(|p| p.trim().is_empty()),
            CommandLine::Shell(s) => s.trim().is_empty(),
        }
    }

    /// The program as written: the argv's first element, or the first word of the shell line
    /// (what `opsd check` looks for on disk); `None` when there is none.
    pub fn program(&self) -> Option<&str> {
        match self {
            CommandLine::Argv(argv) => argv.first().map(String::as_str),
            CommandLine::Shell(line) => line.split_whitespace().next(),
        }
    }

    /// The program to start and its arguments: the argv as given, or `/bin/sh -c LINE`;
    /// `None` for an argv with no program.
    pub fn program_and_args(&self) -> Option<(&str, Vec<&str>)> {
        match self {
            CommandLine::Argv(argv) => argv.split_first().map(|(program, args)| {
                (program.as_str(), args.iter().map(String::as_str).collect())
            }),
            CommandLine::Shell(line) => Some(("/bin/sh", vec!["-c", line.as_str()])),
        }
    }
}

/// The located error for an empty `PREFIX.command` (see [`CommandLine::is_empty`]), its message
/// ending in the caller's `hint` of what to write; `None` when there is something to run.
pub fn empty_error(command: &Spanned<CommandLine>, prefix: &str, hint: &str) -> Option<FieldError> {
    command.get_ref().is_empty().then(|| {
        FieldError::new(
            command.span(),
            format!("{prefix}.command"),
            format!("the command is empty; {hint}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::CommandLine;

    #[test]
    fn an_argv_runs_as_given_and_a_line_runs_under_sh() {
        let argv = CommandLine::Argv(vec!["/usr/bin/env".into(), "-i".into(), "true".into()]);
        assert_eq!(
            argv.program_and_args(),
            Some(("/usr/bin/env", vec!["-i", "true"]))
        );
        let line = CommandLine::Shell("echo a | tr a b".into());
        assert_eq!(
            line.program_and_args(),
            Some(("/bin/sh", vec!["-c", "echo a | tr a b"]))
        );
        assert_eq!(CommandLine::Argv(Vec::new()).program_and_args(), None);
        assert_eq!(argv.program(), Some("/usr/bin/env"));
        assert_eq!(
            CommandLine::Shell("  /opt/x.sh  -v".into()).program(),
            Some("/opt/x.sh")
        );
        assert_eq!(CommandLine::Shell(" ".into()).program(), None);
    }

    #[test]
    fn an_empty_command_is_reported_at_its_place_with_the_callers_hint() {
        let empty = toml::Spanned::new(3..5, CommandLine::Argv(Vec::new()));
        let e = super::empty_error(&empty, "jobs.x", "give a program").unwrap();
        assert_eq!(
            (e.span, e.key.as_str(), e.message.as_str()),
            (
                3..5,
                "jobs.x.command",
                "the command is empty; give a program"
            )
        );
        let full = toml::Spanned::new(0..1, CommandLine::Shell("true".into()));
        assert!(super::empty_error(&full, "jobs.x", "give a program").is_none());
    }

    #[test]
    fn nothing_to_run_is_empty() {
        for empty in [
            CommandLine::Argv(Vec::new()),
            CommandLine::Argv(vec!["  ".into(), "arg".into()]),
            CommandLine::Shell(" \t\n".into()),
        ] {
            assert!(empty.is_empty(), "{empty:?}");
        }
        assert!(!CommandLine::Argv(vec!["/bin/true".into()]).is_empty());
        assert!(!CommandLine::Shell("true".into()).is_empty());
    }

    #[test]
    fn a_list_is_an_argv_and_a_string_a_shell_line() {
        #[derive(serde::Deserialize)]
        struct T {
            a: CommandLine,
            b: CommandLine,
        }
        let t: T = toml::from_str("a = [\"/bin/echo\", \"hi\"]\nb = \"echo hi\"\n").unwrap();
        assert_eq!(
            t.a,
            CommandLine::Argv(vec!["/bin/echo".into(), "hi".into()])
        );
        assert_eq!(t.b, CommandLine::Shell("echo hi".into()));
    }
}
