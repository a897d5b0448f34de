//! The `[metrics]` section: where the daemon publishes its Prometheus metrics. `listen` serves
//! `/metrics` and `/health` on a loopback address (any other needs `allow_remote = true`, as
//! the figures name every job); `textfile` is a file rewritten after each run for
//! node_exporter's textfile collector. Both are off unless set.

use crate::field::{de_table, misspelt_keys, shown, struct_fields, unknown_key, FieldError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::de::DeValue;
use toml::Spanned;

/// Where the metrics go; nothing is published when both are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The address `/metrics` and `/health` are served on.
    pub listen: Option<SocketAddr>,
    /// The file written for node_exporter's textfile collector (ends in `.prom`).
    pub textfile: Option<PathBuf>,
}

/// `[metrics]` as written (unknown keys are reported by [`parse_metrics`]).
#[derive(Debug, Deserialize)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
    allow_remote: Option<Spanned<bool>>,
    textfile: Option<Spanned<String>>,
}

/// Reads `[metrics]`, reporting every problem located at its key: an unknown key (with a "did
/// you mean"), a `listen` that is not `ADDRESS:PORT` or is not loopback without
/// `allow_remote = true`, a `textfile` that is not an absolute path to a `.prom` file.
pub(super) fn parse_metrics(
    value: Option<&Spanned<DeValue<'_>>>,
    errors: &mut Vec<FieldError>,
) -> MetricsConfig {
    let Some(value) = value else {
        return MetricsConfig::default();
    };
    let Some(table) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            "metrics",
            "`metrics` must be a table: a [metrics] section",
        ));
        return MetricsConfig::default();
    };
    let known = struct_fields::<RawMetrics>();
    for key in table.keys() {
        let k = key.get_ref().as_ref();
        if !known.contains(&k) {
            errors.push(unknown_key(key.span(), k, "metrics", known, ""));
        }
    }
    let misspelt = misspelt_keys(table, known);
    let Some(raw) = de_table::<RawMetrics>(value, "metrics", &misspelt, errors) else {
        return MetricsConfig::default();
    };
    let allow_remote = raw.allow_remote.as_ref().is_some_and(|a| *a.get_ref());
    let listen = raw.listen.as_ref().and_then(|l| {
        let checked = listen_address(l.get_ref(), allow_remote);
        checked
            .map_err(|why| errors.push(FieldError::new(l.span(), "metrics.listen", why)))
            .ok()
    });
    let textfile = raw.textfile.as_ref().and_then(|t| {
        textfile_path(t.get_ref())
            .map_err(|why| errors.push(FieldError::new(t.span(), "metrics.textfile", why)))
            .ok()
    });
    MetricsConfig { listen, textfile }
}

/// The address in `listen`, or why it cannot be used: not `ADDRESS:PORT`, or not loopback
/// while `allow_remote` is false.
fn listen_address(listen: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        format!(
            "{} is not ADDRESS:PORT (such as \"127.0.0.1:9746\" or \"[::1]:9746\")",
            shown(listen)
        )
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "{} is not a loopback address: the metrics name every job and are served without \
             authentication; set `allow_remote = true` in [metrics] to serve them there anyway",
            shown(listen)
        ));
    }
    Ok(addr)
}

/// The path in `textfile`, or why it cannot be used: node_exporter reads only `*.prom` files,
/// and a relative path would depend on the daemon's working directory.
fn textfile_path(textfile: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(textfile);
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", shown(textfile)));
    }
    if path.extension().is_none_or(|e| e != "prom") {
        return Err(format!(
            "{} does not end in .prom: node_exporter's textfile collector reads only *.prom files",
            shown(textfile)
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_listen_is_taken_and_another_needs_allow_remote() {
        assert_eq!(
            listen_address("127.0.0.1:9746", false).unwrap().port(),
            9746
        );
        assert!(listen_address("[::1]:9746", false).is_ok());
        let e = listen_address("0.0.0.0:9746", false).unwrap_err();
        assert!(e.contains("allow_remote = true"), "{e}");
        assert!(listen_address("0.0.0.0:9746", true).is_ok());
        let e = listen_address("localhost", false).unwrap_err();
        assert!(e.contains("ADDRESS:PORT"), "{e}");
    }

    #[test]
    fn the_textfile_is_an_absolute_prom_file() {
        assert!(textfile_path("/var/lib/node_exporter/textfile/opsd.prom").is_ok());
        assert!(textfile_path("opsd.prom").unwrap_err().contains("absolute"));
        assert!(textfile_path("/tmp/opsd.txt")
            .unwrap_err()
            .contains(".prom"));
    }
}
