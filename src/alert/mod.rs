//! Alerts shared by every job type: the [`Alert`] record, and the [`Dispatcher`] that logs each
//! alert to the journal and delivers it to webhook and command sinks with retries, without ever
//! blocking the caller.

mod deliver;
mod dispatch;
mod record;
pub mod sink;

pub use dispatch::{Dispatcher, DispatcherError, DispatcherOptions, RetryPolicy, SinkStats};
pub use record::{hostname, Alert, Severity};
