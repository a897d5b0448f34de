//! Configuration errors that point at the file, line, column and key at fault.
//!
//! Each error displays as one line with its control characters escaped
//! ([`crate::escape::control`]): a drop-in's file name, a quoted key or a value in a message is
//! anyone's text, and these lines reach `opsd check`, the reload reply and the journal.

use crate::field::{Cursor, FieldError};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read configuration: {source}", crate::escape::control(&.path.to_string_lossy()))]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// One or more keys are invalid; each is reported with its location.
    #[error("{}", render(.0))]
    Invalid(Vec<Located>),
}

/// A [`FieldError`] resolved to a file, line and column for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The configuration file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number (in characters).
    pub column: usize,
    /// Dotted key path.
    pub key: String,
    /// The problem.
    pub message: String,
}

impl fmt::Display for Located {
    /// `FILE:LINE:COL: `KEY`: MESSAGE`, on one line whatever the file's name, the key or the
    /// message hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::escape::control;
        let path = self.path.to_string_lossy();
        write!(f, "{}:{}:{}: ", control(&path), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", control(&self.key))?;
        }
        // A parser's message may span lines ("invalid table header" / "expected ..."): one
        // line, its parts joined.
        let message: Vec<&str> = self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        write!(f, "{}", control(&message.join("; ")))
    }
}

fn render(errors: &[Located]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// Resolves field errors found in `text` (the contents of `path`) to lines and columns, in
    /// one pass over the text whatever the number of errors. Messages and keys that carry a huge
    /// value from the file are cut to a readable length.
    pub fn invalid(path: &Path, text: &str, mut errors: Vec<FieldError>) -> Self {
        errors.sort_by_key(|e| e.span.start);
        let mut at = Cursor::default();
        let located = errors
            .into_iter()
            .map(|e| {
                let (line, column) = at.advance(text, e.span.start);
                Located {
                    path: path.to_path_buf(),
                    line,
                    column,
                    key: cut(&e.key, MAX_KEY),
                    message: cut(&e.message, MAX_MESSAGE),
                }
            })
            .collect();
        ConfigError::Invalid(located)
    }

    /// The error for a file that is not UTF-8, located at its first bad byte.
    pub fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> Self {
        let valid = &bytes[..error.valid_up_to()];
        // The prefix up to the first bad byte is valid UTF-8 by definition.
        let text = std::str::from_utf8(valid).unwrap_or_default();
        let bad = bytes.get(error.valid_up_to()).copied().unwrap_or_default();
        let message = format!(
            "the file is not UTF-8 text: byte 0x{bad:02x} cannot start or continue a character \
             here (save the file as UTF-8)"
        );
        ConfigError::invalid(
            path,
            text,
            vec![FieldError::new(text.len()..text.len(), "", message)],
        )
    }

    /// The located errors, empty for read errors.
    pub fn located(&self) -> &[Located] {
        match self {
            ConfigError::Invalid(v) => v,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// The longest message kept whole; longer ones carry a value from the file and are cut.
const MAX_MESSAGE: usize = 300;
/// The longest key path kept whole.
const MAX_KEY: usize = 160;
/// `text` itself when at most `max` characters long, else its start and end around a note of
/// its length, so a message keeps its subject and its hint but not a huge value between them.
fn cut(text: &str, max: usize) -> String {
    let chars = text.chars().count();
    if chars <= max {
        return text.to_string();
    }
    let head_end = text
        .char_indices()
        .nth(max / 2)
        .map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(chars - max / 4)
        .map_or(text.len(), |(i, _)| i);
    format!(
        "{}… ({} bytes) …{}",
        &text[..head_end],
        text.len(),
        &text[tail_start..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_key_or_message_with_control_characters_stays_on_its_line() {
        let path = Path::new("/etc/opsd/jobs.d/evil\u{1b}[2J\n FAKE: all ok.toml");
        let e = ConfigError::invalid(
            path,
            "[jobs.x]\n",
            vec![FieldError::new(1..5, "jobs.\u{7}x", "bad\rvalue")],
        );
        assert_eq!(
            e.to_string(),
            "/etc/opsd/jobs.d/evil\\u{1b}[2J\\n FAKE: all ok.toml:1:2: `jobs.\\u{7}x`: bad\\rvalue"
        );
        let parser = ConfigError::invalid(
            Path::new("/etc/opsd/jobs.toml"),
            "[jobs.x\n",
            vec![FieldError::new(
                0..1,
                "",
                "invalid table header\nexpected `.`, `]`\n",
            )],
        );
        assert_eq!(
            parser.to_string(),
            "/etc/opsd/jobs.toml:1:1: invalid table header; expected `.`, `]`"
        );
        let read = ConfigError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let text = read.to_string();
        assert!(
            text.starts_with("/etc/opsd/jobs.d/evil\\u{1b}[2J\\n FAKE") && !text.contains('\n'),
            "{text}"
        );
    }
}
