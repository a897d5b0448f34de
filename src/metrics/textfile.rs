//! The file for node_exporter's textfile collector (`[metrics] textfile`): written at start,
//! then rewritten after each run and reload, atomically (a temporary file renamed over it, so
//! the collector never reads half a file; its name does not end in `.prom`, so the collector
//! skips it). A write that fails (full disk, a directory the sandbox does not allow) is logged
//! at error once, not at every run, and once more when it works again or fails differently;
//! the daemon goes on either way.

use super::{Metrics, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes `path` now, and again whenever `metrics` changes, until the daemon's loop stops.
pub async fn write_on_change(path: PathBuf, metrics: Arc<Metrics>, source: Source) {
    let mut failing: Option<std::io::ErrorKind> = None;
    loop {
        let Some(answer) = metrics.scrape(&source).await else {
            return;
        };
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::atomic_file::write_unsynced(&target, answer.text().as_bytes())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        failing = log_change(&path, failing, written.err());
        metrics.changed().await;
    }
}

/// Logs a write's result when it differs from the last one (`was`: the kind of error the
/// last write failed with); returns what this one failed with.
fn log_change(
    path: &Path,
    was: Option<std::io::ErrorKind>,
    error: Option<std::io::Error>,
) -> Option<std::io::ErrorKind> {
    let path = path.display();
    match (was, error) {
        (None, None) => None,
        (Some(_), None) => {
            tracing::info!(file = %path, "metrics: {path} is written again");
            None
        }
        (was, Some(e)) => {
            if was != Some(e.kind()) {
                tracing::error!(file = %path,
                    "metrics: cannot write {path}: {e}; node_exporter shows stale figures \
                     until it can be written (tried again after each run; logged again only \
                     when this changes)");
            }
            Some(e.kind())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_change;
    use std::io::{Error, ErrorKind};
    use std::path::Path;

    #[test]
    fn a_failing_write_is_remembered_by_kind_and_forgotten_once_it_works() {
        let path = Path::new("/x/opsd.prom");
        let full = || Some(Error::from(ErrorKind::StorageFull));
        assert_eq!(log_change(path, None, None), None);
        assert_eq!(log_change(path, None, full()), Some(ErrorKind::StorageFull));
        assert_eq!(
            log_change(path, Some(ErrorKind::StorageFull), full()),
            Some(ErrorKind::StorageFull)
        );
        assert_eq!(log_change(path, Some(ErrorKind::StorageFull), None), None);
    }
}
