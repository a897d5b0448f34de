//! Alert delivery against real local endpoints: an HTTP server on 127.0.0.1 written here, and a
//! shell script as a command sink. Sinks are built from a real `jobs.toml` text. The last tests
//! run the real binary: secrets of failing webhooks (and the AWS SDK's debug output with its
//! access key id) never reach its output, and a reload that changes `[alerts]` keeps running
//! `apache_log` jobs delivering.

use opsd::alert::sink::SinkConfig;
use opsd::alert::{Alert, Dispatcher, DispatcherOptions, RetryPolicy};
use opsd::config;
use opsd::severity::Severity;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Guard against a broken test hanging forever; never a speed assertion.
const PATIENCE: Duration = Duration::from_secs(30);

/// One request the test server received.
#[derive(Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// Answers the n-th request with `statuses[n]` (the last one repeats); `None` never answers.
async fn server(statuses: Vec<Option<u16>>) -> (SocketAddr, mpsc::UnboundedReceiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let k = sock.read(&mut chunk).await.unwrap();
                    assert!(k > 0, "connection closed before the request ended");
                    buf.extend_from_slice(&chunk[..k]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let k = sock.read(&mut chunk).await.unwrap();
                    assert!(k > 0, "connection closed before the body ended");
                    buf.extend_from_slice(&chunk[..k]);
                }
                let body = buf[head_end..head_end + len].to_vec();
                let _ = tx.send(Request { head, body });
                match status {
                    Some(code) => {
                        let reply = format!(
                            "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        sock.write_all(reply.as_bytes()).await.unwrap();
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    (addr, rx)
}

fn sinks(toml: &str) -> BTreeMap<String, SinkConfig> {
    config::parse(Path::new("jobs.toml"), toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .alerts
}

fn fast() -> DispatcherOptions {
    DispatcherOptions {
        queue_capacity: 8,
        concurrency: 1,
        retry: RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Request>) -> Request {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("no request arrived")
        .expect("the server stopped")
}

fn crash_alert() -> Alert {
    Alert::new("apache-errors", "child_crash", Severity::High, "child pid 4242 died of SIGSEGV")
        .with_lines(
            "[Wed Nov 25 05:51:25.814090 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 4242 exit signal Segmentation fault (11)",
            None,
        )
}

#[tokio::test]
async fn webhook_receives_json_with_slack_text_and_the_record() {
    let (addr, mut rx) = server(vec![Some(200)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.ops]\ntype = \"webhook\"\nurl = \"http://{addr}/hook/T000/XXX\"\nheaders = {{ Authorization = \"Bearer t0ken\" }}\n"
        )),
        fast(),
    )
    .unwrap();
    d.send(
        crash_alert().with_extra("doctor: recipe matched"),
        &["ops".to_string()],
    );
    let req = next(&mut rx).await;
    assert!(
        req.head.starts_with("POST /hook/T000/XXX HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    let head = req.head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("authorization: bearer t0ken"), "{head}");
    let body = req.json();
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("[HIGH] apache-errors on "), "{text}");
    assert!(text.contains("child pid 4242 died of SIGSEGV"), "{text}");
    assert!(text.contains("AH00052"), "{text}");
    assert!(text.contains("doctor: recipe matched"), "{text}");
    assert_eq!(body["job"], "apache-errors");
    assert_eq!(body["rule"], "child_crash");
    assert_eq!(body["severity"], "high");
    assert_eq!(body["count"], 1);
    assert_eq!(body["host"], opsd::alert::hostname());
    assert!(body["first_line"]
        .as_str()
        .unwrap()
        .contains("Segmentation fault (11)"));
    assert!(body["timestamp"].as_str().is_some());
    assert!(d.shutdown(PATIENCE).await);
    assert_eq!(d.stats()["ops"].delivered, 1);
}

#[tokio::test]
async fn failing_twice_then_succeeding_delivers_once() {
    let (addr, mut rx) = server(vec![Some(500), Some(503), Some(200)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.ops]\ntype = \"webhook\"\nurl = \"http://{addr}/\"\n"
        )),
        fast(),
    )
    .unwrap();
    d.send(crash_alert(), &["ops".to_string()]);
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await.json()["rule"], "child_crash");
    }
    assert!(d.shutdown(PATIENCE).await);
    let stats = d.stats()["ops"];
    assert_eq!((stats.delivered, stats.failed), (1, 0), "{stats:?}");
    assert!(rx.try_recv().is_err(), "delivered more than once");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_attempts_are_bounded() {
    let (addr404, mut rx404) = server(vec![Some(404)]).await;
    let (addr500, mut rx500) = server(vec![Some(500)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.gone]\ntype = \"webhook\"\nurl = \"http://{addr404}/\"\n[alerts.down]\ntype = \"webhook\"\nurl = \"http://{addr500}/\"\n"
        )),
        fast(),
    )
    .unwrap();
    d.send(crash_alert(), &["gone".to_string(), "down".to_string()]);
    next(&mut rx404).await;
    for _ in 0..5 {
        next(&mut rx500).await;
    }
    assert!(d.shutdown(PATIENCE).await);
    let stats = d.stats();
    assert_eq!(stats["gone"].failed, 1);
    assert_eq!(stats["down"].failed, 1);
    assert!(rx404.try_recv().is_err(), "a 404 was retried");
    assert!(rx500.try_recv().is_err(), "more than 5 attempts");
}

#[tokio::test]
async fn a_hanging_sink_blocks_neither_the_caller_nor_other_sinks() {
    let (hang_addr, mut hang_rx) = server(vec![None]).await;
    let (ok_addr, mut ok_rx) = server(vec![Some(200)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.stuck]\ntype = \"webhook\"\nurl = \"http://{hang_addr}/\"\ntimeout = \"1h\"\n[alerts.ok]\ntype = \"webhook\"\nurl = \"http://{ok_addr}/\"\n"
        )),
        fast(),
    )
    .unwrap();
    let both = ["stuck".to_string(), "ok".to_string()];
    d.send(crash_alert(), &both);
    next(&mut hang_rx).await;
    next(&mut ok_rx).await;
    // The stuck sink's one delivery slot is taken; 20 more alerts fill its queue of 8 and the
    // oldest 12 are dropped, while `send` returns at once each time.
    for i in 0..20 {
        d.send(crash_alert().with_count(i), &both[..1]);
    }
    let stuck = d.stats()["stuck"];
    assert_eq!((stuck.queued, stuck.dropped), (8, 12), "{stuck:?}");
    d.send(crash_alert().with_count(99), &both[1..]);
    assert_eq!(next(&mut ok_rx).await.json()["count"], 99);
    // Shutdown gives up on the stuck sink at its deadline and says so.
    assert!(!d.shutdown(Duration::from_millis(200)).await);
    let stats = d.stats();
    assert_eq!(stats["ok"].delivered, 2);
    assert_eq!(stats["stuck"].delivered, 0);
}

#[tokio::test]
async fn command_sink_gets_the_alert_as_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alert.json");
    let script = dir.path().join("notify-admin");
    std::fs::write(&script, "#!/bin/sh\ncat > \"$1\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.mail]\ntype = \"command\"\ncommand = [{:?}, {:?}]\n[alerts.broken]\ntype = \"command\"\ncommand = \"echo nope >&2; exit 3\"\n",
            script.display().to_string(),
            out.display().to_string()
        )),
        fast(),
    )
    .unwrap();
    d.send(
        opsd::scheduler::failed_run_alert(
            "backup",
            "0123abcd",
            &opsd::jobs::RunReport::failed("exit code 1"),
        ),
        &["mail".to_string(), "broken".to_string()],
    );
    assert!(d.shutdown(PATIENCE).await);
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written["job"], "backup");
    assert_eq!(written["rule"], "run_failed");
    assert_eq!(written["run_id"], "0123abcd");
    assert_eq!(written["severity"], "high");
    let stats = d.stats();
    assert_eq!(stats["mail"].delivered, 1);
    assert_eq!(stats["broken"].failed, 1);
}

#[tokio::test]
async fn send_after_shutdown_only_logs() {
    let (addr, mut rx) = server(vec![Some(200)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.ops]\ntype = \"webhook\"\nurl = \"http://{addr}/\"\n"
        )),
        fast(),
    )
    .unwrap();
    assert!(d.shutdown(PATIENCE).await);
    d.send(crash_alert(), &["ops".to_string()]);
    assert_eq!(d.stats()["ops"].queued, 0);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn replace_reaches_every_clone_and_the_old_sinks_still_deliver_their_queue() {
    let (old_addr, mut old_rx) = server(vec![Some(200)]).await;
    let (new_addr, mut new_rx) = server(vec![Some(200)]).await;
    let ops = |addr: SocketAddr| {
        sinks(&format!(
            "[alerts.ops]\ntype = \"webhook\"\nurl = \"http://{addr}/\"\n"
        ))
    };
    let d = Dispatcher::new(&ops(old_addr), fast()).unwrap();
    // A running job's handle, taken before the reload.
    let job = d.clone();
    for i in 0..3 {
        job.send(crash_alert().with_count(i), &["ops".to_string()]);
    }
    d.replace(&ops(new_addr)).unwrap();
    job.send(crash_alert().with_count(7), &["ops".to_string()]);
    assert_eq!(next(&mut new_rx).await.json()["count"], 7);
    let mut old: Vec<u64> = Vec::new();
    for _ in 0..3 {
        old.push(next(&mut old_rx).await.json()["count"].as_u64().unwrap());
    }
    old.sort_unstable();
    assert_eq!(
        old,
        vec![0, 1, 2],
        "what was queued before the swap went to the old sink"
    );
    assert!(d.shutdown(PATIENCE).await);
    assert_eq!(job.stats()["ops"].delivered, 1, "stats are the new sinks'");
    assert!(new_rx.try_recv().is_err() && old_rx.try_recv().is_err());
}

#[tokio::test]
async fn shutdown_right_after_a_replace_waits_for_the_old_sinks_queue() {
    let (old_addr, mut old_rx) = server(vec![Some(503), Some(200)]).await;
    let d = Dispatcher::new(
        &sinks(&format!(
            "[alerts.ops]\ntype = \"webhook\"\nurl = \"http://{old_addr}/\"\n"
        )),
        fast(),
    )
    .unwrap();
    d.send(crash_alert(), &["ops".to_string()]);
    d.replace(&BTreeMap::new()).unwrap();
    assert!(d.shutdown(PATIENCE).await);
    // Both attempts (the failed one and its retry) were made before shutdown returned.
    for attempt in 1..=2 {
        assert!(old_rx.try_recv().is_ok(), "attempt {attempt} missing");
    }
}

// === The real daemon ===

/// How a [`Hook`] answers.
#[derive(Debug, Clone)]
enum Answer {
    /// This status, with a body that echoes the request line (as some error pages do).
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// Answers plain HTTP at once, before reading anything (a TLS client gets garbage).
    Plain,
}

/// A webhook receiver on 127.0.0.1 in its own threads, recording each request's target and body.
struct Hook {
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Hook {
    fn start(answer: Answer) -> Hook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                let (answer, log) = (answer.clone(), log.clone());
                std::thread::spawn(move || Hook::serve(sock, answer, log));
            }
        });
        Hook { addr, seen }
    }

    fn serve(
        mut sock: std::net::TcpStream,
        answer: Answer,
        log: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    ) {
        use std::io::{Read, Write};
        if let Answer::Plain = answer {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            return;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        let request_line = head.lines().next().unwrap_or("").to_string();
        let target = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        log.lock().unwrap().push((target, body));
        match answer {
            Answer::Status(code) => {
                let body = format!("no hook at {request_line}\n{head}");
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes());
            }
            Answer::Hang => std::thread::sleep(Duration::from_secs(3600)),
            Answer::Plain => {}
        }
    }

    fn bodies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// An `opsd run` on a temporary config, killed on drop.
struct Daemon {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(config: &str, format: &str, rust_log: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jobs.toml"), config).unwrap();
        let child = std::process::Command::new(crate::util::OPSD)
            .args(["run", "--log-format", format, "--config"])
            .arg(dir.path().join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("opsd.sock"))
            .env("RUST_LOG", rust_log)
            .env_remove("JOURNAL_STREAM")
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            dir,
        };
        d.wait_for(|| d.path("opsd.sock").exists(), "control socket");
        d
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Everything the daemon wrote, stdout and stderr.
    fn log(&self) -> String {
        let read = |n| std::fs::read_to_string(self.path(n)).unwrap_or_default();
        format!("{}{}", read("stdout"), read("log"))
    }

    fn wait_for(&self, cond: impl Fn() -> bool, what: &str) {
        assert!(
            crate::util::poll_until(PATIENCE, cond),
            "timed out waiting for {what}; log:\n{}",
            self.log()
        );
    }

    /// Runs `opsd ARGS --socket …` and returns its stdout and stderr.
    fn ctl(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(crate::util::OPSD)
            .args(args)
            .arg("--socket")
            .arg(self.path("opsd.sock"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// SIGTERM, then waits for the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every secret piece of the webhook URLs below, the `Authorization: Basic` value the HTTP client
/// builds from their userinfo (base64 of `hookuser:hookpw9`) included.
const SECRETS: [&str; 5] = [
    "hookuser",
    "hookpw9",
    "SECRETTOKEN",
    "/hook/",
    "aG9va3VzZXI6aG9va3B3OQ==",
];

#[test]
fn failing_webhooks_never_put_their_secrets_in_any_output() {
    // Refused: a port that was free a moment ago. Timeout: a receiver that never answers.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hang = Hook::start(Answer::Hang);
    let err500 = Hook::start(Answer::Status(500));
    let err429 = Hook::start(Answer::Status(429));
    let err404 = Hook::start(Answer::Status(404));
    // A plain-HTTP server behind an https:// URL: the TLS handshake fails.
    let plain = Hook::start(Answer::Plain);
    let sinks = [
        ("refused", format!("http://{refused}")),
        ("timeout", format!("http://{}", hang.addr)),
        ("e500", format!("http://{}", err500.addr)),
        ("e429", format!("http://{}", err429.addr)),
        ("e404", format!("http://{}", err404.addr)),
        ("tls", format!("https://{}", plain.addr)),
    ];
    let mut config = format!(
        "[defaults]\nshutdown_timeout = \"1s\"\n\n[jobs.fails]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = \"false\"\nalert = [{}]\n",
        sinks
            .iter()
            .map(|(n, _)| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, base) in &sinks {
        let url =
            base.replacen("://", "://hookuser:hookpw9@", 1) + "/hook/SECRETTOKEN?sig=SECRETTOKEN";
        config.push_str(&format!(
            "\n[alerts.{name}]\ntype = \"webhook\"\nurl = {url:?}\ntimeout = \"1s\"\nheaders = {{ X-Api-Key = \"Bearer SECRETTOKEN\" }}\n"
        ));
    }
    for (format, field) in [("text", "sink="), ("json", "\"sink\":\"")] {
        let mut d = Daemon::start(&config, format, "trace");
        for (name, _) in &sinks {
            let needle = format!("{field}{name}");
            d.wait_for(
                || {
                    d.log().lines().any(|l| {
                        l.contains(&needle) && (l.contains("will retry") || l.contains("giving up"))
                    })
                },
                &format!("a failed delivery to {name} ({format})"),
            );
        }
        let (ok, status) = d.ctl(&["status"]);
        assert!(ok, "{status}");
        d.stop();
        let all = format!("{}\n{status}", d.log());
        for secret in SECRETS {
            let hits: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                hits.is_empty(),
                "{secret} in the {format} output: {hits:#?}"
            );
        }
        // The failures were logged, with the host to go on…
        assert!(all.contains(&format!("http://{}/…", err500.addr)), "{all}");
        assert!(all.contains("HTTP 500"), "{all}");
        assert!(all.contains("HTTP 429"), "{all}");
    }
    // …while the receivers did get the whole URL and the Basic credentials (echoed in their
    // answers): the secrets were in play.
    assert!(err500.seen.lock().unwrap()[0].0.contains("SECRETTOKEN"));
}

/// A line of Apache's error log with `marker` in it that the custom rule below matches.
fn marked_line(marker: u32) -> String {
    format!("[Tue Dec 01 08:00:00.000000 2026] [core:notice] [pid 1:tid 1] AH00052: child pid {marker} exit signal Segmentation fault (11) MARK-{marker}\n")
}

#[test]
fn apache_log_jobs_deliver_through_the_new_sinks_after_a_reload_changes_alerts() {
    let hook = Hook::start(Answer::Status(200));
    let other = Hook::start(Answer::Status(200));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(&log, marked_line(1)).unwrap();
    let job = format!(
        "[jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\nfrom_beginning = true\napache_bin = \"/bin/false\"\n\
         alert = [\"hook\"]\ndisable_rules = [\"child_crash\"]\n\n[[jobs.web.rules]]\nid = \"marked\"\n\
         regex = 'MARK-(\\d+)'\ndedup = \"$1\"\nseverity = \"high\"\nsummary = \"marked line\"\n\n\
         [alerts.hook]\ntype = \"webhook\"\nurl = \"http://{}/hook\"\n",
        log.display().to_string(),
        hook.addr
    );
    let mut d = Daemon::start(&job, "text", "info");
    let delivered = |m: u32| {
        let want = format!("MARK-{m}");
        hook.bodies().iter().any(|b| b.contains(&want))
    };
    d.wait_for(|| delivered(1), "the first line's alert");

    // A reload that only adds an unrelated sink.
    std::fs::write(
        d.path("jobs.toml"),
        format!(
            "{job}\n[alerts.other]\ntype = \"webhook\"\nurl = \"http://{}/other\"\n",
            other.addr
        ),
    )
    .unwrap();
    let (ok, out) = d.ctl(&["reload"]);
    assert!(ok, "{out}");
    // The replaced sinks are done with (before the fix: the old dispatcher was shut down).
    d.wait_for(
        || {
            let log = d.log();
            log.contains("previous alert sinks retired") || log.contains("alert sinks flushed")
        },
        "the old sinks' retirement",
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for m in 2..=5 {
        std::io::Write::write_all(&mut file, marked_line(m).as_bytes()).unwrap();
    }
    d.wait_for(|| (2..=5).all(delivered), "every alert after the reload");
    d.stop();
    let log = d.log();
    assert!(!log.contains("opsd is shutting down"), "{log}");
    assert!(other.bodies().is_empty(), "the unrelated sink got alerts");
}

#[test]
fn rust_log_debug_or_trace_does_not_turn_on_the_aws_sdks_key_logging() {
    // A dead loopback endpoint: the SDK loads the credentials, signs and fails to connect.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.dev]\ntype = \"ec2\"\nschedule = \"@daily\"\nregion = \"ap-northeast-2\"\n\
             endpoint_url = \"http://{dead}\"\naction = \"stop\"\ninstance_ids = [\"i-0123456789abcdef0\"]\n"
        ),
    )
    .unwrap();
    for rust_log in ["debug", "trace"] {
        let out = std::process::Command::new(crate::util::OPSD)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "AKIAOPSDTESTKEYID777")
            .env("AWS_SECRET_ACCESS_KEY", "opsdTestSecretKey0123456789")
            .env("RUST_LOG", rust_log)
            .args(["run-job", "dev", "--log-format", "text", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "the endpoint is dead: {all}");
        assert!(
            all.contains("DEBUG"),
            "opsd's own debug events are kept: {all}"
        );
        for secret in ["AKIAOPSDTESTKEYID777", "opsdTestSecretKey0123456789"] {
            let hits: Vec<&str> = all.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                hits.is_empty(),
                "{secret} with RUST_LOG={rust_log}: {hits:#?}"
            );
        }
    }
}
