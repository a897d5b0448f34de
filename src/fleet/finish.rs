//! The end of a fleet run: one transaction writes its result (`results/JOB/SLOT`,
//! `last/JOB`) and ends its open and running markers, **fenced on the claim**: it holds only if
//! `open/JOB/SLOT` is still the one this run's claim wrote (its mod revision is the claim's
//! fencing token). A host that was cut off long enough for its run to be declared lost (and
//! perhaps retried elsewhere) and then finishes writes nothing: it logs at error that its run
//! did happen but its result was superseded, instead of overwriting the retry's result and
//! deleting the retry's running marker.
//!
//! The result matters as long as its claim is kept (the claims lease); so while etcd does not
//! answer, it is kept in the state directory (`fleet-results/JOB.SLOT.json`) and written with
//! backoff until then, by this daemon or, after a restart, by the next one. Every try carries
//! the same nonce, so a try whose answer was lost but that committed is recognised as ours.

use super::client::{self, Etcd, EtcdError};
use super::keys::Keys;
use super::records::{json_bytes, ResultRecord, RunningRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The waits between the quick tries made before a result is kept on disk.
const QUICK: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(600)];
/// The longest wait between two tries once the result is kept on disk.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// The folder of the state directory where results not written yet are kept.
const DIR: &str = "fleet-results";

/// A result to write, as kept in the state directory until it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    /// The result (its `token` is the claim's fencing token, its `nonce` ours).
    pub record: ResultRecord,
    /// The claims lease the result lives on.
    pub lease: i64,
    /// The lease `last/JOB` lives on (0: none, as in a result kept by an older opsd).
    #[serde(default)]
    pub last_lease: i64,
    /// Until when writing it can still matter (the claim is surely kept until then).
    pub until: DateTime<Utc>,
    /// The run's id, for the log.
    pub run_id: String,
}

/// How a try to write a result ended, when etcd answered.
enum Written {
    /// It is written (by this try or an earlier one whose answer was lost).
    Done,
    /// The slot was settled without it: declared lost, and retried or reported.
    Superseded(String),
}

/// Writes `pending` in etcd: a few quick tries, then, while etcd does not answer, keeps it in
/// `state_dir` and goes on trying in the background with backoff until `pending.until`.
pub(super) async fn finish(etcd: Arc<Etcd>, keys: Keys, state_dir: &Path, pending: Pending) {
    let mut last = match try_write(&etcd, &keys, &pending).await {
        Ok(w) => return report(&pending, w, false),
        Err(e) => e.to_string(),
    };
    for wait in QUICK {
        tokio::time::sleep(wait).await;
        match try_write(&etcd, &keys, &pending).await {
            Ok(w) => return report(&pending, w, false),
            Err(e) => last = e.to_string(),
        }
    }
    let file = file_of(state_dir, &pending);
    let kept = match crate::state::write_json(&file, &pending) {
        Ok(()) => format!("kept in {}", file.display()),
        Err(e) => format!("cannot keep it in {} ({e})", file.display()),
    };
    let r = &pending.record;
    tracing::error!(job = %r.job, run_id = %pending.run_id,
        "{}: cannot record the end of fleet slot {} in etcd yet ({last}); {kept}, retried until {}",
        r.job, stamp(r.slot), stamp(pending.until));
    tokio::spawn(keep_writing(etcd, keys, file, pending));
}

/// Writes every result an earlier daemon kept in `state_dir` (its etcd was away), each in
/// the background.
pub(super) fn resume(etcd: &Arc<Etcd>, keys: &Keys, state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir.join(DIR)) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match crate::state::read_json::<Pending>(&path) {
            Ok(Some(pending)) => {
                tokio::spawn(keep_writing(etcd.clone(), keys.clone(), path, pending));
            }
            Ok(None) => {}
            Err(e) => set_aside(&path, &e.to_string()),
        }
    }
}

/// Logs that the kept result in `path` cannot be read (`why`) and renames it to `.bad`, so
/// that it is not tried again at every start (and can be looked at).
fn set_aside(path: &Path, why: &str) {
    let bad = path.with_extension("json.bad");
    let moved = match std::fs::rename(path, &bad) {
        Ok(()) => format!("moved aside to {}", bad.display()),
        Err(e) => format!("cannot move it aside to {} ({e})", bad.display()),
    };
    tracing::error!(
        "fleet: the kept result {} cannot be read ({why}); it is not written in etcd, {moved}",
        path.display()
    );
}

/// Tries `pending` with backoff until it is written, superseded or past its `until`; then
/// removes its `file`.
async fn keep_writing(etcd: Arc<Etcd>, keys: Keys, file: PathBuf, pending: Pending) {
    let mut wait = Duration::from_secs(1);
    let r = &pending.record;
    loop {
        if Utc::now() > pending.until {
            tracing::error!(job = %r.job, run_id = %pending.run_id,
                "{}: gave up recording the end of fleet slot {} in etcd (its claim is not kept \
                 any longer); the slot ran here ({}) but the fleet's status does not show it",
                r.job, stamp(r.slot), r.outcome);
            break;
        }
        match try_write(&etcd, &keys, &pending).await {
            Ok(w) => {
                report(&pending, w, true);
                break;
            }
            Err(e) => tracing::debug!(job = %r.job, "{}: result not written yet: {e}", r.job),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
    }
    if let Err(e) = std::fs::remove_file(&file) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("fleet: cannot remove {}: {e}", file.display());
        }
    }
}

/// Logs how writing `pending` ended (`late`: after etcd came back).
fn report(pending: &Pending, written: Written, late: bool) {
    let r = &pending.record;
    match written {
        Written::Done if late => tracing::info!(job = %r.job, run_id = %pending.run_id,
            "{}: the end of fleet slot {} is recorded in etcd now that it answers again",
            r.job, stamp(r.slot)),
        Written::Done => {}
        Written::Superseded(by) => tracing::error!(job = %r.job, run_id = %pending.run_id,
            outcome = %r.outcome,
            "{}: fleet slot {} ran on this host ({}, fencing token {}) but its result was \
             superseded: {by} while this host was out of etcd's reach; its result is not \
             recorded. The run DID happen: if the slot was retried it started twice, which is \
             what OPSD_FENCING_TOKEN is for (the retry holds a newer token)",
            r.job, stamp(r.slot), r.outcome, r.token),
    }
}

/// One try: the fenced transaction, and when its comparison fails, whose result is there.
async fn try_write(etcd: &Etcd, keys: &Keys, pending: &Pending) -> Result<Written, EtcdError> {
    let r = &pending.record;
    let (result_key, open_key) = (keys.result(&r.job, r.slot), keys.open(&r.job, r.slot));
    let value = json_bytes(r);
    let done = etcd
        .txn(serde_json::json!({
            "compare": [client::unchanged(&open_key, r.token)],
            "success": [
                client::put(&result_key, &value, pending.lease),
                client::put(&keys.last(&r.job), &value, pending.last_lease),
                client::delete(&keys.running(&r.job, r.slot)),
                client::delete(&open_key),
            ],
            "failure": [client::get(&result_key), client::get(&open_key)],
        }))
        .await?;
    if done.succeeded {
        return Ok(Written::Done);
    }
    let there = done
        .ranges
        .iter()
        .find(|kv| kv.key == result_key)
        .and_then(|kv| serde_json::from_slice::<ResultRecord>(&kv.value).ok());
    if there
        .as_ref()
        .is_some_and(|t| t.nonce.is_some() && t.nonce == r.nonce)
    {
        // An earlier try committed; its answer was lost.
        return Ok(Written::Done);
    }
    let retrier = done
        .ranges
        .iter()
        .find(|kv| kv.key == open_key)
        .and_then(|kv| serde_json::from_slice::<RunningRecord>(&kv.value).ok());
    Ok(Written::Superseded(match (retrier, there) {
        (Some(open), _) => format!("the slot was declared lost and taken over by {}", open.host),
        (None, Some(t)) if t.outcome == "lost" => "the slot was declared lost".to_string(),
        (None, Some(t)) => format!("the slot was declared lost and retried on {}", t.host),
        (None, None) => "the slot's claim is gone".to_string(),
    }))
}

/// Where `pending` is kept in `state_dir`.
fn file_of(state_dir: &Path, pending: &Pending) -> PathBuf {
    let r = &pending.record;
    state_dir
        .join(DIR)
        .join(format!("{}.{}.json", r.job, r.slot.timestamp()))
}

/// `t` as the log shows instants.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept result that cannot be read is moved aside: before, it stayed and was tried (and
    /// logged without its path) at every start.
    #[tokio::test]
    async fn a_kept_result_that_cannot_be_read_is_moved_aside() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join(DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("j.1700000000.json");
        std::fs::write(&file, "{ not json").unwrap();
        let etcd = Etcd::new(
            vec!["http://127.0.0.1:9".parse().unwrap()],
            client::Tls::default(),
            Duration::from_millis(100),
        )
        .unwrap();
        resume(&Arc::new(etcd), &Keys::new("/opsd"), state.path());
        assert!(!file.exists(), "still there to be tried again");
        assert!(
            dir.join("j.1700000000.json.bad").exists(),
            "not moved aside"
        );
    }
}
