//! Lost runs: a slot whose claim is open (no result) while its running marker is gone, which
//! happens only when its host's lease expired (the host died or was cut off from etcd for
//! longer than the lease) mid-run. Every host sweeps for them every [`SWEEP_EVERY`]; one
//! transaction per lost slot, "if the open marker is unchanged and no running marker exists,
//! write the result `lost`", lets exactly one host report it: logged at error and alerted
//! through the job's sinks. For `on_lost = "retry"` that host, when it is not the one that
//! lost it, takes the slot over in the same transaction and runs it once more; a retry that is
//! lost in turn is only reported.

use super::claim::{json_bytes, FleetGate, ResultRecord, RunningRecord};
use super::client::{self, Kv};
use crate::config::{JobConfig, OnLost};
use crate::jobs::RunReport;
use crate::scheduler::{execute, Claimed, Run, Trigger};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often each host looks for lost runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

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
    });
    let lease = gate
        .claim_lease(FleetGate::claim_ttl(job, slot))
        .await
        .map_err(|e| e.to_string())?;
    let (open_key, running_key) = (gate.keys.open(name, slot), gate.keys.running(name, slot));
    let mut success = vec![
        client::put(&gate.keys.result(name, slot), &result, lease),
        client::put(&gate.keys.last(name), &result, 0),
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
    let settled = gate
        .etcd
        .txn(serde_json::json!({
            "compare": [client::unchanged(&open_key, open.mod_revision), client::absent(&running_key)],
            "success": success,
        }))
        .await
        .map_err(|e| e.to_string())?;
    if !settled.succeeded {
        // Another host settled it first, or it was not lost after all.
        return Ok(());
    }
    let report = RunReport::failed(detail.clone());
    tracing::error!(job = name, outcome = "lost", host = %record.host, "{name}: {detail}");
    if !job.alert.is_empty() {
        let alert = crate::scheduler::failed_run_alert(name, "lost", &report);
        gate.alerts.deliver(alert, &job.alert);
    }
    if retry {
        let claim = gate.claimed(name, slot, settled.revision, lease);
        let (job, alerts, state_dir) = (job.clone(), gate.alerts.clone(), gate.state_dir.clone());
        tokio::spawn(async move {
            let run =
                Run::new(Trigger::Schedule(slot)).with_fencing_token(Some(claim.fencing_token()));
            let finished = execute(&job, state_dir, &alerts, run).await;
            Box::new(claim).finish(&finished).await;
        });
    }
    Ok(())
}
