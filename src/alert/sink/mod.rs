//! Alert sinks, each owning its configuration: the `[alerts.NAME]` sections parsed through the
//! same tagged-table parser as jobs ([`crate::field::Tagged`]), one registry row per sink type
//! ([`TYPES`]), and the check that every job's `alert = [...]` names a declared sink. The
//! configuration layer calls [`parse`] and names no sink type. Each type's folder also owns its
//! delivery (`SinkSpec`): adding a sink type is its folder, a [`TYPES`] row and a [`SinkKind`]
//! variant with its arm in `SinkKind::spec`.

mod attempt;
mod command;
mod webhook;

pub use attempt::PrepareError;
pub(crate) use attempt::{AttemptError, Deliver, SinkSpec};
pub use command::CommandSink;
pub use webhook::WebhookSink;

use crate::field::{
    did_you_mean_hint, located_in_table, valid_name, FieldError, HumanDuration, NotTagged, Tagged,
    TypeOnly,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// Every sink type, in the order `unknown alert sink type` lists them.
pub static TYPES: &[&SinkType] = &[&webhook::TYPE, &command::TYPE];

/// Default time one delivery attempt may take.
pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(10);

/// One sink type as the configuration sees it.
#[derive(Debug)]
pub struct SinkType {
    /// Its `type = "..."` name.
    pub name: &'static str,
    /// The keys of its table, `type` among them.
    pub fields: fn() -> &'static [&'static str],
    /// Reads and checks a sink of this type: `Err` for a key serde refused, `Ok(None)` when a
    /// check failed (reported in the errors).
    pub parse: ParseSink,
}

/// A sink type's parse: the table, its key (`alerts.NAME`) and the errors found so far.
pub type ParseSink =
    fn(&Spanned<DeValue<'_>>, &str, &mut Vec<FieldError>) -> Result<Option<SinkKind>, FieldError>;

/// One validated alert sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// The sink's name (the key under `[alerts]`).
    pub name: String,
    /// Where it delivers.
    pub kind: SinkKind,
}

/// The kinds of sink.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// POST the alert as JSON to a URL.
    Webhook(WebhookSink),
    /// Run a program with the alert as JSON on its stdin.
    Command(CommandSink),
}

impl SinkKind {
    /// The sink behind its type's trait: the one place that names every variant.
    pub(crate) fn spec(&self) -> &dyn SinkSpec {
        match self {
            SinkKind::Webhook(w) => w,
            SinkKind::Command(c) => c,
        }
    }

    /// The `type = "..."` name of this sink.
    pub fn type_name(&self) -> &'static str {
        self.spec().sink_type().name
    }

    /// The program the sink runs as written, if it runs one (`opsd check` looks for it).
    pub fn program(&self) -> Option<&str> {
        self.spec().program()
    }

    /// Prepares the sink's delivery once (e.g. builds a webhook's HTTP client).
    pub(crate) fn deliverer(&self) -> Result<Box<dyn Deliver>, PrepareError> {
        self.spec().deliverer()
    }
}

/// The parsed `[alerts]` section: valid sinks, and every declared name (valid or not), so a
/// job naming a broken sink is not reported twice.
#[derive(Debug, Default)]
pub struct Sinks {
    /// The sinks that validated.
    pub configs: BTreeMap<String, SinkConfig>,
    /// Every name under `[alerts]`.
    pub declared: BTreeSet<String>,
}

/// Parses the `alerts` top-level value, adding located errors to `errors`.
pub fn parse(value: Option<&Spanned<DeValue<'_>>>, errors: &mut Vec<FieldError>) -> Sinks {
    let mut sinks = Sinks::default();
    let Some(value) = value else { return sinks };
    let Some(table) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            "alerts",
            "`alerts` must be a table of [alerts.NAME] sections",
        ));
        return sinks;
    };
    for (name, sink) in table {
        let name_str = name.get_ref().to_string();
        sinks.declared.insert(name_str.clone());
        let prefix = format!("alerts.{name_str}");
        if !valid_name(&name_str) {
            errors.push(FieldError::new(
                name.span(),
                &prefix,
                "sink names may use letters, digits, '-', '_' and '.' (at most 64, not starting with '.')",
            ));
        }
        if let Some(kind) = parse_sink(sink, &prefix, errors) {
            sinks.configs.insert(
                name_str.clone(),
                SinkConfig {
                    name: name_str,
                    kind,
                },
            );
        }
    }
    sinks
}

/// One `[alerts.NAME]` table: its type through the tagged-table parser, then the type's own
/// keys; `None` when anything is wrong (all of it reported).
fn parse_sink(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<SinkKind> {
    let types: Vec<(&'static str, &'static [&'static str])> =
        TYPES.iter().map(|t| (t.name, (t.fields)())).collect();
    let family = Tagged {
        noun: "alert sink",
        member: "sink",
        not_a_table: "an alert sink must be a table, e.g. [alerts.NAME] with type = \"webhook\"",
        common: &[],
        types: &types,
    };
    let before = errors.len();
    let kind = match family.parse::<TypeOnly>(value, prefix, errors) {
        Ok(tagged) => TYPES[tagged.index],
        Err(NotTagged::NotATable(e)) => {
            errors.push(e);
            return None;
        }
        Err(NotTagged::Reported) => return None,
    };
    let table = value.get_ref().as_table()?;
    match (kind.parse)(value, prefix, errors) {
        Ok(Some(sink)) if errors.len() == before => Some(sink),
        Ok(_) => None,
        Err(e) => {
            errors.push(located_in_table(e, table, prefix));
            None
        }
    }
}

/// A sink's `timeout`, the default when unset or zero.
fn timeout(t: Option<HumanDuration>) -> Duration {
    t.map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_SINK_TIMEOUT)
}

/// Reports each name in a job's `alert = [...]` that no `[alerts.NAME]` declares.
pub fn check_refs(
    refs: &[Spanned<String>],
    declared: &BTreeSet<String>,
    prefix: &str,
) -> Vec<FieldError> {
    refs.iter()
        .filter(|r| !declared.contains(r.get_ref()))
        .map(|r| {
            let hint = did_you_mean_hint(r.get_ref(), declared.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    if declared.is_empty() {
                        " (no [alerts.NAME] sections are defined)".to_string()
                    } else {
                        let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                        format!(" (defined: {})", names.join(", "))
                    }
                });
            FieldError::new(
                r.span(),
                format!("{prefix}.alert"),
                format!("no alert sink named {:?}{hint}", r.get_ref()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
