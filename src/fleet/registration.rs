//! This host in the fleet: a lease of [`HOST_TTL`] kept alive every [`KEEPALIVE_EVERY`], and
//! `hosts/HOST` on it (version, since, last seen). The running markers of this host's runs are
//! on the same lease, so when the host dies or is cut off they vanish within [`HOST_TTL`], and
//! the other hosts see its open claims as lost runs. Losing etcd is logged at error once, and
//! its return at info; the lease is revoked when the last [`KeepAlive`] goes: the gate holds
//! one and so does every claim in flight, so that a `[fleet]` reload (which drops the gate)
//! does not end the running markers of runs still going.

use super::client::Etcd;
use super::keys::Keys;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long this host's lease (and so its running markers) outlives its last keepalive.
pub const HOST_TTL: Duration = Duration::from_secs(6);
/// How often the lease is kept alive (and etcd's clock measured).
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(2);
/// How many keepalives between two rewrites of `hosts/HOST` (its `last_seen`).
const REWRITE_EVERY: u32 = 5;

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

/// This host's lease id, 0 while it has none.
#[derive(Debug, Default)]
pub struct HostLease(AtomicI64);

impl HostLease {
    /// The lease in force, if any.
    pub fn id(&self) -> Option<i64> {
        Some(self.0.load(Ordering::SeqCst)).filter(|id| *id != 0)
    }

    fn set(&self, id: i64) {
        self.0.store(id, Ordering::SeqCst);
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

/// Keeps `host` registered through `lease` until `stop`, then revokes the lease.
pub async fn keep(
    etcd: Arc<Etcd>,
    keys: Keys,
    host: String,
    lease: Arc<HostLease>,
    stop: CancellationToken,
) {
    let mut down: Option<String> = None;
    let mut since = Utc::now();
    let mut tick = 0u32;
    loop {
        let result = match lease.id() {
            None => register(&etcd, &keys, &host, &lease, &mut since).await,
            Some(id) => match etcd.keepalive(id).await {
                Ok(0) => {
                    lease.set(0);
                    tracing::error!(host = %host,
                        "fleet: this host's lease expired (etcd was out of reach for more than {} s); \
                         its running markers are gone and its runs may be reported lost; registering again",
                        HOST_TTL.as_secs());
                    register(&etcd, &keys, &host, &lease, &mut since).await
                }
                Ok(_) => {
                    tick += 1;
                    if tick % REWRITE_EVERY == 0 {
                        write_record(&etcd, &keys, &host, id, since).await
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match (result, &down) {
            (Err(e), None) => {
                tracing::error!(host = %host,
                    "fleet: {e}; fleet jobs do not run on this host until etcd answers again");
                down = Some(e);
            }
            (Ok(()), Some(_)) => {
                tracing::info!(host = %host, "fleet: etcd answers again; this host takes fleet slots again");
                down = None;
            }
            _ => {}
        }
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

/// Grants a new lease and writes `hosts/HOST` on it.
async fn register(
    etcd: &Etcd,
    keys: &Keys,
    host: &str,
    lease: &HostLease,
    since: &mut DateTime<Utc>,
) -> Result<(), String> {
    let id = etcd.grant(HOST_TTL).await.map_err(|e| e.to_string())?;
    *since = Utc::now();
    write_record(etcd, keys, host, id, *since).await?;
    lease.set(id);
    tracing::info!(host, "fleet: registered in etcd");
    Ok(())
}

/// Writes `hosts/HOST` on lease `id`.
async fn write_record(
    etcd: &Etcd,
    keys: &Keys,
    host: &str,
    id: i64,
    since: DateTime<Utc>,
) -> Result<(), String> {
    let record = HostRecord {
        host: host.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        since,
        last_seen: Utc::now(),
    };
    let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    etcd.txn(serde_json::json!({
        "success": [super::client::put(&keys.host(host), &value, id)]
    }))
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}
