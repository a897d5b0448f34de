//! Unit tests of the `geoip` job type: spec checks located at their keys, byte sizes, and a
//! failed edition named once.

use super::edition::StepError;
use super::*;
use crate::geoip::download::{DownloadError, DEFAULT_BASE_URL};

/// Parses a `[job]` table body as a GeoipSpec.
fn spec(body: &str) -> GeoipSpec {
    toml::from_str(body).unwrap()
}

const GOOD: &str = r#"
account_id = 123456
license_key_file = "/etc/opsd/maxmind.key"
editions = ["GeoLite2-Country-CSV", "GeoLite2-ASN-CSV"]
output_dir = "/usr/share/GeoIP"
after = ["apachectl", "graceful"]
max_download_size = "256MiB"
"#;

#[test]
fn a_good_spec_validates_and_gives_its_settings() {
    let s = spec(GOOD);
    assert!(s.validate("jobs.g").is_empty());
    let settings = s.settings();
    assert_eq!(settings.download.max_download_size, 256 << 20);
    assert_eq!(settings.download.base_url, DEFAULT_BASE_URL);
}

#[test]
fn bad_values_are_reported_with_their_keys() {
    let s = spec(
        r#"
account_id = 0
license_key_file = "maxmind.key"
editions = ["GeoLite2-Country", "GeoLite2-ASN-CSV", "GeoLite2-ASN-CSV"]
output_dir = "GeoIP"
after = []
base_url = "ftp://mirror"
max_download_size = 0
"#,
    );
    let errors = s.validate("jobs.g");
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "jobs.g.account_id",
            "jobs.g.license_key_file",
            "jobs.g.editions",
            "jobs.g.editions",
            "jobs.g.output_dir",
            "jobs.g.after",
            "jobs.g.base_url",
            "jobs.g.max_download_size"
        ]
    );
    assert!(errors[2]
        .message
        .contains("did you mean \"GeoLite2-Country-CSV\""));
    assert!(errors[3].message.contains("twice"));
}

#[test]
fn byte_sizes_parse_with_units() {
    assert_eq!(ByteSize::parse("512MiB"), Ok(ByteSize(512 << 20)));
    assert_eq!(ByteSize::parse("1 GB"), Ok(ByteSize(1_000_000_000)));
    assert_eq!(ByteSize::parse("300k"), Ok(ByteSize(300_000)));
    assert_eq!(ByteSize::parse("42"), Ok(ByteSize(42)));
    assert!(ByteSize::parse("12 parsecs").is_err());
    assert!(ByteSize::parse("MiB").is_err());
    assert!(ByteSize::parse("99999999999999GiB").is_err());
}

#[test]
fn a_failed_edition_is_named_once() {
    let edition = "GeoLite2-ASN-CSV";
    let errors = [
        StepError::Download(DownloadError::Unauthorized {
            edition: edition.into(),
            status: 401,
        }),
        StepError::Other("build failed: bad row".into()),
    ];
    for e in errors {
        let text = e.describe(edition);
        assert!(text.starts_with("GeoLite2-ASN-CSV: "), "{text}");
        assert_eq!(text.matches(edition).count(), 1, "{text}");
    }
}
