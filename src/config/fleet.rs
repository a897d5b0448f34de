//! The `[fleet]` section: where the fleet's etcd cluster is (endpoints, TLS files), this host's
//! name in the fleet, the key prefix, and the bounds fleet claims keep (per-call timeout, the
//! largest clock offset from etcd's). Each key is checked as a job's are; a job's
//! `scope = "fleet"` needs this section (see `docs/fleet.md`).

use super::FleetSettings;
use crate::field::HumanDuration;
use crate::field::{de_table, misspelt_keys, shown, struct_fields, unknown_key, FieldError};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// Default bound on one etcd call, failover included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The bounds of `timeout`: long enough for an answer, short enough that a call ends within
/// the host lease's TTL less its keepalive period (6 s - 2 s, see `fleet::registration`).
const TIMEOUT_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(4));
/// Default largest offset between this host's clock and etcd's before claims are refused.
const DEFAULT_MAX_CLOCK_OFFSET: Duration = Duration::from_secs(2);
/// Default key prefix.
const DEFAULT_PREFIX: &str = "/opsd";

/// `[fleet]` as written (unknown keys are reported by [`parse_fleet`]).
#[derive(Debug, Deserialize)]
struct RawFleet {
    etcd: Spanned<Vec<Spanned<String>>>,
    ca_file: Option<Spanned<String>>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    timeout: Option<Spanned<HumanDuration>>,
    max_clock_offset: Option<HumanDuration>,
}

/// Reads `[fleet]`, reporting every problem at its key: unknown keys (with a "did you mean"),
/// endpoints that are not `http(s)://host:port` URLs, a key without its certificate, a bad host
/// name or prefix.
pub(super) fn parse_fleet(
    value: &Spanned<DeValue<'_>>,
    errors: &mut Vec<FieldError>,
) -> Option<FleetSettings> {
    let Some(table) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            "fleet",
            "`fleet` must be a table: a [fleet] section",
        ));
        return None;
    };
    let known = struct_fields::<RawFleet>();
    for key in table.keys() {
        let k = key.get_ref().as_ref();
        if !known.contains(&k) {
            errors.push(unknown_key(key.span(), k, "fleet", known, ""));
        }
    }
    let misspelt = misspelt_keys(table, known);
    let before = errors.len();
    let raw = de_table::<RawFleet>(value, "fleet", &misspelt, errors)?;
    let endpoints = endpoints(&raw.etcd, errors);
    let path = |v: &Option<Spanned<String>>| v.as_ref().map(|p| PathBuf::from(p.get_ref()));
    match (&raw.cert_file, &raw.key_file) {
        (Some(c), None) => errors.push(FieldError::new(
            c.span(),
            "fleet.cert_file",
            "a client certificate needs its key: add `key_file`",
        )),
        (None, Some(k)) => errors.push(FieldError::new(
            k.span(),
            "fleet.key_file",
            "a client key needs its certificate: add `cert_file`",
        )),
        _ => {}
    }
    let host = match &raw.host {
        Some(h) => {
            if !crate::field::valid_name(h.get_ref()) {
                errors.push(FieldError::new(
                    h.span(),
                    "fleet.host",
                    format!(
                        "{} is not a host name: letters, digits, '-', '_' and '.' (at most 64)",
                        shown(h.get_ref())
                    ),
                ));
            }
            h.get_ref().clone()
        }
        None => this_host(),
    };
    let prefix = match &raw.prefix {
        Some(p) => {
            let text = p.get_ref().trim_end_matches('/');
            if !text.starts_with('/') || text.contains("//") {
                errors.push(FieldError::new(
                    p.span(),
                    "fleet.prefix",
                    format!(
                        "{} is not a key prefix: write an absolute path such as \"/opsd\"",
                        shown(p.get_ref())
                    ),
                ));
            }
            text.to_string()
        }
        None => DEFAULT_PREFIX.to_string(),
    };
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, |d| d.get_ref().0);
    if !(TIMEOUT_BOUNDS.0..=TIMEOUT_BOUNDS.1).contains(&timeout) {
        if let Some(t) = &raw.timeout {
            errors.push(FieldError::new(
                t.span(),
                "fleet.timeout",
                "must be between 100ms and 4s (an etcd call must end before the host lease \
                 needs its next keepalive)",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(FleetSettings {
        endpoints,
        ca_file: path(&raw.ca_file),
        cert_file: path(&raw.cert_file),
        key_file: path(&raw.key_file),
        host,
        prefix,
        timeout,
        max_clock_offset: raw
            .max_clock_offset
            .map_or(DEFAULT_MAX_CLOCK_OFFSET, |d| d.0),
    })
}

/// The endpoints of `fleet.etcd`, each one that is not an `http(s)://host:port` URL reported.
fn endpoints(list: &Spanned<Vec<Spanned<String>>>, errors: &mut Vec<FieldError>) -> Vec<url::Url> {
    if list.get_ref().is_empty() {
        errors.push(FieldError::new(
            list.span(),
            "fleet.etcd",
            "name at least one etcd endpoint, e.g. [\"https://10.0.0.1:2379\"]",
        ));
    }
    let mut out = Vec::new();
    for e in list.get_ref() {
        match url::Url::parse(e.get_ref()) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.port_or_known_default().is_some()
                    && (u.path() == "/" || u.path().is_empty())
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                out.push(u)
            }
            _ => errors.push(FieldError::new(
                e.span(),
                "fleet.etcd",
                format!(
                    "{} is not an etcd endpoint: write \"https://HOST:2379\" (or http://), \
                     without a path or credentials",
                    shown(&crate::redact::url(e.get_ref()))
                ),
            )),
        }
    }
    out
}

/// This machine's host name, the default `fleet.host`.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, OnLost, Scope};
    use std::path::Path;

    /// The located errors of `text` as the job file, one per line.
    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("/etc/opsd/jobs.toml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
        }
    }

    const FLEET: &str = "[fleet]\netcd = [\"https://10.0.0.1:2379\", \"http://127.0.0.11:2379\"]\nhost = \"web-07\"\n";

    #[test]
    fn a_fleet_job_parses_with_its_fleet() {
        let text = format!("{FLEET}[jobs.a]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = \"true\"\nscope = \"fleet\"\non_lost = \"retry\"\n");
        let cfg = parse(Path::new("/etc/opsd/jobs.toml"), &text).unwrap();
        let fleet = cfg.fleet.unwrap();
        assert_eq!(fleet.host, "web-07");
        assert_eq!(fleet.prefix, "/opsd");
        assert_eq!(fleet.endpoints.len(), 2);
        assert_eq!(cfg.jobs["a"].scope, Scope::Fleet);
        assert_eq!(cfg.jobs["a"].on_lost, OnLost::Retry);
    }

    #[test]
    fn a_fleet_scope_without_a_fleet_section_is_located_at_scope() {
        let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nscope = \"fleet\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("/etc/opsd/jobs.toml:5:9: `jobs.a.scope`: scope = \"fleet\" needs a [fleet] section"), "{e:?}");
    }

    #[test]
    fn on_lost_on_a_host_job_and_queue_on_a_fleet_job_are_refused() {
        let text = format!("{FLEET}[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\non_lost = \"retry\"\n[jobs.b]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nscope = \"fleet\"\noverlap = \"queue\"\n");
        let e = errors(&text).join("\n");
        assert!(
            e.contains("`jobs.a.on_lost`: on_lost is for fleet jobs"),
            "{e}"
        );
        assert!(
            e.contains("`jobs.b.scope`: a fleet job's slot is claimed when it is due"),
            "{e}"
        );
    }

    #[test]
    fn bad_fleet_keys_are_each_located() {
        let e = errors("[fleet]\netcd = [\"ftp://x\", \"https://user:secret@10.0.0.1:2379\"]\ncert_file = \"/c.pem\"\nprefix = \"opsd\"\nhots = \"a\"\n").join("\n");
        assert!(
            e.contains("2:9: `fleet.etcd`: \"ftp://x/\" is not an etcd endpoint"),
            "{e}"
        );
        assert!(
            e.contains("2:20: `fleet.etcd`: \"https://10.0.0.1:2379/\" is not an etcd endpoint"),
            "{e}"
        );
        assert!(!e.contains("secret"), "a credential in an error: {e}");
        assert!(
            e.contains("`fleet.cert_file`: a client certificate needs its key"),
            "{e}"
        );
        assert!(
            e.contains("`fleet.prefix`: \"opsd\" is not a key prefix"),
            "{e}"
        );
        assert!(
            e.contains("`fleet.hots`: unknown key; did you mean `host`?"),
            "{e}"
        );
    }

    /// `@start` fires at each host's own start, so the hosts would claim different slots and
    /// each run it: refused at the schedule (before, it was accepted).
    #[test]
    fn a_fleet_job_at_start_is_refused_at_its_schedule() {
        let text = format!("{FLEET}[jobs.a]\ntype = \"command\"\nschedule = \"@start\"\ncommand = \"true\"\nscope = \"fleet\"\n");
        let e = errors(&text).join("\n");
        assert!(
            e.contains("jobs.toml:6:12: `jobs.a.schedule`: @start fires when each host starts"),
            "{e}"
        );
    }

    /// A per-call timeout must leave the host lease time for a keepalive (and must be long
    /// enough for any answer): before, "30s" or "1ms" were accepted.
    #[test]
    fn a_fleet_timeout_out_of_bounds_is_located() {
        for (value, col) in [("\"1ms\"", 11), ("\"5s\"", 11)] {
            let text = format!("{FLEET}timeout = {value}\n");
            let e = errors(&text).join("\n");
            assert!(
                e.contains(&format!(
                    "jobs.toml:4:{col}: `fleet.timeout`: must be between 100ms and 4s"
                )),
                "{value}: {e}"
            );
        }
        assert!(errors(&format!("{FLEET}timeout = \"4s\"\n")).is_empty());
        assert!(errors(&format!("{FLEET}timeout = \"100ms\"\n")).is_empty());
    }
}
