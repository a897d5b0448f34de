//! This host in the fleet: a lease of [`HOST_TTL`] kept alive every [`KEEPALIVE_EVERY`], and
//! `hosts/HOST` on it (version, since, last seen). The running markers of this host's runs are
//! on the same lease, so when the host dies or is cut off they vanish within [`HOST_TTL`], and
//! the other hosts see its open claims as lost runs. Losing etcd is logged at error once, and
//! its return at info; the lease is revoked when the last [`KeepAlive`] goes: the gate holds
//! one and so does every claim in flight, so that a `[fleet]` reload (which drops the gate)
//! does not end the running markers of runs still going.
//!
//! A host name is one daemon's: registration refuses to join while `hosts/HOST` is held on a
//! lease that is not this daemon's (another opsd with the same `[fleet].host`), and says how
//! to fix it; its fleet jobs then refuse their slots. The lease of this state directory's
//! previous daemon (killed before it could revoke it) is kept in [`LEASE_FILE`] and taken
//! over at once rather than mistaken for a duplicate.

use super::client::Etcd;
use super::keys::Keys;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long this host's lease (and so its running markers) outlives its last keepalive.
pub const HOST_TTL: Duration = Duration::from_secs(6);
/// How often the lease is kept alive (and etcd's clock measured).
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);
/// How many keepalives between two rewrites of `hosts/HOST` (its `last_seen`).
const REWRITE_EVERY: u32 = 5;
/// The file in the state directory that keeps the host lease of the daemon running there.
pub const LEASE_FILE: &str = "fleet-host-lease.json";

/// What [`LEASE_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct SavedLease {
    /// The host name registered on it.
    host: String,
    /// The lease id.
    lease: i64,
}

/// What `hosts/HOST` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRecord {
    /// The host's name in the fleet.
    pub host: String,
    /// The opsd version it runs.
    pub version: String,
    /// When it (re)joined the fleet.
    pub since: DateTime<Utc>,
    /// When it last wrote this record.
    pub last_seen: DateTime<Utc>,
}

/// This host's lease id, 0 while it has none, and why it has none.
#[derive(Debug, Default)]
pub struct HostLease {
    id: AtomicI64,
    why_not: Mutex<Option<String>>,
}

impl HostLease {
    /// The lease in force, if any.
    pub fn id(&self) -> Option<i64> {
        Some(self.id.load(Ordering::SeqCst)).filter(|id| *id != 0)
    }

    /// Why this host is not registered now (for a refused claim).
    pub fn why_not(&self) -> String {
        self.why_not
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "this host is not registered in etcd (etcd out of reach)".into())
    }

    fn set(&self, id: i64) {
        let old = self.id.swap(id, Ordering::SeqCst);
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&old);
        if id != 0 {
            live.insert(id);
        }
    }

    fn set_why_not(&self, why: Option<String>) {
        *self.why_not.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// The host leases this process holds now: after a `[fleet]` reload the old registration
/// lives on (under the running markers of runs still going) beside the new one, and must not
/// be taken for a dead daemon's.
static LIVE: Mutex<std::collections::BTreeSet<i64>> = Mutex::new(std::collections::BTreeSet::new());

/// Why this host could not register.
#[derive(Debug)]
enum NotRegistered {
    /// etcd did not answer as it should.
    Etcd(String),
    /// Another daemon holds this host name.
    Duplicate(String),
}

impl From<String> for NotRegistered {
    fn from(e: String) -> Self {
        NotRegistered::Etcd(e)
    }
}

/// Keeps the registration alive while held; the last one dropped stops it (and so revokes
/// the host lease and the running markers on it).
#[derive(Debug)]
pub struct KeepAlive(CancellationToken);

impl KeepAlive {
    /// The guard of the registration task that stops with `stop`.
    pub fn new(stop: CancellationToken) -> KeepAlive {
        KeepAlive(stop)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Who this host is in the fleet: its name, and the state directory its lease is kept in.
#[derive(Debug, Clone)]
pub struct Me {
    /// `[fleet].host`.
    pub host: String,
    /// The daemon's state directory.
    pub state_dir: PathBuf,
}

/// Keeps `me` registered through `lease` until `stop`, then revokes the lease; `ready` is
/// cancelled once the first try to register has ended (in success or not).
pub async fn keep(
    etcd: Arc<Etcd>,
    keys: Keys,
    me: Me,
    lease: Arc<HostLease>,
    (ready, stop): (CancellationToken, CancellationToken),
) {
    let host = me.host.clone();
    let mut down: Option<String> = None;
    let mut since = Utc::now();
    let mut tick = 0u32;
    loop {
        let result = match lease.id() {
            None => register(&etcd, &keys, &me, &lease, &mut since).await,
            Some(id) => match etcd.keepalive(id).await {
                Ok(0) => {
                    lease.set(0);
                    tracing::error!(host = %host,
                        "fleet: this host's lease expired (etcd was out of reach for more than {} s); \
                         its running markers are gone and its runs may be reported lost; registering again",
                        HOST_TTL.as_secs());
                    register(&etcd, &keys, &me, &lease, &mut since).await
                }
                Ok(_) => {
                    tick += 1;
                    if tick % REWRITE_EVERY == 0 {
                        write_record(&etcd, &keys, &host, id, since)
                            .await
                            .map_err(NotRegistered::Etcd)
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(NotRegistered::Etcd(e.to_string())),
            },
        };
        match (result, &down) {
            (Err(e), None) => {
                let e = match e {
                    NotRegistered::Etcd(e) => {
                        tracing::error!(host = %host,
                            "fleet: {e}; fleet jobs do not run on this host until etcd answers again");
                        lease.set_why_not(Some(format!(
                            "this host is not registered in etcd ({e})"
                        )));
                        e
                    }
                    NotRegistered::Duplicate(e) => {
                        tracing::error!(host = %host, "fleet: {e}");
                        lease.set_why_not(Some(e.clone()));
                        e
                    }
                };
                down = Some(e);
            }
            (Ok(()), Some(_)) => {
                tracing::info!(host = %host, "fleet: etcd answers again; this host takes fleet slots again");
                lease.set_why_not(None);
                down = None;
            }
            _ => {}
        }
        ready.cancel();
        tokio::select! {
            () = tokio::time::sleep(KEEPALIVE_EVERY) => {}
            () = stop.cancelled() => break,
        }
    }
    if let Some(id) = lease.id() {
        lease.set(0);
        let _ = etcd.revoke(id).await;
    }
}

/// Grants a new lease and writes `hosts/HOST` on it, unless another daemon holds the name;
/// the lease of this state directory's previous daemon is revoked first.
async fn register(
    etcd: &Etcd,
    keys: &Keys,
    me: &Me,
    lease: &HostLease,
    since: &mut DateTime<Utc>,
) -> Result<(), NotRegistered> {
    let (host, key) = (me.host.as_str(), keys.host(&me.host));
    let file = me.state_dir.join(LEASE_FILE);
    let previous = previous_lease(&file, host);
    let mut ours = false;
    if let Some(holder) = holder(etcd, &key).await? {
        ours = LIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&holder);
        if ours {
            // This daemon's registration before a `[fleet]` reload: its lease stays (runs
            // still going keep their markers on it); the name moves to the new lease.
            // (Before, it was revoked here too, and the runs going were reported lost.)
        } else if Some(holder) != previous {
            return Err(duplicate(host));
        } else {
            // This state directory's previous daemon died without revoking its lease: its
            // runs are over (they were its children), so its markers may go now.
            etcd.revoke(holder).await.map_err(|e| e.to_string())?;
            tracing::info!(
                host,
                "fleet: took over the registration of this host's previous daemon"
            );
        }
    }
    let id = etcd.grant(HOST_TTL).await.map_err(|e| e.to_string())?;
    *since = Utc::now();
    let record = record(host, *since)?;
    let compare: Vec<serde_json::Value> = if ours {
        Vec::new()
    } else {
        vec![super::client::absent(&key)]
    };
    let done = etcd
        .txn(serde_json::json!({
            "compare": compare,
            "success": [super::client::put(&key, &record, id)],
        }))
        .await
        .map_err(|e| e.to_string())?;
    if !done.succeeded {
        let _ = etcd.revoke(id).await;
        return Err(duplicate(host));
    }
    lease.set(id);
    let saved = SavedLease {
        host: host.to_string(),
        lease: id,
    };
    if let Err(e) = crate::state::write_json(&file, &saved) {
        tracing::warn!(
            host,
            "fleet: cannot keep the host lease in {}: {e}; a restart after a crash \
            waits up to {} s for the old registration to expire",
            file.display(),
            HOST_TTL.as_secs()
        );
    }
    tracing::info!(host, "fleet: registered in etcd");
    Ok(())
}

/// The lease `hosts/HOST` (`key`) is held on, if it exists.
async fn holder(etcd: &Etcd, key: &str) -> Result<Option<i64>, String> {
    let done = etcd
        .txn(serde_json::json!({ "success": [super::client::get(key)] }))
        .await
        .map_err(|e| e.to_string())?;
    Ok(done
        .ranges
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.lease))
}

/// The lease this state directory's previous daemon registered `host` on, if it kept one.
fn previous_lease(file: &Path, host: &str) -> Option<i64> {
    let saved = crate::state::read_json::<SavedLease>(file).ok()??;
    (saved.host == host).then_some(saved.lease)
}

/// The refusal to join as `host` while another daemon holds it.
fn duplicate(host: &str) -> NotRegistered {
    NotRegistered::Duplicate(format!(
        "another opsd is registered in etcd as host \"{host}\" (its hosts/{host} is on a live \
         lease that is not this daemon's); two daemons with one name would confuse running \
         markers and lost runs, so this one does not join and its fleet jobs do not run here: \
         give each host its own name with host = \"NAME\" in [fleet] (default: the host name)"
    ))
}

/// The JSON of `hosts/HOST` for `host`, in the fleet since `since`.
fn record(host: &str, since: DateTime<Utc>) -> Result<Vec<u8>, String> {
    let record = HostRecord {
        host: host.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        since,
        last_seen: Utc::now(),
    };
    serde_json::to_vec(&record).map_err(|e| e.to_string())
}

/// Writes `hosts/HOST` on lease `id`.
async fn write_record(
    etcd: &Etcd,
    keys: &Keys,
    host: &str,
    id: i64,
    since: DateTime<Utc>,
) -> Result<(), String> {
    let value = record(host, since)?;
    etcd.txn(serde_json::json!({
        "success": [super::client::put(&keys.host(host), &value, id)]
    }))
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}
