//! The `type = "tls"` keys of a job and the checks serde cannot make: every target parses, the
//! `expect` table names only versions it knows, and the numbers are in range. Everything is
//! reported at once, each problem at its own key and value.

use crate::field::{de_table, misspelt_keys, unknown_key, FieldError, HumanDuration};
use crate::jobs::kind::SpecTable;
use crate::tls::{Expect, Starttls, Target};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// How long one target's probe may take unless `probe_timeout` says otherwise.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `probe_timeout` accepted (shared with `opsd tls doctor --probe-timeout`).
pub use crate::tls::MAX_PROBE_TIMEOUT;
/// How many targets are probed at once unless `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The largest `concurrency` accepted (each probe holds four connections).
pub const MAX_CONCURRENCY: i64 = 256;
/// The largest `warn_days` accepted: ten years.
pub const MAX_WARN_DAYS: i64 = 3650;
/// The keys of the `expect` table.
const EXPECT_KEYS: [&str; 3] = ["tls13", "tls12", "legacy"];

/// The keys of a `type = "tls"` job as written; [`TlsSpec`] is what they mean once checked.
#[derive(Debug, Deserialize)]
pub struct RawTlsSpec {
    /// `"host:port"`, `"[::1]:443"`, `"127.0.0.1:8443 sni=shop.example.com"`.
    targets: Spanned<Vec<Spanned<String>>>,
    /// `expect = { tls13 = true, tls12 = true, legacy = false }`: only named here so that it is
    /// a key of the type; read on its own ([`read_expect`]), so that its own unknown keys are
    /// reported at `expect.KEY`.
    #[serde(default, rename = "expect")]
    _expect: Option<IgnoredAny>,
    /// Fail when a certificate of the chain expires in fewer days than this.
    warn_days: Option<Spanned<i64>>,
    /// A PEM file of certificates trusted besides the system store.
    ca_file: Option<Spanned<String>>,
    /// How long one target's probe may take (DNS, connections and reads).
    probe_timeout: Option<Spanned<HumanDuration>>,
    /// How many targets are probed at once.
    concurrency: Option<Spanned<i64>>,
    /// `"smtp"`, `"imap"` or `"pop3"`: the STARTTLS of every target that names none itself.
    starttls: Option<Spanned<String>>,
}

/// A checked `type = "tls"` job.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSpec {
    /// The targets, in the order written, without repeats.
    pub targets: Vec<Target>,
    /// What every target must show.
    pub expect: Expect,
    /// The extra trust anchors, with the span of the value for `opsd check`.
    pub ca_file: Option<(PathBuf, Range<usize>)>,
    /// How long one target's probe may take.
    pub probe_timeout: Duration,
    /// How many targets are probed at once.
    pub concurrency: usize,
}

/// The `expect` table's keys, each optional.
#[derive(Debug, Deserialize)]
struct RawExpect {
    tls13: Option<bool>,
    tls12: Option<bool>,
    legacy: Option<bool>,
}

/// Reads and checks the spec from a job's table, adding every problem to `errors`; `None` when
/// anything is wrong.
pub fn read(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<TlsSpec> {
    let before = errors.len();
    let raw: Option<RawTlsSpec> = table.read(errors);
    let expect = read_expect(table, errors);
    let raw = raw?;
    let spec = raw.check(table.prefix, expect, errors);
    (errors.len() == before).then_some(spec)
}

/// The `expect` table on top of the defaults ([`Expect::default`]); its unknown keys and bad
/// values are reported at `jobs.NAME.expect.KEY`.
fn read_expect(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Expect {
    let mut expect = Expect::default();
    let Some(value) = table
        .value
        .get_ref()
        .as_table()
        .and_then(|t| t.get("expect"))
    else {
        return expect;
    };
    let prefix = format!("{}.expect", table.prefix);
    let Some(inner) = value.get_ref().as_table() else {
        errors.push(FieldError::new(
            value.span(),
            prefix,
            "expect must be a table, e.g. { tls13 = true, tls12 = true, legacy = false }",
        ));
        return expect;
    };
    for key in inner.keys() {
        let k = key.get_ref().as_ref();
        if !EXPECT_KEYS.contains(&k) {
            errors.push(unknown_key(
                key.span(),
                k,
                &prefix,
                &EXPECT_KEYS,
                " in expect (known: tls13, tls12, legacy)",
            ));
        }
    }
    let misspelt = misspelt_keys(inner, &EXPECT_KEYS);
    if let Some(raw) = de_table::<RawExpect>(value, &prefix, &misspelt, errors) {
        expect.tls13 = raw.tls13.unwrap_or(expect.tls13);
        expect.tls12 = raw.tls12.unwrap_or(expect.tls12);
        expect.legacy = raw.legacy.unwrap_or(expect.legacy);
    }
    expect
}

impl RawTlsSpec {
    /// Checks what serde cannot, each problem located at its key.
    fn check(self, prefix: &str, mut expect: Expect, errors: &mut Vec<FieldError>) -> TlsSpec {
        let key = |name: &str| format!("{prefix}.{name}");
        let mut targets = Vec::new();
        let mut seen = BTreeSet::new();
        let starttls = self.starttls.as_ref().and_then(|written| {
            written
                .get_ref()
                .parse::<Starttls>()
                .map_err(|reason| {
                    errors.push(FieldError::new(written.span(), key("starttls"), reason))
                })
                .ok()
        });
        if self.targets.get_ref().is_empty() {
            errors.push(FieldError::new(
                self.targets.span(),
                key("targets"),
                "targets is empty: list at least one \"host:port\", e.g. [\"www.example.com:443\"]",
            ));
        }
        for written in self.targets.get_ref() {
            match Target::parse(written.get_ref()).map(|t| t.or_starttls(starttls)) {
                Ok(target) if !seen.insert(target.to_string()) => errors.push(FieldError::new(
                    written.span(),
                    key("targets"),
                    format!("target \"{target}\" is listed twice"),
                )),
                Ok(target) => targets.push(target),
                Err(e) => errors.push(FieldError::new(
                    written.span(),
                    key("targets"),
                    e.to_string(),
                )),
            }
        }
        if let Some(days) = &self.warn_days {
            match u32::try_from(*days.get_ref()) {
                Ok(n @ 1..) if i64::from(n) <= MAX_WARN_DAYS => expect.warn_days = n,
                _ => errors.push(FieldError::new(
                    days.span(),
                    key("warn_days"),
                    format!(
                        "warn_days must be a number of days from 1 to {MAX_WARN_DAYS}, e.g. 21"
                    ),
                )),
            }
        }
        let ca_file = self.ca_file.and_then(|file| {
            let path = PathBuf::from(file.get_ref());
            if path.is_absolute() {
                Some((path, file.span()))
            } else {
                errors.push(FieldError::new(
                    file.span(),
                    key("ca_file"),
                    format!(
                        "ca_file {} is not an absolute path (e.g. \"/etc/ssl/private/company-ca.pem\")",
                        crate::field::shown(file.get_ref())
                    ),
                ));
                None
            }
        });
        let probe_timeout = match &self.probe_timeout {
            None => DEFAULT_PROBE_TIMEOUT,
            Some(t) => {
                let d = t.get_ref().0;
                if d.is_zero() || d > MAX_PROBE_TIMEOUT {
                    errors.push(FieldError::new(
                        t.span(),
                        key("probe_timeout"),
                        format!(
                            "probe_timeout must be longer than zero and at most {}",
                            humantime::format_duration(MAX_PROBE_TIMEOUT)
                        ),
                    ));
                }
                d
            }
        };
        let concurrency = match &self.concurrency {
            None => DEFAULT_CONCURRENCY,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(c) if (1..=MAX_CONCURRENCY).contains(n.get_ref()) => c,
                _ => {
                    errors.push(FieldError::new(
                        n.span(),
                        key("concurrency"),
                        format!("concurrency must be from 1 to {MAX_CONCURRENCY}"),
                    ));
                    DEFAULT_CONCURRENCY
                }
            },
        };
        TlsSpec {
            targets,
            expect,
            ca_file,
            probe_timeout,
            concurrency,
        }
    }
}
