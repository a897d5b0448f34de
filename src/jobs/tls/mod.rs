//! The `tls` job type: for every target a server answers on, which TLS versions it accepts and
//! when its certificates expire, judged against what the operator expects (TLS 1.3 and 1.2 on,
//! 1.0/1.1 off, `warn_days` of warning). The probing and judging are [`crate::tls`]'s; this
//! type reads the job's keys, runs the probes with the job's limits, and turns the verdicts
//! into an outcome, one event and one alert per failing target, and the table `opsd run-job`
//! prints.

mod alert;
mod kind;
mod run;
mod spec;

#[cfg(test)]
mod tests;

pub use alert::{alert_for, outcome_line};
pub use kind::KIND;
pub use run::run;
pub use spec::{TlsSpec, DEFAULT_CONCURRENCY, DEFAULT_PROBE_TIMEOUT};
