//! The error of one key: a byte span, the dotted key and a message. Turning spans into lines and
//! columns, and rendering, is the reader's business (`config::error`).

use std::ops::Range;

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
