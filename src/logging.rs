//! Log output: readable text on stderr, native journald fields when started by systemd
//! (`JOURNAL_STREAM` set), or JSON lines for log shippers.

use std::io::IsTerminal;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::{filter::filter_fn, fmt, prelude::*, EnvFilter};

/// The target of events that reach journald at priority 2 (crit) instead of 3 (err): tracing has
/// no level above `error`, so critical alerts are `error!(target: CRITICAL_TARGET, ...)`.
pub const CRITICAL_TARGET: &str = "opsd::critical";

/// Where and how log events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// journald when `JOURNAL_STREAM` is set, else text.
    #[default]
    Auto,
    /// Human-readable text on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// Native journald entries with structured fields.
    Journald,
}

/// Installs the global log subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // Two journald layers: the critical target's `error` maps to crit, everything else keeps
        // the default mapping (error → err, warn → warning, info → notice).
        LogFormat::Journald => match tracing_journald::layer()
            .and_then(|main| Ok((main, tracing_journald::layer()?)))
        {
            Ok((main, critical)) => {
                let critical_mapping = PriorityMappings {
                    error: Priority::Critical,
                    ..PriorityMappings::new()
                };
                registry
                    .with(
                        main.with_field_prefix(None)
                            .with_syslog_identifier("opsd".into())
                            .with_filter(filter_fn(|m| m.target() != CRITICAL_TARGET)),
                    )
                    .with(
                        critical
                            .with_field_prefix(None)
                            .with_syslog_identifier("opsd".into())
                            .with_priority_mappings(critical_mapping)
                            .with_filter(filter_fn(|m| m.target() == CRITICAL_TARGET)),
                    )
                    .init();
            }
            Err(e) => {
                registry
                    .with(fmt::layer().with_writer(std::io::stderr))
                    .init();
                tracing::warn!("journald is not reachable ({e}); logging to stderr");
            }
        },
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text | LogFormat::Auto => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
    }
}
