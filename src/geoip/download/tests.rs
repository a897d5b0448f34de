//! Unit tests of the download's pure parts: Content-Disposition names, checksum files, release
//! ordering and URL building.

use super::*;

#[test]
fn content_disposition_names_and_dates() {
    assert_eq!(
        disposition_file_name("attachment; filename=GeoLite2-Country-CSV_20191224.zip").as_deref(),
        Some("GeoLite2-Country-CSV_20191224.zip")
    );
    assert_eq!(
        disposition_file_name("attachment; FileName=\"../x/GeoLite2-ASN-CSV_20240101.zip\"")
            .as_deref(),
        Some("GeoLite2-ASN-CSV_20240101.zip")
    );
    assert_eq!(disposition_file_name("attachment"), None);
    assert_eq!(
        file_name_date("GeoLite2-Country-CSV_20191224.zip").as_deref(),
        Some("20191224")
    );
    assert_eq!(
        file_name_date("GeoLite2-Country-CSV_20191224.zip.sha256").as_deref(),
        Some("20191224")
    );
    assert_eq!(file_name_date("GeoLite2-Country-CSV.zip"), None);
    assert_eq!(file_name_date("x_2019122.zip"), None);
}

#[test]
fn checksum_files_parse_strictly() {
    let hex = "a".repeat(64);
    assert_eq!(
        parse_checksum(&format!("{hex}  GeoLite2-Country-CSV_20191224.zip\n")),
        Some((
            hex.clone(),
            Some("GeoLite2-Country-CSV_20191224.zip".into())
        ))
    );
    assert_eq!(
        parse_checksum(&format!("{}\n", hex.to_uppercase())),
        Some((hex.clone(), None))
    );
    assert_eq!(parse_checksum("abc  x.zip"), None);
    assert_eq!(parse_checksum(&format!("{hex} a b")), None);
    assert_eq!(parse_checksum("<html>"), None);
}

#[test]
fn releases_compare_by_date_then_last_modified() {
    let dated = |d: &str, lm: &str| Release {
        file_name: Some(format!("E_{d}.zip")),
        date: Some(d.into()),
        last_modified: Some(lm.into()),
    };
    assert!(dated("20191224", "a").same_as(&dated("20191224", "b")));
    assert!(!dated("20191224", "a").same_as(&dated("20191231", "a")));
    let lm = |lm: Option<&str>| Release {
        last_modified: lm.map(str::to_string),
        ..Release::default()
    };
    assert!(lm(Some("Tue, 24 Dec 2019 00:00:00 GMT"))
        .same_as(&lm(Some("Tue, 24 Dec 2019 00:00:00 GMT"))));
    assert!(!lm(None).same_as(&lm(None)));
    assert_eq!(lm(None).label(), "unknown");
    assert_eq!(dated("20191224", "x").label(), "20191224");
}

#[test]
fn urls_are_built_from_the_base_and_refuse_odd_editions() {
    let client = MaxMindClient::new(
        42,
        LicenseKey::new("k"),
        DownloadConfig {
            base_url: "http://127.0.0.1:9/mirror/".into(),
            ..DownloadConfig::default()
        },
    )
    .unwrap();
    assert_eq!(
        client
            .url("GeoLite2-Country-CSV", "zip.sha256")
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/mirror/geoip/databases/GeoLite2-Country-CSV/download?suffix=zip.sha256"
    );
    assert!(matches!(
        client.url("../etc", "zip"),
        Err(DownloadError::BadUrl { .. })
    ));
    let debug = format!("{client:?}");
    assert!(debug.contains("LicenseKey(<redacted>)"), "{debug}");
}
