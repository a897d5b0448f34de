//! A real 3-member etcd cluster on loopback (members on 127.0.0.11, .12 and .13, each with a
//! free client and peer port), started by a test and stopped when it is dropped; fails loudly
//! with the install line when `etcd` is missing. See /work/shared/docs/etcd-cluster.md.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The install line printed when `etcd` or `etcdctl` is missing.
pub const INSTALL: &str = "apt-get install -y etcd-server etcd-client";

/// A loopback port free on `ip` at the time of the call.
fn free_port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
}

/// One member: its name, address, ports and process.
struct Member {
    name: String,
    ip: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// A running 3-member cluster, killed and removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl Cluster {
    /// Starts the three members and waits until the cluster is healthy.
    pub fn start() -> Cluster {
        for tool in ["etcd", "etcdctl"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(found, "`{tool}` is not installed: {INSTALL}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut members: Vec<Member> = (1..=3)
            .map(|i| {
                let ip = format!("127.0.0.1{i}");
                Member {
                    name: format!("n{i}"),
                    client: free_port_on(&ip),
                    peer: free_port_on(&ip),
                    ip,
                    child: None,
                }
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://{}:{}", m.name, m.ip, m.peer))
            .collect();
        let initial = initial.join(",");
        for m in &mut members {
            let peer = format!("http://{}:{}", m.ip, m.peer);
            let client = format!("http://{}:{}", m.ip, m.client);
            let log = fs::File::create(dir.path().join(format!("{}.log", m.name))).unwrap();
            let child = Command::new("etcd")
                .args(["--name", &m.name, "--data-dir"])
                .arg(dir.path().join(&m.name))
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start etcd ({e}): {INSTALL}"));
            m.child = Some(child);
        }
        let cluster = Cluster { dir, members };
        let healthy = crate::util::poll_until(Duration::from_secs(30), || {
            cluster
                .etcdctl(&["endpoint", "health"])
                .is_some_and(|out| out.matches("is healthy").count() == 3)
        });
        assert!(
            healthy,
            "the etcd cluster did not become healthy:\n{}",
            cluster.logs()
        );
        cluster
    }

    /// The client URLs of every member, as `[fleet].etcd` lists them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}:{}", m.ip, m.client))
            .collect()
    }

    /// Runs `etcdctl` (v3) against every member; its output when it succeeded.
    pub fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints().join(",")))
            .args(["--dial-timeout=1s", "--command-timeout=2s"])
            .args(args)
            .output()
            .ok()?;
        // `endpoint health` reports on stderr, the rest on stdout.
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        })
    }

    /// The index of the member that leads now.
    pub fn leader(&self) -> Option<usize> {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"])?;
        let list: serde_json::Value = serde_json::from_str(&out).ok()?;
        list.as_array()?.iter().find_map(|e| {
            let status = e.get("Status")?;
            let me = status.get("header")?.get("member_id")?.as_u64()?;
            let leader = status.get("leader")?.as_u64()?;
            let endpoint = e.get("Endpoint")?.as_str()?;
            (me == leader).then(|| {
                self.endpoints()
                    .iter()
                    .position(|u| u == endpoint)
                    .unwrap_or(usize::MAX)
            })
        })
    }

    /// The store's revision now (one per write).
    pub fn revision(&self) -> u64 {
        let out = self
            .etcdctl(&["endpoint", "status", "-w", "json"])
            .unwrap_or_default();
        let list: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["Status"]["header"]["revision"].as_u64())
            .max()
            .unwrap_or_else(|| panic!("no revision in {out}"))
    }

    /// `kill -9` of member `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The values of every key under `prefix` (etcdctl's `get --prefix`), as (key, value).
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self
            .etcdctl(&["get", "--prefix", prefix, "--print-value-only=false"])
            .unwrap_or_default();
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    }

    /// Every member's log, for a failure message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}
