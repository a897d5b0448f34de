//! What `opsd fleet status` shows, read from etcd in one transaction: every registered host
//! (version, since, last seen) and, for each fleet job of the job file, its next slot, the
//! run going now and where, and its last run (where it ran, how it ended).

use super::client::{self, Etcd};
use super::keys::Keys;
use super::records::{ResultRecord, RunningRecord};
use super::registration::HostRecord;
use crate::config::{Config, Scope};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The fleet as `opsd fleet status` shows it.
#[derive(Debug, Serialize)]
pub struct FleetStatus {
    /// The hosts registered now.
    pub hosts: Vec<HostRecord>,
    /// Each fleet job of the job file.
    pub jobs: Vec<FleetJob>,
}

/// One fleet job's row.
#[derive(Debug, Serialize)]
pub struct FleetJob {
    /// Its name.
    pub name: String,
    /// Its next slot from now.
    pub next: Option<DateTime<Utc>>,
    /// The host running one of its slots now, if any, and since when.
    pub running: Option<(String, DateTime<Utc>)>,
    /// Its latest result.
    pub last: Option<ResultRecord>,
}

/// Reads the status of `cfg`'s fleet from `etcd`.
pub async fn read(etcd: &Etcd, cfg: &Config) -> Result<FleetStatus, String> {
    let prefix = cfg.fleet.as_ref().map_or("/opsd", |f| f.prefix.as_str());
    let keys = Keys::new(prefix);
    let read = etcd
        .txn(serde_json::json!({ "success": [
            client::get_prefix(&keys.hosts()),
            client::get_prefix(&keys.last_all()),
            client::get_prefix(&keys.running_all()),
        ]}))
        .await
        .map_err(|e| e.to_string())?;
    let under = |p: String| {
        let kvs: Vec<_> = read
            .ranges
            .iter()
            .filter(|kv| kv.key.starts_with(&p))
            .cloned()
            .collect();
        kvs
    };
    let hosts = under(keys.hosts())
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    let running = under(keys.running_all());
    let last = under(keys.last_all());
    let now = Utc::now();
    let jobs = cfg
        .jobs
        .values()
        .filter(|j| j.scope == Scope::Fleet)
        .map(|j| FleetJob {
            name: j.name.clone(),
            next: j.schedule.as_ref().and_then(|s| s.next_after(now)),
            running: running
                .iter()
                .filter(|kv| keys.job_slot(&kv.key).is_some_and(|(job, _)| job == j.name))
                .filter_map(|kv| serde_json::from_slice::<RunningRecord>(&kv.value).ok())
                .map(|r| (r.host, r.started))
                .next(),
            last: last
                .iter()
                .find(|kv| kv.key == keys.last(&j.name))
                .and_then(|kv| serde_json::from_slice(&kv.value).ok()),
        })
        .collect();
    Ok(FleetStatus { hosts, jobs })
}
