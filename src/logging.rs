//! Log output: readable text on stderr, native journald fields when started by systemd
//! (`JOURNAL_STREAM` set), or JSON lines for log shippers.
//!
//! Two guarantees hold whatever the events say. Each event is one line in text and JSON output:
//! control characters, line separators and bidi overrides in messages and field values are
//! escaped here (the safety net behind the escaping at source). And third-party crates log at
//! `warn` unless `RUST_LOG` names them: their debug output carries credentials (the AWS SDK logs
//! the access key id) and full URLs.

use crate::escape;
use std::fmt::{self as stdfmt, Write as _};
use std::io::{self, IsTerminal};
use tracing::field::{Field, Visit};
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::MakeWriter;
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

/// Our own crate's target: every event of ours has it or a `opsd::…` target below it.
const OWN_TARGET: &str = "opsd";

/// Level of third-party crates when `RUST_LOG` does not name them.
const THIRD_PARTY: tracing::level_filters::LevelFilter = tracing::level_filters::LevelFilter::WARN;

/// The filter directives for a `RUST_LOG` value (`None`: unset). A bare level (`debug`) applies
/// to opsd; other crates stay at `warn` (or quieter, if the bare level is quieter) unless a
/// directive names them (`aws_config=debug`). Without a bare level opsd logs at `info`.
pub fn filter_directives(rust_log: Option<&str>) -> String {
    let mut own: Option<tracing::level_filters::LevelFilter> = None;
    let mut named_own = false;
    let mut kept = Vec::new();
    for directive in rust_log.unwrap_or("").split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        if !directive.contains(['=', '[']) {
            if let Ok(level) = directive.parse::<tracing::level_filters::LevelFilter>() {
                own = Some(level);
                continue;
            }
        }
        let target = directive.split(['=', '[']).next().unwrap_or("");
        named_own |= target == OWN_TARGET;
        kept.push(directive.to_string());
    }
    let own = own.unwrap_or(tracing::level_filters::LevelFilter::INFO);
    // LevelFilter orders quieter as smaller: OFF < ERROR < WARN < … < TRACE.
    let others = own.min(THIRD_PARTY);
    let mut directives = vec![others.to_string().to_lowercase()];
    if !named_own {
        directives.push(format!("{OWN_TARGET}={}", own.to_string().to_lowercase()));
    }
    directives.extend(kept);
    directives.join(",")
}

/// The filter for `RUST_LOG`, or the default one and the reason when it does not parse.
fn filter() -> (EnvFilter, Option<String>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    match EnvFilter::try_new(filter_directives(rust_log.as_deref())) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new(filter_directives(None)),
            Some(format!(
                "RUST_LOG ignored ({e}); logging at the default levels"
            )),
        ),
    }
}

/// Formats fields as the default text formatter does, with outside text escaped so that it can
/// neither end the line nor hide or reorder text.
#[derive(Debug, Default)]
struct EscapedFields(DefaultFields);

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapedVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        EscapedVisitor(self.0.make_visitor(target))
    }
}

/// The default visitor, fed escaped text.
struct EscapedVisitor<'a>(DefaultVisitor<'a>);

impl EscapedVisitor<'_> {
    /// Writes `field` as pre-rendered, escaped `text`.
    fn record_text(&mut self, field: &Field, text: &str) {
        let safe = escape::control(text);
        self.0.record_debug(field, &format_args!("{safe}"));
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn stdfmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_text(field, &text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_text(field, value);
        } else {
            // Quoted with `{:?}`, which already escapes every non-printable character.
            self.0.record_str(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(inner) = source {
            let _ = write!(text, ": {inner}");
            source = inner.source();
        }
        self.record_text(field, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.record_i64(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.record_u64(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.record_bool(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.record_f64(field, value);
    }
}

impl VisitOutput<stdfmt::Result> for EscapedVisitor<'_> {
    fn finish(self) -> stdfmt::Result {
        self.0.finish()
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn stdfmt::Write {
        self.0.writer()
    }
}

/// Stderr for JSON lines, with what serde leaves raw (U+2028, bidi, C1) JSON-escaped.
#[derive(Debug, Clone, Copy, Default)]
struct JsonStderr;

impl<'a> MakeWriter<'a> for JsonStderr {
    type Writer = JsonLineWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonLineWriter(io::stderr())
    }
}

/// Writes each buffer (one whole event: the fmt layer writes an event at once) escaped.
struct JsonLineWriter<W>(W);

impl<W: io::Write> io::Write for JsonLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(escape::json(text).as_bytes())?,
            // Not a whole event after all: serde writes UTF-8, so pass it on as it is.
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The text layer: one escaped line per event on `writer`.
fn text_layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fmt::layer()
        .fmt_fields(EscapedFields::default())
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
}

/// Installs the global log subscriber; `RUST_LOG` as read by [`filter_directives`].
pub fn init(format: LogFormat) {
    let (filter, filter_problem) = filter();
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
                    .with(text_layer(io::stderr, io::stderr().is_terminal()))
                    .init();
                tracing::warn!("journald is not reachable ({e}); logging to stderr");
            }
        },
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(JsonStderr),
            )
            .init(),
        LogFormat::Text | LogFormat::Auto => registry
            .with(text_layer(io::stderr, io::stderr().is_terminal()))
            .init(),
    }
    if let Some(problem) = filter_problem {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_bare_level_is_for_opsd_and_other_crates_stay_at_warn() {
        assert_eq!(filter_directives(None), "warn,opsd=info");
        assert_eq!(filter_directives(Some("")), "warn,opsd=info");
        assert_eq!(filter_directives(Some("debug")), "warn,opsd=debug");
        assert_eq!(filter_directives(Some("TRACE")), "warn,opsd=trace");
        assert_eq!(filter_directives(Some("error")), "error,opsd=error");
        assert_eq!(filter_directives(Some("off")), "off,opsd=off");
    }

    #[test]
    fn crates_named_in_rust_log_get_what_was_asked() {
        assert_eq!(
            filter_directives(Some("debug,aws_config=debug")),
            "warn,opsd=debug,aws_config=debug"
        );
        assert_eq!(
            filter_directives(Some("aws_config=trace")),
            "warn,opsd=info,aws_config=trace"
        );
        assert_eq!(
            filter_directives(Some("opsd=trace,opsd::scheduler=info")),
            "warn,opsd=trace,opsd::scheduler=info"
        );
        // A bare crate name (every level of that crate) is a directive, not a level.
        assert_eq!(filter_directives(Some("hyper")), "warn,opsd=info,hyper");
        for spec in ["debug", "aws_config=debug", "hyper", "opsd=trace,warn"] {
            assert!(
                EnvFilter::try_new(filter_directives(Some(spec))).is_ok(),
                "{spec}"
            );
        }
    }

    #[test]
    fn the_filter_keeps_aws_debug_out_and_opsd_debug_in() {
        let filter = EnvFilter::new(filter_directives(Some("debug")));
        let out = capture(
            filter,
            |buf| text_layer(buf, false),
            || {
                tracing::debug!(target: "aws_config::profile", "access key id AKIDEXAMPLE");
                tracing::warn!(target: "aws_config::profile", "a real problem");
                tracing::debug!("opsd detail");
            },
        );
        assert!(!out.contains("AKIDEXAMPLE"), "{out}");
        assert!(
            out.contains("a real problem") && out.contains("opsd detail"),
            "{out}"
        );
    }

    #[test]
    fn text_output_keeps_each_event_on_one_line() {
        let forged = "x\n2026-12-01T08:00:00.000000Z  INFO forged\r\u{1b}[2K\u{85}\u{2028}\u{202e}";
        let out = capture(
            EnvFilter::new("trace"),
            |buf| text_layer(buf, false),
            || {
                let err = std::io::Error::other(forged);
                tracing::info!(
                    name = %forged,
                    debug = ?forged,
                    plain = forged,
                    error = &err as &(dyn std::error::Error + 'static),
                    "job said {forged}"
                );
            },
        );
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains("\r") && !out.contains('\u{1b}'), "{out}");
        assert!(
            matches!(
                escape::control(out.trim_end()),
                std::borrow::Cow::Borrowed(_)
            ),
            "{out}"
        );
        assert!(
            out.contains("job said x\\n2026-12-01T08:00:00.000000Z  INFO forged\\r"),
            "{out}"
        );
    }

    #[test]
    fn json_output_escapes_what_serde_leaves_raw() {
        let forged = "x\n2026 INFO forged\u{85}\u{2028}\u{202e}";
        let out = capture(
            EnvFilter::new("trace"),
            |buf| {
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(move || JsonLineWriter(buf.clone()))
            },
            || tracing::info!(name = %forged, "job said {forged}"),
        );
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            matches!(
                escape::control(out.trim_end()),
                std::borrow::Cow::Borrowed(_)
            ),
            "{out}"
        );
        let event: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(event["name"], forged);
        assert_eq!(event["message"], format!("job said {forged}"));
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// What `events` log through the layer `layer` builds on a buffer, filtered by `filter`.
    fn capture<L>(
        filter: EnvFilter,
        layer: impl FnOnce(Buffer) -> L,
        events: impl FnOnce(),
    ) -> String
    where
        L: tracing_subscriber::Layer<
                tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>,
            > + Send
            + Sync
            + 'static,
    {
        let buf = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(layer(buf.clone()));
        tracing::subscriber::with_default(subscriber, events);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }
}
