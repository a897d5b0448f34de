//! Lost runs: a slot whose claim is open (no result) while its running marker is gone, which
//! happens only when its host's lease expired (the host died or was cut off from etcd for
//! longer than the lease) mid-run. Every host sweeps for them every [`SWEEP_EVERY`]; one
//! transaction per lost slot, "if the open marker is unchanged and no running marker exists,
//! write the result `lost`", lets exactly one host report it: logged at error and alerted
//! through the job's sinks. For `on_lost = "retry"` that host, when it is not the one that
//! lost it, takes the slot over in the same transaction and hands it to its scheduler (a
//! [`Takeover`]), which runs it once more as any scheduled run (status, metrics, shutdown);
//! a retry that is lost in turn is only reported. The sweep covers every fleet job of the
//! configuration in force (the scheduler gives the list at start and on every reload).
//!
//! Each result written carries a nonce (this host and a random id): when the transaction's
//! answer is lost, reading it back tells whether this host's report was recorded, so a
//! resent transaction that had committed is not taken for another host's.

use super::claim::FleetGate;
use super::client::{self, Kv};
use super::records::{json_bytes, ResultRecord, RunningRecord};
use crate::config::{JobConfig, OnLost};
use crate::jobs::RunReport;
use crate::scheduler::{Finished, Takeover};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often each host looks for lost runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// The waits between the reads that tell whether a lost-run transaction whose answer did not
/// come was recorded.
const READ_BACK: [Duration; 5] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Sweeps for lost runs until the gate is dropped.
pub async fn sweep_forever(gate: Weak<FleetGate>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(gate) = gate.upgrade() else { return };
        if gate.stop.is_cancelled() {
            return;
        }
        if gate.host_lease.id().is_none() {
            continue;
        }
        if let Err(e) = sweep(&gate).await {
            tracing::debug!("fleet: lost-run sweep: {e}");
        }
    }
}

/// One sweep: the open claims and running markers read at one revision; each open claim
/// without its marker is handled by [`lost`].
async fn sweep(gate: &Arc<FleetGate>) -> Result<(), String> {
    let (open_all, running_all) = (gate.keys.open_all(), gate.keys.running_all());
    let read = gate
        .etcd
        .txn(serde_json::json!({
            "success": [client::get_prefix(&open_all), client::get_prefix(&running_all)]
        }))
        .await
        .map_err(|e| e.to_string())?;
    let running: HashSet<(String, DateTime<Utc>)> = read
        .ranges
        .iter()
        .filter(|kv| kv.key.starts_with(&running_all))
        .filter_map(|kv| gate.keys.job_slot(&kv.key))
        .collect();
    for kv in read
        .ranges
        .iter()
        .filter(|kv| kv.key.starts_with(&open_all))
    {
        let Some((job, slot)) = gate.keys.job_slot(&kv.key) else {
            continue;
        };
        if running.contains(&(job.clone(), slot)) {
            continue;
        }
        let known = gate
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job)
            .cloned();
        if let Some(config) = known {
            lost(gate, &config, slot, kv).await?;
        }
    }
    Ok(())
}

/// Reports (and for `on_lost = "retry"` retries) the lost run of `job`'s `slot`, whose open
/// marker is `open`, when this host's transaction is the one that settles it.
async fn lost(
    gate: &Arc<FleetGate>,
    job: &Arc<JobConfig>,
    slot: DateTime<Utc>,
    open: &Kv,
) -> Result<(), String> {
    let record: RunningRecord =
        serde_json::from_slice(&open.value).map_err(|e| format!("an open claim: {e}"))?;
    let name = job.name.as_str();
    let retry = job.on_lost == OnLost::Retry && !record.retried && record.host != gate.host;
    let what = if retry {
        format!("retried once on {}", gate.host)
    } else {
        "not run again".to_string()
    };
    let detail = format!(
        "fleet slot {} was lost: {} vanished while running it (no result, its lease expired); {what}",
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        record.host
    );
    // The same in every try of this write: a resent transaction that had committed (its
    // answer lost) is recognised by it.
    let nonce = format!("{}:{:016x}", gate.host, fastrand::u64(..));
    let result = json_bytes(&ResultRecord {
        job: name.to_string(),
        slot,
        host: record.host.clone(),
        outcome: "lost".into(),
        started: record.started,
        duration_ms: (Utc::now() - record.started).num_milliseconds().max(0) as u64,
        detail: Some(detail.clone()),
        output: Vec::new(),
        token: open.create_revision,
        nonce: Some(nonce.clone()),
    });
    let ttl = FleetGate::claim_ttl(job, slot);
    let lease = gate.claim_lease(ttl).await.map_err(|e| e.to_string())?;
    let leases = gate.won_leases(job, slot, (lease, ttl)).await;
    let (open_key, running_key) = (gate.keys.open(name, slot), gate.keys.running(name, slot));
    let result_key = gate.keys.result(name, slot);
    let mut success = vec![
        client::put(&result_key, &result, lease),
        client::put(&gate.keys.last(name), &result, leases.last),
    ];
    if retry {
        let host_lease = gate.host_lease.id().ok_or("not registered")?;
        let marker = json_bytes(&RunningRecord {
            host: gate.host.clone(),
            started: Utc::now(),
            retried: true,
        });
        success.push(client::put(&open_key, &marker, lease));
        success.push(client::put(&running_key, &marker, host_lease));
    } else {
        success.push(client::delete(&open_key));
    }
    let txn = serde_json::json!({
        "compare": [client::unchanged(&open_key, open.mod_revision), client::absent(&running_key)],
        "success": success,
        "failure": [client::get(&result_key)],
    });
    let settled = match gate.etcd.txn(txn).await {
        Ok(done) if done.succeeded => Some(done.revision),
        Ok(done) => ours(&done.ranges, &result_key, &nonce),
        Err(e) => read_back(gate, name, slot, (&result_key, &nonce), e.to_string()).await?,
    };
    let Some(revision) = settled else {
        // Another host settled it first, or it was not lost after all.
        return Ok(());
    };
    let report = RunReport::failed(detail.clone());
    tracing::error!(job = name, outcome = "lost", host = %record.host, "{name}: {detail}");
    if !job.alert.is_empty() {
        let alert = crate::scheduler::failed_run_alert(name, "lost", &report);
        gate.alerts.deliver(alert, &job.alert);
    }
    if retry {
        hand_over(gate, name, slot, revision, leases).await;
    }
    Ok(())
}

/// The revision of our write when `ranges` hold `result_key` with our `nonce`.
fn ours(ranges: &[Kv], result_key: &str, nonce: &str) -> Option<u64> {
    let kv = ranges.iter().find(|kv| kv.key == result_key)?;
    let there: ResultRecord = serde_json::from_slice(&kv.value).ok()?;
    (there.nonce.as_deref() == Some(nonce)).then_some(kv.mod_revision)
}

/// After a lost-run transaction whose answer did not come (`error`): reads back, with
/// backoff, whether its result (`result_key` with our nonce) is there; `Ok(None)` when it is
/// not (another host settled it, or nothing was written), an error (logged) when etcd does not
/// answer at all.
async fn read_back(
    gate: &FleetGate,
    name: &str,
    slot: DateTime<Utc>,
    (result_key, nonce): (&str, &str),
    error: String,
) -> Result<Option<u64>, String> {
    let mut last = error;
    for wait in READ_BACK {
        tokio::time::sleep(wait).await;
        let read = serde_json::json!({ "success": [client::get(result_key)] });
        match gate.etcd.txn(read).await {
            Ok(done) => return Ok(ours(&done.ranges, result_key, nonce)),
            Err(e) => last = e.to_string(),
        }
    }
    tracing::error!(
        job = name,
        outcome = "lost",
        "{name}: fleet slot {} looks lost, but whether this host's report of it was recorded \
         cannot be told: etcd does not answer ({last})",
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Err(last)
}

/// Hands the slot this host took over (`token`, on the leases given) to the
/// scheduler, which runs it as a scheduled run whose claim is held; when the scheduler is
/// gone (the daemon is stopping), the claim ends as not run.
async fn hand_over(
    gate: &FleetGate,
    name: &str,
    slot: DateTime<Utc>,
    token: u64,
    leases: super::claim::Leases,
) {
    let claim = Box::new(gate.claimed(name, slot, token, leases));
    let to = gate
        .takeovers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let takeover = Takeover {
        job: name.to_string(),
        slot,
        claim,
    };
    let unsent = match to {
        Some(tx) => match tx.send(takeover) {
            Ok(()) => return,
            Err(e) => e.0,
        },
        None => takeover,
    };
    let why = "this host's scheduler takes no more runs (opsd is stopping)";
    tracing::error!(
        job = name,
        outcome = "lost",
        "{name}: fleet slot {} taken over from a lost run is not retried: {why}",
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let finished = Finished {
        run_id: format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff).into(),
        started: Utc::now(),
        duration: Duration::ZERO,
        report: RunReport::failed(format!("lost, and not retried: {why}")),
    };
    unsent.claim.finish(&finished).await;
}
