//! Fleet scope on etcd v3: a fleet job runs once per fleet, not once per host. Each host that
//! finds a slot due claims it in etcd (`claim`); exactly one wins and runs it, with the claim's
//! revision as fencing token; the others do nothing. This module is the scheduler's
//! [`SlotGate`](crate::scheduler::SlotGate): the scheduler asks it, knowing nothing of etcd.
//!
//! - `client`: etcd's v3 JSON gateway over reqwest (bounded calls, endpoint failover, the
//!   clock measure of each answer).
//! - `keys`: the key layout under `[fleet].prefix`; `records`: what the keys hold.
//! - `claim`: the slot claim and the running marker.
//! - `finish`: the result of a run, fenced on its claim, kept in the state directory while
//!   etcd does not answer.
//! - `clock`: the bound on this host's clock against etcd's.
//! - `registration`: this host's kept-alive lease and `hosts/HOST`.
//! - `status`: what `opsd fleet status` reads.
//! - `lost`: the sweep that reports (and for `on_lost = "retry"` reruns) lost runs.
//!
//! It fails closed: when etcd cannot be reached, or this host's clock is off, fleet jobs do not
//! run here and say why (see docs/fleet.md for every failure).

mod claim;
pub mod client;
mod clock;
mod finish;
pub mod keys;
mod lost;
mod records;
pub mod registration;
pub mod status;

pub use claim::FleetGate;
pub use records::ResultRecord;

use crate::config::FleetSettings;
use crate::scheduler::SlotGate;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The most a TLS file (CA, certificate, key) may hold.
const TLS_FILE_CAP: u64 = 1 << 20;

/// The etcd client of `settings`, its TLS files read (each a regular file of at most
/// [`TLS_FILE_CAP`]).
pub fn client(settings: &FleetSettings) -> Result<client::Etcd, String> {
    let read = |what: &str, path: &std::path::Path| {
        crate::bounded_read::read(path, TLS_FILE_CAP)
            .map_err(|e| format!("fleet.{what} {}: {e}", path.display()))
    };
    let mut tls = client::Tls::default();
    if let Some(ca) = &settings.ca_file {
        tls.ca = Some(read("ca_file", ca)?);
    }
    if let (Some(cert), Some(key)) = (&settings.cert_file, &settings.key_file) {
        let mut pem = read("cert_file", cert)?;
        pem.push(b'\n');
        pem.extend(read("key_file", key)?);
        tls.identity = Some(pem);
    }
    client::Etcd::new(settings.endpoints.clone(), tls, settings.timeout).map_err(|e| e.to_string())
}

/// Starts this host's part of the fleet of `settings` (registration, lease keepalive, the
/// lost-run sweep alerting through `alerts`, retries and the host lease keeping their files in
/// `state_dir`) and returns its slot gate, whose background tasks end when it is dropped; must
/// be called inside the daemon's runtime, before the first fleet slot is due (a claim waits
/// for the first registration, within a bound).
pub fn start(
    settings: &FleetSettings,
    alerts: crate::alert::Dispatcher,
    state_dir: std::path::PathBuf,
) -> Result<Arc<dyn SlotGate>, String> {
    let etcd = Arc::new(client(settings)?);
    let keys = keys::Keys::new(&settings.prefix);
    let lease = Arc::new(registration::HostLease::default());
    let (ready, registered) = (CancellationToken::new(), CancellationToken::new());
    let me = registration::Me {
        host: settings.host.clone(),
        state_dir: state_dir.clone(),
    };
    tokio::spawn(registration::keep(
        etcd.clone(),
        keys.clone(),
        me,
        lease.clone(),
        (ready.clone(), registered.clone()),
    ));
    let keepalive = Arc::new(registration::KeepAlive::new(registered));
    tracing::info!(host = %settings.host, endpoints = settings.endpoints.len(),
        "fleet: joining as {} through {} etcd endpoint(s)", settings.host, settings.endpoints.len());
    finish::resume(&etcd, &keys, &state_dir);
    let gate = Arc::new(FleetGate::new(
        etcd,
        settings,
        (lease, keepalive, ready),
        CancellationToken::new(),
        alerts,
        state_dir,
    ));
    tokio::spawn(lost::sweep_forever(Arc::downgrade(&gate)));
    Ok(gate)
}
