//! The `[alerts.NAME]` sections: where alerts go (a webhook or a program), validated with the
//! same located errors as jobs, and the check that every job's `alert = [...]` names one.

use super::valid_job_name;
use crate::command_line::CommandLine;
use crate::field::{
    de, did_you_mean_hint, located_in_table, struct_fields, FieldError, Head, HumanDuration,
    NotTagged, Tagged,
};
use crate::process::env;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// The `type = "..."` names of alert sinks.
pub const SINK_TYPES: &[&str] = &["webhook", "command"];

/// Default time one delivery attempt may take.
pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The `type = "..."` name of this sink.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Command(_) => "command",
        }
    }
}

/// `type = "webhook"`: an HTTP(S) endpoint.
#[derive(Clone, PartialEq)]
pub struct WebhookSink {
    /// Where to POST.
    pub url: Url,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// Shows the URL by scheme and host and the headers by name only: the URL's userinfo and path
/// and the header values (`Authorization`) are the webhook's secrets.
impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebhookSink")
            .field("url", &crate::redact::parsed(&self.url))
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `type = "command"`: a program fed the alert on stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSink {
    /// The program and its arguments, or a shell line.
    pub command: CommandLine,
    /// How long one attempt may take before the program is killed.
    pub timeout: Duration,
    /// Names of the daemon's environment variables the program may see (none by default).
    pub pass_env: Vec<String>,
}

/// `[alerts.NAME]` with `type = "webhook"` as written.
#[derive(Debug, Deserialize)]
struct RawWebhook {
    #[serde(rename = "type")]
    _kind: String,
    url: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout: Option<HumanDuration>,
}

/// `[alerts.NAME]` with `type = "command"` as written.
#[derive(Debug, Deserialize)]
struct RawCommand {
    #[serde(rename = "type")]
    _kind: String,
    command: Spanned<CommandLine>,
    timeout: Option<HumanDuration>,
    #[serde(default)]
    pass_env: Vec<Spanned<String>>,
}

/// Just the `type` key, read first to pick the schema.
#[derive(Debug, Deserialize)]
struct RawKind {
    #[serde(rename = "type")]
    kind: Spanned<String>,
}

impl Head for RawKind {
    /// The `type` key alone; the first problem with it is reported.
    fn read(
        value: &Spanned<DeValue<'_>>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        de(value, prefix).map_err(|e| errors.push(e)).ok()
    }

    fn tag(&self) -> &Spanned<String> {
        &self.kind
    }
}

/// The parsed `[alerts]` section: valid sinks, and every declared name (valid or not), so a
/// job naming a broken sink is not reported twice.
#[derive(Debug, Default)]
pub(super) struct Sinks {
    /// The sinks that validated.
    pub configs: BTreeMap<String, SinkConfig>,
    /// Every name under `[alerts]`.
    pub declared: BTreeSet<String>,
}

/// Parses the `alerts` top-level value, adding located errors to `errors`.
pub(super) fn parse(value: Option<&Spanned<DeValue<'_>>>, errors: &mut Vec<FieldError>) -> Sinks {
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
        if !valid_job_name(&name_str) {
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

/// The keys of sink type `kind` (with `type`); `None` for an unknown type.
fn sink_type_fields(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "webhook" => Some(struct_fields::<RawWebhook>()),
        "command" => Some(struct_fields::<RawCommand>()),
        _ => None,
    }
}

fn parse_sink(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<SinkKind> {
    let types: Vec<(&'static str, &'static [&'static str])> = SINK_TYPES
        .iter()
        .filter_map(|t| sink_type_fields(t).map(|fields| (*t, fields)))
        .collect();
    let family = Tagged {
        noun: "alert sink",
        member: "sink",
        not_a_table: "an alert sink must be a table, e.g. [alerts.NAME] with type = \"webhook\"",
        common: &[],
        types: &types,
    };
    let before = errors.len();
    let kind = match family.parse::<RawKind>(value, prefix, errors) {
        Ok(tagged) => tagged.head.kind,
        Err(NotTagged::NotATable(e)) => {
            errors.push(e);
            return None;
        }
        Err(NotTagged::Reported) => return None,
    };
    let table = value.get_ref().as_table()?;
    let sink = if kind.get_ref() == "webhook" {
        de::<RawWebhook>(value, prefix).map(|raw| webhook(raw, prefix, errors))
    } else {
        de::<RawCommand>(value, prefix).map(|raw| command(raw, prefix, errors))
    };
    match sink {
        Ok(Some(sink)) if errors.len() == before => Some(sink),
        Ok(_) => None,
        Err(e) => {
            errors.push(located_in_table(e, table, prefix));
            None
        }
    }
}

fn webhook(raw: RawWebhook, prefix: &str, errors: &mut Vec<FieldError>) -> Option<SinkKind> {
    let url = match Url::parse(raw.url.get_ref()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                format!(
                    "unsupported URL scheme {:?}; webhooks are http:// or https://",
                    u.scheme()
                ),
            ));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                "the URL has no host",
            ));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                // The value is not echoed: a webhook URL holds its token, and the position
                // already points at it.
                format!("invalid URL: {e} (e.g. \"https://hooks.example.com/T000/B000/XXX\")"),
            ));
            None
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let key = format!("{prefix}.headers");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(FieldError::new(
                value.span(),
                &key,
                format!("{name:?} is not a valid HTTP header name"),
            ));
        } else if HeaderValue::from_str(value.get_ref()).is_err() {
            errors.push(FieldError::new(
                value.span(),
                &key,
                format!("the value of header {name:?} has characters HTTP does not allow"),
            ));
        } else {
            headers.push((name.clone(), value.get_ref().clone()));
        }
    }
    Some(SinkKind::Webhook(WebhookSink {
        url: url?,
        headers,
        timeout: timeout(raw.timeout),
    }))
}

fn command(raw: RawCommand, prefix: &str, errors: &mut Vec<FieldError>) -> Option<SinkKind> {
    let empty = match raw.command.get_ref() {
        CommandLine::Argv(v) => v.first().is_none_or(|p| p.trim().is_empty()),
        CommandLine::Shell(s) => s.trim().is_empty(),
    };
    if empty {
        errors.push(FieldError::new(
            raw.command.span(),
            format!("{prefix}.command"),
            "the command is empty; give a program and its arguments, e.g. [\"/usr/local/bin/notify-admin\"]",
        ));
        return None;
    }
    let mut pass_env = Vec::new();
    for name in raw.pass_env {
        match env::name_problem(name.get_ref()) {
            Some(problem) => errors.push(FieldError::new(
                name.span(),
                format!("{prefix}.pass_env"),
                problem,
            )),
            None => pass_env.push(name.into_inner()),
        }
    }
    Some(SinkKind::Command(CommandSink {
        command: raw.command.into_inner(),
        timeout: timeout(raw.timeout),
        pass_env,
    }))
}

fn timeout(t: Option<HumanDuration>) -> Duration {
    t.map(|d| d.0)
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_SINK_TIMEOUT)
}

/// Reports each name in a job's `alert = [...]` that no `[alerts.NAME]` declares.
pub(super) fn check_refs(
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
