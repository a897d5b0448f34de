//! Unit tests of installing built files: new and identical files, failed checks and missing
//! sources that change nothing, escaping names, and the install lock.

use super::*;
use std::os::unix::fs::MetadataExt;

/// A staging dir with the given files, plus an output dir.
fn setup(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf, Vec<Staged>) {
    let root = tempfile::tempdir().unwrap();
    let stage = root.path().join("stage");
    let out = root.path().join("out");
    fs::create_dir_all(&stage).unwrap();
    fs::create_dir_all(&out).unwrap();
    let staged = files
        .iter()
        .map(|(name, data)| {
            let source = stage.join(name);
            fs::write(&source, data).unwrap();
            Staged {
                name: name.to_string(),
                source,
            }
        })
        .collect();
    (root, out, staged)
}

/// The output dir's file names, sorted, lock file left out.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != crate::geoip::lock::LOCK_FILE_NAME)
        .collect();
    names.sort();
    names
}

#[test]
fn new_files_are_installed_and_reported() {
    let (_root, out, staged) = setup(&[("GeoIP.dat", b"country"), ("GeoIPv6.dat", b"v6")]);
    let mut seen = Vec::new();
    let report = install(&out, &staged, Duration::ZERO, |file, tmp| {
        assert_eq!(
            tmp.parent(),
            Some(out.as_path()),
            "temp file beside its target"
        );
        assert_eq!(fs::read(tmp).unwrap(), fs::read(&file.source).unwrap());
        seen.push(file.name.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, ["GeoIP.dat", "GeoIPv6.dat"]);
    assert_eq!(listing(&out), ["GeoIP.dat", "GeoIPv6.dat"]);
    assert_eq!(fs::read(out.join("GeoIP.dat")).unwrap(), b"country");
    assert_eq!(report.changed.len(), 2);
    assert_eq!(report.changed[0].size, 7);
    assert_eq!(report.changed[0].previous_size, None);
    assert_eq!(
        report.changed[0].sha256,
        hex::encode(Sha256::digest(b"country"))
    );
    assert!(report.unchanged.is_empty());
    let mode = fs::metadata(out.join("GeoIP.dat")).unwrap().mode() & 0o777;
    assert_eq!(mode & 0o644, 0o644, "world-readable for the web server");
}

#[test]
fn identical_files_are_left_alone_and_not_reported_changed() {
    let (_root, out, staged) = setup(&[("GeoIP.dat", b"same"), ("GeoIPv6.dat", b"new")]);
    fs::write(out.join("GeoIP.dat"), b"same").unwrap();
    fs::write(out.join("GeoIPv6.dat"), b"old!").unwrap();
    let inode = fs::metadata(out.join("GeoIP.dat")).unwrap().ino();
    let report = install(&out, &staged, Duration::ZERO, |_, _| Ok(())).unwrap();
    assert_eq!(report.unchanged, ["GeoIP.dat"]);
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.changed[0].name, "GeoIPv6.dat");
    assert_eq!(report.changed[0].previous_size, Some(4));
    assert_eq!(fs::metadata(out.join("GeoIP.dat")).unwrap().ino(), inode);
    assert_eq!(fs::read(out.join("GeoIPv6.dat")).unwrap(), b"new");
}

#[test]
fn a_failed_check_leaves_every_installed_file_as_it_was() {
    let (_root, out, staged) = setup(&[("GeoIP.dat", b"new-a"), ("GeoIPv6.dat", b"new-b")]);
    fs::write(out.join("GeoIP.dat"), b"old-a").unwrap();
    fs::write(out.join("GeoIPv6.dat"), b"old-b").unwrap();
    let err = install(&out, &staged, Duration::ZERO, |file, _| {
        if file.name == "GeoIPv6.dat" {
            Err("1.2.3.4 gave XX, the CSV says AU".to_string())
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(
        matches!(&err, InstallError::Verify { name, message } if name == "GeoIPv6.dat" && message.contains("AU")),
        "{err}"
    );
    assert_eq!(fs::read(out.join("GeoIP.dat")).unwrap(), b"old-a");
    assert_eq!(fs::read(out.join("GeoIPv6.dat")).unwrap(), b"old-b");
    assert_eq!(
        listing(&out),
        ["GeoIP.dat", "GeoIPv6.dat"],
        "no temp file left"
    );
}

#[test]
fn a_missing_source_fails_without_touching_anything() {
    let (_root, out, mut staged) = setup(&[("GeoIP.dat", b"new")]);
    fs::write(out.join("GeoIP.dat"), b"old").unwrap();
    staged.push(Staged {
        name: "GeoIPv6.dat".into(),
        source: out.join("does-not-exist"),
    });
    let err = install(&out, &staged, Duration::ZERO, |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, InstallError::Io { .. }), "{err}");
    assert_eq!(fs::read(out.join("GeoIP.dat")).unwrap(), b"old");
    assert_eq!(listing(&out), ["GeoIP.dat"]);
}

#[test]
fn names_that_leave_the_directory_are_refused() {
    for bad in ["../GeoIP.dat", "sub/GeoIP.dat", ".hidden", ""] {
        let (_root, out, mut staged) = setup(&[("GeoIP.dat", b"x")]);
        staged[0].name = bad.to_string();
        let err = install(&out, &staged, Duration::ZERO, |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, InstallError::BadName(_)), "{bad}: {err}");
        assert!(listing(&out).is_empty());
    }
}

#[test]
fn a_held_lock_fails_the_install_and_leftovers_are_cleaned_next_time() {
    let (_root, out, staged) = setup(&[("GeoIP.dat", b"new")]);
    let held = DirLock::acquire(&out, Duration::ZERO).unwrap();
    let err = install(&out, &staged, Duration::from_millis(150), |_, _| Ok(())).unwrap_err();
    assert!(
        matches!(err, InstallError::Lock(LockError::Busy { .. })),
        "{err}"
    );
    assert!(listing(&out).is_empty());
    drop(held);
    fs::write(out.join(".GeoIP.dat.opsd-tmp.1.deadbeef"), b"crash").unwrap();
    install(&out, &staged, Duration::ZERO, |_, _| Ok(())).unwrap();
    assert_eq!(listing(&out), ["GeoIP.dat"]);
}
