//! Slot claims, without a leader: the host that finds a fleet job's slot due runs one etcd
//! transaction "if `slots/JOB/SLOT` does not exist, create it (with this host's name), mark the
//! slot open and running". etcd serialises transactions, so exactly one host's succeeds; the
//! others read who won. The winner's revision is the run's fencing token. When the run ends,
//! one more transaction (`finish.rs`, fenced on the token) writes its result and ends the open
//! and running markers: two etcd writes per slot, whatever the number of hosts (a failed
//! comparison writes nothing). With
//! `overlap = "skip"` the claim also requires that no run of the job is going on any host, so
//! the policy holds fleet-wide.
//!
//! Claims live on a claims lease of ten times the job's period (an hour to seven days), so old
//! slots do not pile up; a slot older than half that is not claimed any more (its claim may
//! have expired), which keeps a host that was late by that much from running it twice. A run
//! that outlasts that keeps its claims lease alive until it ends ([`keep_lease`]), so its open
//! marker is still there for its fenced result: only a lost-run report or takeover (which
//! rewrites or deletes the marker) supersedes a result, never the lease running out.

use super::client::{self, Etcd, EtcdError};
use super::clock;
use super::finish::{self, Pending};
use super::keys::Keys;
use super::records::{json_bytes, ClaimRecord, ResultRecord, RunningRecord};
use super::registration::{HostLease, KeepAlive};
use crate::config::{JobConfig, Overlap};
use crate::jobs::kind::BoxFuture;
use crate::scheduler::{Claimed, Finished, SlotGate, Verdict};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The shortest and longest a claim is kept.
const CLAIM_TTL: (Duration, Duration) =
    (Duration::from_secs(3600), Duration::from_secs(7 * 86_400));
/// The shortest a job's latest result (`last/JOB`) is kept after its last run.
const LAST_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How many lines of a run's output its result keeps.
const RESULT_TAIL: usize = 5;

/// The etcd side of fleet claims; the scheduler's [`SlotGate`].
#[derive(Debug)]
pub struct FleetGate {
    pub(super) etcd: Arc<Etcd>,
    pub(super) keys: Keys,
    pub(super) host: String,
    pub(super) max_clock_offset: Duration,
    pub(super) host_lease: Arc<HostLease>,
    /// Keeps the host lease alive; each claim in flight holds it too.
    keepalive: Arc<KeepAlive>,
    /// Cancelled once the first registration has been tried: a claim waits for it (within
    /// [`FleetGate::ready_wait`]), so the first slots after a start are not refused.
    ready: CancellationToken,
    /// Claims leases by TTL in seconds: (id, when granted).
    claim_leases: Mutex<HashMap<u64, (i64, Instant)>>,
    /// The fleet jobs of the configuration in force, for the lost-run sweep.
    pub(super) jobs: Mutex<HashMap<String, Arc<JobConfig>>>,
    /// Where slots taken over from a lost run go, for the scheduler to run.
    pub(super) takeovers: Mutex<Option<crate::scheduler::Takeovers>>,
    /// Where lost runs are alerted.
    pub(super) alerts: crate::alert::Dispatcher,
    /// The daemon's state directory, for the retry of a lost run.
    pub(super) state_dir: std::path::PathBuf,
    /// Stops the lost-run sweep when the gate goes (registration ends with the last
    /// [`KeepAlive`]).
    pub(super) stop: CancellationToken,
}

impl Drop for FleetGate {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FleetGate {
    /// The gate of the fleet of `settings` on `etcd`, its running markers on `host_lease`
    /// (kept alive while its guard is held, registered once `ready` is cancelled); lost runs
    /// alerted through `alerts`, retried with their files in `state_dir`; its sweep stops
    /// with `stop`.
    pub(super) fn new(
        etcd: Arc<Etcd>,
        settings: &crate::config::FleetSettings,
        (host_lease, keepalive, ready): (Arc<HostLease>, Arc<KeepAlive>, CancellationToken),
        stop: CancellationToken,
        alerts: crate::alert::Dispatcher,
        state_dir: std::path::PathBuf,
    ) -> FleetGate {
        FleetGate {
            etcd,
            keys: Keys::new(&settings.prefix),
            host: settings.host.clone(),
            max_clock_offset: settings.max_clock_offset,
            host_lease,
            keepalive,
            ready,
            claim_leases: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            takeovers: Mutex::new(None),
            alerts,
            state_dir,
            stop,
        }
    }

    /// `job`'s period at `slot` (to its next slot), if it has a next slot.
    fn period(job: &JobConfig, slot: DateTime<Utc>) -> Option<Duration> {
        job.schedule
            .as_ref()
            .and_then(|s| s.next_after(slot))
            .and_then(|n| (n - slot).to_std().ok())
    }

    /// How long `job`'s claims are kept: ten periods, within [`CLAIM_TTL`].
    pub(super) fn claim_ttl(job: &JobConfig, slot: DateTime<Utc>) -> Duration {
        let period = Self::period(job, slot).unwrap_or(CLAIM_TTL.1);
        (period * 10).clamp(CLAIM_TTL.0, CLAIM_TTL.1)
    }

    /// How long `job`'s latest result outlives its last run: three periods, at least
    /// [`LAST_TTL`]. Every run writes it anew, so it stays while any host runs the job, and
    /// goes once the job is removed from every host's configuration (or never runs).
    pub(super) fn last_ttl(job: &JobConfig, slot: DateTime<Utc>) -> Duration {
        Self::period(job, slot).map_or(LAST_TTL, |p| (p * 3).max(LAST_TTL))
    }

    /// The leases of a won slot of `job`: its claims lease `claims` (keys on it live at least
    /// `ttl` from now) and the lease of `last/JOB`; when the latter cannot be had now, the
    /// result's `last/JOB` goes without one (as a result of an older opsd does).
    pub(super) async fn won_leases(
        &self,
        job: &JobConfig,
        slot: DateTime<Utc>,
        (claims, ttl): (i64, Duration),
    ) -> Leases {
        let last = match self.claim_lease(Self::last_ttl(job, slot)).await {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(job = %job.name, "{}: no lease for last/{}: {e}", job.name, job.name);
                0
            }
        };
        Leases { claims, ttl, last }
    }

    /// A claims lease under which keys live at least `ttl` (granted for twice that, replaced
    /// once half of it is gone).
    pub(super) async fn claim_lease(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let secs = ttl.as_secs();
        if let Some((id, granted)) = self.leases().get(&secs).copied() {
            if granted.elapsed() < ttl {
                return Ok(id);
            }
        }
        let id = self.etcd.grant(ttl * 2).await?;
        self.leases().insert(secs, (id, Instant::now()));
        Ok(id)
    }

    /// Forgets claims lease `id` (of `ttl`), which etcd no longer knows.
    fn forget_lease(&self, ttl: Duration, id: i64) {
        let mut leases = self.leases();
        if leases
            .get(&ttl.as_secs())
            .is_some_and(|(cached, _)| *cached == id)
        {
            leases.remove(&ttl.as_secs());
        }
    }

    /// How long a claim waits for the first registration: as long as registering may take
    /// (a read, a grant and a write, each within `[fleet].timeout`).
    fn ready_wait(&self) -> Duration {
        self.etcd.timeout() * 3
    }

    /// `Ok` when this host's clock may be trusted now; a reading that is missing, stale or
    /// from before a wall-clock step is measured again first.
    async fn clock_ok(&self) -> Result<(), String> {
        let max = self.max_clock_offset;
        match clock::check(self.etcd.clock(), max, clock::Now::read()) {
            Err(e) if e.wants_measure() => {
                tracing::debug!(host = %self.host, "fleet: {e}; measuring etcd's clock again");
                self.etcd
                    .measure_clock()
                    .await
                    .map_err(|m| format!("{e}, and etcd cannot be asked again: {m}"))?;
                clock::check(self.etcd.clock(), max, clock::Now::read()).map_err(|e| e.to_string())
            }
            checked => checked.map_err(|e| e.to_string()),
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (i64, Instant)>> {
        self.claim_leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The claim transaction for `job`'s `slot`, or why this host may not take part.
    async fn try_claim(&self, job: &JobConfig, slot: DateTime<Utc>) -> Result<Verdict, String> {
        if !self.ready.is_cancelled() {
            // Just started (or `[fleet]` reloaded): the first registration is under way.
            let _ = tokio::time::timeout(self.ready_wait(), self.ready.cancelled()).await;
        }
        self.clock_ok().await?;
        let host_lease = self
            .host_lease
            .id()
            .ok_or_else(|| self.host_lease.why_not())?;
        let ttl = Self::claim_ttl(job, slot);
        let age = Utc::now() - slot;
        if age > TimeDelta::from_std(ttl / 2).unwrap_or(TimeDelta::MAX) {
            return Err(format!(
                "the slot is {} s old, past the {} s its claim is surely kept",
                age.num_seconds(),
                (ttl / 2).as_secs()
            ));
        }
        let mut lease = self.claim_lease(ttl).await.map_err(|e| e.to_string())?;
        let name = job.name.as_str();
        let nonce = format!("{:016x}", fastrand::u64(..));
        let claim = json_bytes(&ClaimRecord {
            host: self.host.clone(),
            nonce: nonce.clone(),
        });
        let slot_key = self.keys.slot(name, slot);
        let marker = json_bytes(&RunningRecord {
            host: self.host.clone(),
            started: Utc::now(),
            retried: false,
        });
        // overlap = "skip" holds fleet-wide: no run of the job may be going anywhere.
        let running_of = self.keys.running_of(name);
        let mut compare = vec![client::absent(&slot_key)];
        if job.overlap == Overlap::Skip {
            compare.push(client::none_under(&running_of));
        }
        let txn = |lease: i64| {
            serde_json::json!({
                "compare": compare,
                "success": [
                    client::put(&slot_key, &claim, lease),
                    client::put(&self.keys.open(name, slot), &marker, lease),
                    client::put(&self.keys.running(name, slot), &marker, host_lease),
                ],
                "failure": [client::get(&slot_key), client::get_prefix(&running_of)],
            })
        };
        let done = match self.etcd.txn(txn(lease)).await {
            Err(e) if e.is_lease_not_found() => {
                // etcd no longer knows the cached claims lease (its data restored, the lease
                // revoked by hand): take a new one, once. (A failed transaction wrote nothing.)
                tracing::warn!(job = %name, lease,
                    "{name}: etcd no longer knows the claims lease; granting a new one");
                self.forget_lease(ttl, lease);
                lease = self.claim_lease(ttl).await.map_err(|e| e.to_string())?;
                self.etcd.txn(txn(lease)).await.map_err(|e| {
                    if e.is_lease_not_found() {
                        format!("{e}: this host's lease is gone too; it registers again")
                    } else {
                        e.to_string()
                    }
                })?
            }
            done => done.map_err(|e| e.to_string())?,
        };
        if done.succeeded {
            let leases = self.won_leases(job, slot, (lease, ttl)).await;
            return Ok(self.won(&job.name, slot, done.revision, leases));
        }
        let Some(kv) = done.ranges.iter().find(|kv| kv.key == slot_key) else {
            // Not claimed: a run of the job is still going somewhere.
            let on = done
                .ranges
                .first()
                .and_then(|kv| serde_json::from_slice::<RunningRecord>(&kv.value).ok())
                .map_or_else(|| "another host".to_string(), |r| r.host);
            return Ok(Verdict::Busy(on));
        };
        let holder: ClaimRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| format!("the claim of the slot cannot be read: {e}"))?;
        if holder.host == self.host && holder.nonce == nonce {
            // Our own claim, written by a try whose answer was lost: we won.
            let leases = self.won_leases(job, slot, (lease, ttl)).await;
            return Ok(self.won(&job.name, slot, kv.create_revision, leases));
        }
        Ok(Verdict::Taken(holder.host))
    }

    /// The verdict of a won slot with its fencing token.
    fn won(&self, job: &str, slot: DateTime<Utc>, token: u64, leases: Leases) -> Verdict {
        Verdict::Start(Box::new(self.claimed(job, slot, token, leases)))
    }

    /// The claim this host holds on `job`'s `slot`, with its token and leases.
    pub(super) fn claimed(
        &self,
        job: &str,
        slot: DateTime<Utc>,
        token: u64,
        leases: Leases,
    ) -> Claim {
        let Leases {
            claims: lease,
            ttl,
            last: last_lease,
        } = leases;
        let kept = Arc::new(Mutex::new(
            Utc::now() + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
        ));
        let stop = CancellationToken::new();
        tokio::spawn(keep_lease(
            self.etcd.clone(),
            job.to_string(),
            (lease, ttl, last_lease),
            kept.clone(),
            stop.clone(),
        ));
        Claim {
            etcd: self.etcd.clone(),
            keys: self.keys.clone(),
            host: self.host.clone(),
            job: job.to_string(),
            slot,
            token,
            lease,
            last_lease,
            until: kept,
            _lease_kept: stop.drop_guard(),
            state_dir: self.state_dir.clone(),
            _keepalive: self.keepalive.clone(),
        }
    }
}

/// Keeps claims lease `lease` (under which keys live at least `ttl` from now) alive until
/// `stop`, so that a run outlasting it still finds its open marker when it ends: each
/// keepalive is sent when half of what the lease surely has left is gone, and moves `kept`
/// (until when its keys surely live) on. The lease of `last/JOB` (`last`, 0: none), which
/// lives at least as long, is kept alive with it.
async fn keep_lease(
    etcd: Arc<Etcd>,
    job: String,
    (lease, ttl, last): (i64, Duration, i64),
    kept: Arc<Mutex<DateTime<Utc>>>,
    stop: CancellationToken,
) {
    let mut left = ttl;
    loop {
        tokio::select! {
            () = tokio::time::sleep(left / 2) => {}
            () = stop.cancelled() => return,
        }
        if last != 0 {
            if let Err(e) = etcd.keepalive(last).await {
                tracing::debug!(job = %job, "{job}: cannot keep the lease of last/{job} alive: {e}");
            }
        }
        match etcd.keepalive(lease).await {
            Ok(secs) if secs > 0 => {
                left = Duration::from_secs(secs as u64);
                let until = Utc::now() + TimeDelta::from_std(left).unwrap_or(TimeDelta::MAX);
                *kept.lock().unwrap_or_else(|p| p.into_inner()) = until;
            }
            Ok(_) => {
                // Gone (revoked by hand, or etcd's data restored): the fenced result says so.
                tracing::warn!(job = %job, lease,
                    "{job}: the claims lease of a run going on this host is gone; its result \
                     will not be recorded in etcd");
                return;
            }
            Err(e) => {
                // Tried again soon: the lease is surely alive for half of what was left.
                tracing::debug!(job = %job, "{job}: cannot keep the claims lease alive: {e}");
                left = (left / 2).max(Duration::from_secs(2));
            }
        }
    }
}

impl SlotGate for FleetGate {
    fn claim<'a>(&'a self, job: &'a JobConfig, slot: DateTime<Utc>) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            self.try_claim(job, slot)
                .await
                .unwrap_or_else(Verdict::Refused)
        })
    }

    fn set_jobs(&self, jobs: Vec<Arc<JobConfig>>) {
        let jobs = jobs.into_iter().map(|j| (j.name.clone(), j)).collect();
        *self.jobs.lock().unwrap_or_else(|p| p.into_inner()) = jobs;
    }

    fn offer_takeovers(&self, to: crate::scheduler::Takeovers) {
        *self.takeovers.lock().unwrap_or_else(|p| p.into_inner()) = Some(to);
    }
}

/// The leases a won slot's keys go on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leases {
    /// The claims lease (`slots/`, `open/`, `results/`).
    pub claims: i64,
    /// How long keys on `claims` live at least, from the claim.
    pub ttl: Duration,
    /// The lease of `last/JOB` (0: none).
    pub last: i64,
}

/// A slot this host won.
pub(super) struct Claim {
    etcd: Arc<Etcd>,
    keys: Keys,
    host: String,
    job: String,
    slot: DateTime<Utc>,
    token: u64,
    lease: i64,
    /// The lease its `last/JOB` goes on (0: none).
    last_lease: i64,
    /// Until when its claim is surely kept (moved on by [`keep_lease`] while the run goes):
    /// writing its result matters until then.
    until: Arc<Mutex<DateTime<Utc>>>,
    /// Stops [`keep_lease`] when the claim ends.
    _lease_kept: tokio_util::sync::DropGuard,
    /// Where its result is kept while etcd does not answer.
    state_dir: std::path::PathBuf,
    /// The host lease under this run's running marker lives until the run has ended, even if
    /// the gate is replaced meanwhile (a `[fleet]` reload).
    _keepalive: Arc<KeepAlive>,
}

impl Claimed for Claim {
    fn fencing_token(&self) -> u64 {
        self.token
    }

    fn finish<'a>(self: Box<Self>, run: &'a Finished) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let output = &run.report.output;
            let record = ResultRecord {
                job: self.job.clone(),
                slot: self.slot,
                host: self.host.clone(),
                outcome: run.report.outcome.as_str().to_string(),
                started: run.started,
                duration_ms: run.duration.as_millis() as u64,
                detail: run.report.detail.clone(),
                output: output[output.len().saturating_sub(RESULT_TAIL)..].to_vec(),
                token: self.token,
                nonce: Some(format!("{}:{:016x}", self.host, fastrand::u64(..))),
            };
            let pending = Pending {
                record,
                lease: self.lease,
                last_lease: self.last_lease,
                until: *self.until.lock().unwrap_or_else(|p| p.into_inner()),
                run_id: run.run_id.to_string(),
            };
            let (etcd, keys) = (self.etcd.clone(), self.keys.clone());
            finish::finish(etcd, keys, &self.state_dir, pending).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate on an etcd that is not there, with its keepalive token.
    fn gate() -> (FleetGate, CancellationToken) {
        gate_on("http://127.0.0.1:9")
    }

    /// A gate on the etcd at `endpoint`, with its keepalive token.
    fn gate_on(endpoint: &str) -> (FleetGate, CancellationToken) {
        let config = crate::config::parse(
            std::path::Path::new("/etc/opsd/jobs.toml"),
            &format!("[fleet]\netcd = [\"{endpoint}\"]\nhost = \"h\"\n"),
        )
        .unwrap();
        let settings = config.fleet.unwrap();
        let registered = CancellationToken::new();
        let alerts = crate::alert::Dispatcher::new(&config.alerts, Default::default()).unwrap();
        let etcd = Arc::new(super::super::client(&settings).unwrap());
        let gate = FleetGate::new(
            etcd,
            &settings,
            (
                Arc::default(),
                Arc::new(KeepAlive::new(registered.clone())),
                CancellationToken::new(),
            ),
            CancellationToken::new(),
            alerts,
            std::env::temp_dir(),
        );
        (gate, registered)
    }

    /// Replacing the gate (a `[fleet]` reload) must not revoke the host lease under the
    /// running markers of runs still going: before, it did, and other hosts reported (and
    /// retried) live runs as lost.
    #[tokio::test]
    async fn the_host_lease_outlives_the_gate_while_a_claim_runs() {
        let (gate, registered) = gate();
        let leases = Leases {
            claims: 1,
            ttl: Duration::from_secs(3600),
            last: 0,
        };
        let claim = gate.claimed("j", Utc::now(), 7, leases);
        drop(gate);
        assert!(
            !registered.is_cancelled(),
            "lease revoked under a run in flight"
        );
        drop(claim);
        assert!(registered.is_cancelled(), "lease kept after the last claim");
    }

    /// A one-member etcd on loopback (its data in a temporary directory), killed on drop.
    struct OneEtcd {
        child: std::process::Child,
        endpoint: String,
        _dir: tempfile::TempDir,
    }

    impl OneEtcd {
        fn start() -> OneEtcd {
            let port = || {
                std::net::TcpListener::bind(("127.0.0.1", 0))
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port()
            };
            let (client, peer) = (port(), port());
            let dir = tempfile::tempdir().unwrap();
            let endpoint = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = std::process::Command::new("etcd")
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &endpoint])
                .args(["--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("default={peer_url}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("etcd is installed (apt-get install -y etcd-server)");
            OneEtcd {
                child,
                endpoint,
                _dir: dir,
            }
        }
    }

    impl Drop for OneEtcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Waits until `check` holds, for at most 30 s.
    async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A run that outlasts its claims lease keeps it alive, so its fenced result is written:
    /// before, the open marker expired with the lease mid-run and the result was lost, logged
    /// as "superseded".
    #[tokio::test]
    async fn a_run_that_outlasts_its_claims_lease_still_records_its_result() {
        let etcd = OneEtcd::start();
        let (gate, _registered) = gate_on(&etcd.endpoint);
        let e = gate.etcd.clone();
        wait_until("etcd", || async { e.measure_clock().await.is_ok() }).await;
        let ttl = Duration::from_secs(3);
        let (lease, witness) = (e.grant(ttl).await.unwrap(), e.grant(ttl).await.unwrap());
        let last = e.grant(ttl * 2).await.unwrap();
        let slot = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (open, result) = (gate.keys.open("j", slot), gate.keys.result("j", slot));
        let claimed = e
            .txn(serde_json::json!({ "success": [
                client::put(&open, b"{\"host\":\"h\",\"started\":\"2026-01-01T00:00:00Z\"}", lease),
                client::put("/witness", b"w", witness),
            ]}))
            .await
            .unwrap();
        let leases = Leases {
            claims: lease,
            ttl,
            last,
        };
        let claim = Box::new(gate.claimed("j", slot, claimed.revision, leases));
        let gone = |key: &'static str| {
            let e = e.clone();
            async move {
                let read = e.txn(serde_json::json!({ "success": [client::get(key)] }));
                read.await.is_ok_and(|r| r.ranges.is_empty())
            }
        };
        // The run goes on past the life of a lease of the same TTL that nobody keeps alive.
        wait_until("the witness lease to expire", || gone("/witness")).await;
        let run = Finished {
            run_id: "r1".into(),
            started: Utc::now(),
            duration: Duration::from_secs(9),
            report: crate::jobs::RunReport::success(None),
        };
        claim.finish(&run).await;
        let read =
            e.txn(serde_json::json!({ "success": [client::get(&result), client::get(&open)] }));
        let read = read.await.unwrap();
        let written: Vec<&str> = read.ranges.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            written,
            [result.as_str()],
            "the result is written, the open marker ended"
        );
        // `last/j` goes on its own lease (kept alive with the claims lease while the run went).
        let read = e.txn(serde_json::json!({ "success": [client::get(&gate.keys.last("j"))] }));
        let on = read.await.unwrap().ranges.first().map(|kv| kv.lease);
        assert_eq!(on, Some(last), "last/j lives on its lease");
    }

    /// A job's latest result outlives its last run by three periods, at least a week: it
    /// goes once no host runs the job any more (before, `last/JOB` of a job removed from
    /// every host stayed in etcd forever).
    #[test]
    fn the_latest_result_outlives_three_periods_and_at_least_a_week() {
        let job = |schedule: &str| {
            let toml = format!(
                "[fleet]\netcd = [\"http://127.0.0.1:9\"]\n[jobs.j]\ntype = \"command\"\n\
                 command = [\"true\"]\nschedule = \"{schedule}\"\nscope = \"fleet\"\n"
            );
            let config = crate::config::parse(std::path::Path::new("/etc/opsd/jobs.toml"), &toml);
            config.unwrap().jobs.into_values().next().unwrap()
        };
        let slot = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let day = 86_400;
        let ttl = |s: &str| {
            let job = job(s);
            let on_grid = job
                .schedule
                .as_ref()
                .and_then(|s| s.next_after(slot))
                .unwrap();
            FleetGate::last_ttl(&job, on_grid).as_secs()
        };
        assert_eq!(ttl("@every 1s"), 7 * day);
        assert_eq!(ttl("@every 5d"), 15 * day);
    }
}
