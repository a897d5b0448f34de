//! The `[defaults]` section: the daemon-wide zone, shutdown wait and control-socket group, each
//! key checked as a job's are; and the zone names every `timezone` key is checked against.

use super::Defaults;
use crate::field::{
    de_table, did_you_mean_hint, misspelt_keys, shown, struct_fields, unknown_key, FieldError,
    HumanDuration,
};
use chrono_tz::Tz;
use serde::Deserialize;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// Default wait for running jobs at shutdown.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// `[defaults]` as written (unknown keys are reported by [`parse_defaults`]).
#[derive(Debug, Deserialize)]
pub(super) struct RawDefaults {
    timezone: Option<Spanned<String>>,
    shutdown_timeout: Option<HumanDuration>,
    control_group: Option<Spanned<String>>,
}

/// Reads `[defaults]` reporting every problem, as for a job: each unknown key with a "did you
/// mean", each bad value; the keys that are fine are kept.
pub(super) fn parse_defaults(
    value: &Spanned<DeValue<'_>>,
    errors: &mut Vec<FieldError>,
) -> Option<RawDefaults> {
    let Some(table) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            "defaults",
            "`defaults` must be a table: a [defaults] section",
        ));
        return None;
    };
    let known = struct_fields::<RawDefaults>();
    for key in table.keys() {
        let k = key.get_ref().as_ref();
        if !known.contains(&k) {
            errors.push(unknown_key(key.span(), k, "defaults", known, ""));
        }
    }
    let misspelt = misspelt_keys(table, known);
    de_table::<RawDefaults>(value, "defaults", &misspelt, errors)
}

/// The settings `[defaults]` gives, the built-in ones for what it leaves out.
pub(super) fn resolve_defaults(raw: Option<RawDefaults>, errors: &mut Vec<FieldError>) -> Defaults {
    let timezone = match raw.as_ref().and_then(|r| r.timezone.as_ref()) {
        Some(tz) => parse_tz(tz, "defaults.timezone").unwrap_or_else(|e| {
            errors.push(e);
            Tz::UTC
        }),
        None => system_timezone(),
    };
    let control_group = raw
        .as_ref()
        .and_then(|r| r.control_group.as_ref())
        .and_then(|g| {
            if matches!(nix::unistd::Group::from_name(g.get_ref()), Ok(Some(_))) {
                Some(g.get_ref().clone())
            } else {
                errors.push(FieldError::new(
                    g.span(),
                    "defaults.control_group",
                    format!("no such group {} on this machine", shown(g.get_ref())),
                ));
                None
            }
        });
    Defaults {
        timezone,
        shutdown_timeout: raw
            .and_then(|r| r.shutdown_timeout)
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT, |d| d.0),
        control_group,
    }
}

/// The machine's own zone (from `TZ` or `/etc/localtime`), or UTC when it cannot be told.
pub fn system_timezone() -> Tz {
    std::env::var("TZ")
        .ok()
        .map(|s| s.trim_start_matches(':').to_string())
        .or_else(|| iana_time_zone::get_timezone().ok())
        .and_then(|name| name.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// The zone named at `tz` (key `key`), or why it is not one.
pub(super) fn parse_tz(tz: &Spanned<String>, key: &str) -> Result<Tz, FieldError> {
    tz.get_ref().parse::<Tz>().map_err(|_| {
        let hint = did_you_mean_hint(
            tz.get_ref(),
            chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()),
        )
        .unwrap_or_else(|| " (an IANA name such as \"Asia/Seoul\" or \"UTC\")".to_string());
        FieldError::new(
            tz.span(),
            key,
            format!("unknown time zone {}{hint}", shown(tz.get_ref())),
        )
    })
}
