//! Unit tests of the inotify wake-ups: a write to a file renamed away, a name arriving, a
//! directory removed, the queue overflowing, and the watch limit's error.

use super::*;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The changes reported within a few seconds (fails if none come).
async fn next(c: &mut Changes) -> Vec<Change> {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("no inotify event within 10 s")
        .unwrap()
}

/// Nothing is reported within 200 ms.
async fn quiet(c: &mut Changes) -> bool {
    tokio::time::timeout(Duration::from_millis(200), c.next())
        .await
        .is_err()
}

fn target(f: &std::fs::File, name: &Path) -> FileTarget {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().unwrap();
    FileTarget {
        id: (m.dev(), m.ino()),
        via: PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
        name: name.to_path_buf(),
    }
}

#[tokio::test]
async fn a_file_renamed_away_still_wakes_and_names_in_its_directory_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(&log, b"").unwrap();
    let reader = std::fs::File::open(&log).unwrap();
    let mut c = Changes::new().unwrap();
    let dirs = BTreeSet::from([dir.path().to_path_buf()]);
    let out = c.set(&dirs, &[target(&reader, &log)]);
    assert!(
        out.new_dir && out.new_file && out.error.is_none(),
        "{out:?}"
    );
    assert_eq!(c.watching(), (1, 1));
    assert!(!c.set(&dirs, &[target(&reader, &log)]).new_file);

    let rotated = dir.path().join("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let got = next(&mut c).await;
    assert!(
        got.contains(&Change::Name {
            path: log.clone(),
            arrived: false,
            dir: false
        }) && got.contains(&Change::Name {
            path: rotated.clone(),
            arrived: true,
            dir: false
        }),
        "{got:?}"
    );
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(&rotated)
        .unwrap();
    w.write_all(b"late line\n").unwrap();
    assert_eq!(next(&mut c).await, [Change::File]);

    // No longer wanted: no more wake-ups for it.
    c.set(&dirs, &[]);
    assert_eq!(c.watching(), (1, 0));
    w.write_all(b"another\n").unwrap();
    assert!(quiet(&mut c).await);
}

#[tokio::test]
async fn a_removed_directory_is_reported_and_a_missing_one_skipped() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let mut c = Changes::new().unwrap();
    let missing = top.path().join("nope");
    let out = c.set(&BTreeSet::from([dir.clone(), missing]), &[]);
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(c.watching(), (1, 0));
    std::fs::remove_dir(&dir).unwrap();
    assert!(next(&mut c).await.contains(&Change::DirGone));
    assert_eq!(c.watching(), (0, 0));
}

/// More names created than the kernel queues (`max_queued_events`) while nobody reads:
/// the overflow is reported, so the watcher looks at everything.
#[tokio::test]
async fn a_queue_overflow_is_reported() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Changes::new().unwrap();
    c.set(&BTreeSet::from([dir.path().to_path_buf()]), &[]);
    for i in 0..max / 2 + 10 {
        // Two events each: created, then deleted.
        let p = dir.path().join(format!("burst-{i}"));
        std::fs::File::create(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
    }
    let mut seen = Vec::new();
    while !seen.contains(&Change::Overflow) {
        let got = next(&mut c).await;
        assert!(seen.len() < 4 * max, "no overflow reported");
        seen.extend(got);
    }
}

#[test]
fn the_watch_limit_is_told_apart_and_names_the_setting() {
    let e = failure(Path::new("/var/log/apache2/error.log"), Errno::ENOSPC);
    assert!(matches!(e, ChangesError::Limit { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("fs.inotify.max_user_watches") && text.contains("/var/log/apache2/error.log"),
        "{text}"
    );
    let e = failure(Path::new("/x"), Errno::EACCES);
    assert!(matches!(e, ChangesError::Watch { .. }), "{e:?}");
}
