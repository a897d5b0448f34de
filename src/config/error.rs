//! Configuration errors that point at the file, line, column and key at fault.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem found in one key of the configuration, located by byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Byte range in the file of the offending key or value (empty when unknown).
    pub span: Range<usize>,
    /// Dotted path of the key, e.g. `jobs.backup.schedule`.
    pub key: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// Builds a field error for `key` at `span`.
    pub fn new(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            span,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read configuration: {source}")]
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)
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
    /// Resolves field errors found in `text` (the contents of `path`) to lines and columns.
    pub fn invalid(path: &Path, text: &str, errors: Vec<FieldError>) -> Self {
        let located = errors
            .into_iter()
            .map(|e| {
                let (line, column) = line_col(text, e.span.start);
                Located {
                    path: path.to_path_buf(),
                    line,
                    column,
                    key: e.key,
                    message: e.message,
                }
            })
            .collect();
        ConfigError::Invalid(located)
    }

    /// The located errors, empty for read errors.
    pub fn located(&self) -> &[Located] {
        match self {
            ConfigError::Invalid(v) => v,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Converts a byte offset into a 1-based (line, column) pair.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Suggests the closest candidate to `word`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["timeout", "timezone", "schedule"];
        assert_eq!(did_you_mean("timout", keys), Some("timeout"));
        assert_eq!(did_you_mean("shedule", keys), Some("schedule"));
        assert_eq!(did_you_mean("xyz", keys), None);
    }
}
