//! journald priorities of Apache events, read from the native journal protocol itself: the real
//! `opsd` runs in a private mount namespace whose `/run/systemd/journal/socket` is a datagram
//! socket of this test, so every entry it sends is seen exactly as journald would receive it.
//! A critical event must arrive at PRIORITY=2 (crit), a high one at PRIORITY=3 (err).

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real AH00072 start-up failure (critical) and a real AH00052 child crash (high).
const LINES: &str = "\
(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:18481
[Wed Nov 25 05:52:50.032317 2026] [core:notice] [pid 28516:tid 28516] AH00052: child pid 28517 exit signal Segmentation fault (11)
";

/// The opsd process, killed on drop when a test fails half-way.
struct Opsd(Child);

impl Drop for Opsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fields of one native-protocol entry: `NAME=value\n`, or `NAME\n`, a 64-bit
/// little-endian length, the value and `\n`.
fn fields(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(end) = d.iter().position(|&b| b == b'=' || b == b'\n') {
        let name = String::from_utf8_lossy(&d[..end]).into_owned();
        let value;
        if d[end] == b'=' {
            let rest = &d[end + 1..];
            let stop = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            value = &rest[..stop];
            d = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &d[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            value = &rest[8..8 + len];
            d = rest.get(8 + len + 1..).unwrap_or_default();
        }
        out.push((name, String::from_utf8_lossy(value).into_owned()));
    }
    out
}

fn get<'a>(entry: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn critical_events_reach_journald_at_crit_and_high_ones_at_err() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let socket = UnixDatagram::bind(journal.join("socket")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(&log, LINES).unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\nfrom_beginning = true\n\
             apache_bin = \"/nonexistent/apachectl\"\n",
            log.display().to_string()
        ),
    )
    .unwrap();
    // A private /run whose systemd/journal is our directory; needs root (CAP_SYS_ADMIN).
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs opsd-test /run && mkdir -p /run/systemd/journal && \
             mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
        )
        .arg(&journal)
        .arg(crate::util::OPSD)
        .args(["run-job", "web", "--log-format", "journald", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed for this test");
    let mut opsd = Opsd(child);

    let mut crit = None;
    let mut high = None;
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    while (crit.is_none() || high.is_none()) && Instant::now() < deadline {
        if let Ok(Some(status)) = opsd.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = opsd.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("opsd (or unshare, which needs root) exited with {status}: {err}");
        }
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let entry = fields(&buf[..n]);
        if entry.is_empty() {
            continue; // the layer's empty "is journald there?" probe
        }
        assert_eq!(get(&entry, "SYSLOG_IDENTIFIER"), Some("opsd"), "{entry:?}");
        match get(&entry, "RULE") {
            Some("startup_failure") => crit = Some(entry),
            Some("child_crash") => high = Some(entry),
            _ => {}
        }
    }
    let crit = crit.expect("no startup_failure entry reached the journal socket");
    let high = high.expect("no child_crash entry reached the journal socket");
    assert_eq!(get(&crit, "SEVERITY"), Some("critical"), "{crit:?}");
    assert_eq!(get(&crit, "PRIORITY"), Some("2"), "{crit:?}");
    assert_eq!(get(&high, "SEVERITY"), Some("high"), "{high:?}");
    assert_eq!(get(&high, "PRIORITY"), Some("3"), "{high:?}");
    // Exactly one PRIORITY per entry: journald would not know which one to believe.
    for e in [&crit, &high] {
        assert_eq!(
            e.iter().filter(|(k, _)| k == "PRIORITY").count(),
            1,
            "{e:?}"
        );
    }
}
