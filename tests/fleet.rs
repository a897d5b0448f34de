//! Fleet scope against a real 3-member etcd cluster and three real `opsd` daemons, each with
//! its own state directory, socket and job file: a fleet `@every 1s` job whose runs each log
//! their slot and append their fencing token to one shared marker file. Every scenario asserts
//! the fleet's promise: each slot started at most once fleet-wide, and every slot of the
//! window either ran or was reported (refused or lost).

use crate::util::etcd::Cluster;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One opsd of the fleet, killed on drop.
struct Host {
    name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Host {
    /// Starts host `name` on `config` with `envs` in its environment, and waits until it has
    /// registered in etcd.
    fn start(name: &str, config: &str, envs: &[(&str, &str)]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("jobs.toml"), config).unwrap();
        let child = Command::new(crate::util::OPSD)
            .args(["run", "--log-format", "text", "--config"])
            .arg(dir.path().join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("opsd.sock"))
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let host = Host {
            name: name.to_string(),
            dir,
            child: Some(child),
        };
        host.wait_log("fleet: registered in etcd", Duration::from_secs(15));
        host
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Waits until the log holds `text`, failing with the log.
    fn wait_log(&self, text: &str, within: Duration) {
        let found = crate::util::poll_until(within, || self.log().contains(text));
        assert!(
            found,
            "{}: no {text:?} in the log:\n{}",
            self.name,
            self.log()
        );
    }

    /// The slots (RFC 3339) of `job` this host started, in log order.
    fn started_slots(&self, job: &str) -> Vec<String> {
        let started = format!("{job}: run started");
        self.log()
            .lines()
            .filter(|l| l.contains(&started))
            .filter_map(|l| {
                let at = l.find("slot=")? + 5;
                Some(
                    l[at..]
                        .split_whitespace()
                        .next()?
                        .trim_matches('"')
                        .to_string(),
                )
            })
            .collect()
    }

    /// The slots (Unix seconds) of a fleet job this host reported as not run here.
    fn refused_slots(&self) -> BTreeSet<i64> {
        self.log()
            .lines()
            .filter_map(|l| {
                let at = l.find("fleet slot ")? + 11;
                let slot = l[at..].split_whitespace().next()?;
                Some(chrono::DateTime::parse_from_rfc3339(slot).ok()?.timestamp())
            })
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if !crate::util::poll_until(Duration::from_secs(5), || {
                child.try_wait().ok().flatten().is_some()
            }) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A job file for host `host` of the fleet on `endpoints` (under `prefix`) with a fleet job
/// `tick` on `schedule` appending "TOKEN HOST" to `marker`, plus `extra` lines.
fn fleet_config(
    host: &str,
    endpoints: &[String],
    prefix: &str,
    marker: &Path,
    extra: &str,
) -> String {
    let etcd: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!(
        r#"[fleet]
etcd = [{}]
host = "{host}"
prefix = "{prefix}"

[jobs.tick]
type = "command"
schedule = "@every 1s"
scope = "fleet"
command = ["/bin/sh", "-c", "echo \"$OPSD_FENCING_TOKEN {host}\" >> {}"]
{extra}
"#,
        etcd.join(", "),
        marker.display()
    )
}

/// Starts hosts h1..h3 of a fleet on `cluster` under `prefix`; the marker file they share.
fn three_hosts(cluster: &Cluster, prefix: &str, marker_dir: &Path) -> (Vec<Host>, PathBuf) {
    let marker = marker_dir.join("marker");
    let hosts = (1..=3)
        .map(|i| {
            let name = format!("h{i}");
            let config = fleet_config(&name, &cluster.endpoints(), prefix, &marker, "");
            Host::start(&name, &config, &[])
        })
        .collect();
    (hosts, marker)
}

/// Every slot of `job` started by `hosts`, with the hosts that started it; fails when a slot
/// was started twice (by two hosts, or twice by one).
fn slots_started_once(hosts: &[Host], job: &str) -> BTreeMap<String, String> {
    let mut by_slot: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in hosts {
        for slot in h.started_slots(job) {
            by_slot.entry(slot).or_default().push(h.name.clone());
        }
    }
    let twice: Vec<_> = by_slot.iter().filter(|(_, hs)| hs.len() > 1).collect();
    assert!(twice.is_empty(), "slots started more than once: {twice:?}");
    by_slot
        .into_iter()
        .map(|(slot, mut hs)| (slot, hs.remove(0)))
        .collect()
}

/// The fencing tokens in `marker`: every one present, distinct, as many as runs.
fn tokens(marker: &Path) -> Vec<u64> {
    let text = fs::read_to_string(marker).unwrap_or_default();
    let tokens: Vec<u64> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("a run without OPSD_FENCING_TOKEN: {l:?}"))
        })
        .collect();
    let distinct: BTreeSet<_> = tokens.iter().collect();
    assert_eq!(
        distinct.len(),
        tokens.len(),
        "a fencing token given twice: {text}"
    );
    tokens
}

/// Slots, as Unix seconds, between the first and the last slot in `slots` that none started
/// and none of `reported` (slots some host said it did not run) names.
fn gaps(slots: &BTreeMap<String, String>, reported: &BTreeSet<i64>) -> Vec<i64> {
    let secs: BTreeSet<i64> = slots
        .keys()
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .chain(reported.iter().copied())
        .collect();
    let (Some(first), Some(last)) = (secs.first(), secs.last()) else {
        return Vec::new();
    };
    (*first..=*last).filter(|s| !secs.contains(s)).collect()
}

/// Steady state (8 s instead of the issue's 60, to keep the suite's time down): every slot
/// ran exactly once fleet-wide, each run with its own fencing token, and etcd holds a result
/// per slot.
#[test]
fn steady_state_every_slot_runs_exactly_once() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let (hosts, marker) = three_hosts(&cluster, "/steady", tmp.path());
    crate::util::wait_for("8 slots run", Duration::from_secs(20), || {
        slots_started_once(&hosts, "tick").len() >= 8
    });
    let slots = slots_started_once(&hosts, "tick");
    assert_eq!(
        gaps(&slots, &BTreeSet::new()),
        Vec::<i64>::new(),
        "slots nobody ran: {slots:?}"
    );
    let ran_on: BTreeSet<&String> = slots.values().collect();
    let tokens = tokens(&marker);
    assert!(tokens.len() >= 8, "{tokens:?}");
    let results = cluster.get_prefix("/steady/results/tick/");
    assert!(results.len() >= 7, "{results:?}");
    eprintln!("slots {} ran on {ran_on:?}", slots.len());
}

/// `kill -9` of the etcd leader while slots run: the other two members elect a new one and
/// the hosts fail over to them; no slot starts twice, and every slot of the window ran or was
/// reported by a host as not run.
#[test]
fn kill_9_of_the_etcd_leader_starts_no_slot_twice_and_loses_none_silently() {
    let mut cluster = Cluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let (hosts, marker) = three_hosts(&cluster, "/leader", tmp.path());
    crate::util::wait_for("3 slots run", Duration::from_secs(20), || {
        slots_started_once(&hosts, "tick").len() >= 3
    });
    let leader = cluster.leader().expect("a leader");
    cluster.kill9(leader);
    let before = slots_started_once(&hosts, "tick").len();
    crate::util::wait_for(
        "5 slots run after the kill",
        Duration::from_secs(30),
        || slots_started_once(&hosts, "tick").len() >= before + 5,
    );
    let slots = slots_started_once(&hosts, "tick");
    let reported: BTreeSet<i64> = hosts.iter().flat_map(Host::refused_slots).collect();
    assert_eq!(
        gaps(&slots, &reported),
        Vec::<i64>::new(),
        "slots lost silently: {slots:?}"
    );
    tokens(&marker);
}
