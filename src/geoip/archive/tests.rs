//! Unit tests of GeoLite2 zip checks: a well-shaped zip passes; traversal, size limits, damage
//! and non-zips are refused.

use super::*;
use std::io::Write;
use zip::write::SimpleFileOptions;

/// Writes a zip with the given (name, contents) entries, deflated.
fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_geolite2_shaped_zip_passes_with_its_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zip");
    write_zip(
        &path,
        &[
            ("GeoLite2-Country-CSV_20191224/COPYRIGHT.txt", b"c"),
            (
                "GeoLite2-Country-CSV_20191224/GeoLite2-Country-Blocks-IPv4.csv",
                b"network,geoname_id\n1.0.0.0/24,1\n",
            ),
        ],
    );
    let summary = validate_zip(&path, &ZipLimits::default()).unwrap();
    assert_eq!(summary.files.len(), 2);
    assert_eq!(summary.files[1].size, 32);
    assert_eq!(summary.total_size, 33);
}

#[test]
fn traversal_and_absolute_names_are_refused() {
    for bad in [
        "../evil.csv",
        "GeoLite2/../../evil.csv",
        "/etc/cron.d/evil",
        "dir\\..\\evil",
        "C:/evil",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.zip");
        write_zip(&path, &[("GeoLite2/ok.csv", b"x"), (bad, b"x")]);
        let err = validate_zip(&path, &ZipLimits::default()).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::UnsafePath { name, .. } if name == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn entry_and_total_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let zeros = vec![0u8; 1 << 20];
    write_zip(&path, &[("d/a.csv", &zeros), ("d/b.csv", &zeros)]);
    assert!(
        std::fs::metadata(&path).unwrap().len() < 20_000,
        "compresses well"
    );
    let limits = ZipLimits {
        max_entry_size: (1 << 20) - 1,
        ..ZipLimits::default()
    };
    let err = validate_zip(&path, &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::EntryTooLarge { size, .. } if size == 1 << 20));
    let limits = ZipLimits {
        max_total_size: (2 << 20) - 1,
        ..ZipLimits::default()
    };
    let err = validate_zip(&path, &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TotalTooLarge { .. }), "{err}");
    let limits = ZipLimits {
        max_entries: 1,
        ..ZipLimits::default()
    };
    let err = validate_zip(&path, &limits).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyEntries { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_damaged_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.zip");
    let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write_zip(&path, &[("d/a.csv", &data)]);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip bytes in the middle of the compressed data (after the 30-byte local header + name).
    for b in &mut bytes[200..260] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = validate_zip(&path, &ZipLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Damaged { .. } | ArchiveError::SizeMismatch { .. }
        ),
        "{err}"
    );
}

#[test]
fn not_a_zip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zip");
    std::fs::write(&path, b"<html>error page</html>").unwrap();
    let err = validate_zip(&path, &ZipLimits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Open { .. }), "{err}");
    // The cause is in the message and not chained too, so `{:#}` prints it once.
    assert!(std::error::Error::source(&err).is_none(), "{err}");
    let chained = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(
        chained.matches("invalid Zip archive").count(),
        1,
        "{chained}"
    );
}
