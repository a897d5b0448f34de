//! What a sink type implements to deliver: a [`Deliver`] built once per configured sink from its
//! [`SinkSpec`], asked for one attempt at a time, and the [`AttemptError`] that tells the
//! dispatcher whether another try can help. Retries, queues and deadlines are the dispatcher's.

use super::SinkType;
use crate::alert::record::Alert;
use crate::escape;
use std::future::Future;
use std::pin::Pin;

/// Most bytes of a failing program's stderr or a failing webhook's body quoted in the log.
const MAX_QUOTE: usize = 300;

/// Why one attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AttemptError {
    /// A timeout, a refused connection, a 5xx, a program exiting non-zero: worth another try.
    #[error("{0}")]
    Retry(String),
    /// The sink rejected the alert itself (e.g. HTTP 400/401/404): retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

/// One attempt in flight.
pub(crate) type Attempt<'a> = Pin<Box<dyn Future<Output = Result<(), AttemptError>> + Send + 'a>>;

/// Why a sink could not be made ready to deliver: its text says what failed, its source why.
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// A sink ready to deliver (a configured HTTP client, a program line).
pub(crate) trait Deliver: std::fmt::Debug + Send + Sync {
    /// Makes one attempt to deliver `alert`.
    fn attempt<'a>(&'a self, alert: &'a Alert) -> Attempt<'a>;
}

/// A validated sink of one type, as the rest of opsd sees it.
pub(crate) trait SinkSpec {
    /// Its type's registry row (its `type = "..."` name).
    fn sink_type(&self) -> &'static SinkType;

    /// The program it runs as written, if it runs one (`opsd check` looks for it).
    fn program(&self) -> Option<&str> {
        None
    }

    /// Prepares its delivery once (e.g. builds the HTTP client).
    fn deliverer(&self) -> Result<Box<dyn Deliver>, PrepareError>;
}

/// The start of `bytes` (a body or stderr written by someone else), safe for one log line.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_QUOTE)];
    escape::control(String::from_utf8_lossy(cut).trim()).into_owned()
}
