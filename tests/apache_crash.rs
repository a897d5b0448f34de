//! The real `opsd` binary watching a real Apache: a child killed with SIGSEGV is reported within
//! 2 s to a webhook on a local HTTP server, as a `child_crash` alert carrying Apache's own AH00052
//! line and, since the server is configured with the crash recipe, the doctor's verdict.

mod apache_support;
#[path = "support/stub_http.rs"]
#[allow(dead_code)] // this test uses a part of it
mod stub_http;

use apache_support::{segfault, Apache, APACHE, MODULES};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use stub_http::{Request, Response};

/// The acceptance bound: kill → alert at the webhook.
const ALERT_WITHIN: Duration = Duration::from_secs(2);

/// The opsd process, killed on drop when a test fails half-way.
struct Opsd(Child);

impl Drop for Opsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a stderr line containing `want`, failing after a generous deadline.
fn wait_for(lines: &mpsc::Receiver<String>, want: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(want) => return line,
            Ok(_) => {}
            Err(e) => panic!("opsd logged no line containing {want:?} ({e})"),
        }
    }
}

/// HTTP/2 over TLS with `Protocols h2` on the event MPM: the crash recipe minus PHP (Debian's
/// mod_php refuses a threaded MPM; see tests/apache_doctor.rs).
fn h2_config() -> String {
    format!(
        "LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so\n\
         LoadModule ssl_module {MODULES}/mod_ssl.so\n\
         LoadModule http2_module {MODULES}/mod_http2.so\n\
         Protocols h2 http/1.1\n"
    )
}

/// An `apache_bin` for the job: the real apache2 on this server's configuration, whose `-M`
/// also lists the line a thread-safe mod_php prints, so the doctor finds the whole recipe.
fn apache_bin(apache: &Apache) -> std::path::PathBuf {
    let wrapper = apache.dir.path().join("apachectl-with-php");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{APACHE} -f {} \"$@\" || exit $?\ncase \" $* \" in *\" -M \"*) echo ' php_module (shared)';; esac\n",
            apache.conf().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    wrapper
}

#[test]
fn segfaulting_child_is_posted_to_the_webhook_within_2s_with_the_real_line() {
    let apache = Apache::start_with(&h2_config());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (posts_tx, posts) = mpsc::channel::<(Instant, Request)>();
    let posts_tx = Mutex::new(posts_tx);
    let hook = rt.block_on(stub_http::start(move |req: &Request| {
        let _ = posts_tx.lock().unwrap().send((Instant::now(), req.clone()));
        Response::new(200, "ok")
    }));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.apache-errors]\ntype = \"apache_log\"\npaths = [{:?}]\nalert = [\"hook\"]\n\
             apache_bin = {:?}\n\n[alerts.hook]\ntype = \"webhook\"\nurl = \"http://{}/hook\"\n",
            apache.dir.path().join("*error.log").display().to_string(),
            apache_bin(&apache).display().to_string(),
            hook.addr,
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
        .args([
            "run-job",
            "apache-errors",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let opsd = Opsd(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The doctor runs beside the watcher's start, so its line may come before or after.
    let mut verdict = None;
    let mut following = false;
    while verdict.is_none() || !following {
        let line = wait_for(&lines, "");
        following |= line.contains("\"following\"");
        if line.contains("apache doctor") {
            verdict = Some(line);
        }
    }
    let verdict = verdict.unwrap_or_default();
    assert!(
        verdict.contains("Recipe"),
        "the doctor missed the recipe: {verdict}"
    );

    let victim = apache.children()[0];
    let killed = Instant::now();
    segfault(victim);
    let want = format!("AH00052: child pid {victim} exit signal Segmentation fault (11)");
    let (arrived, post) = posts
        .recv_timeout(ALERT_WITHIN)
        .unwrap_or_else(|e| panic!("no POST reached the webhook within {ALERT_WITHIN:?} ({e})"));
    let after = arrived - killed;
    assert!(after <= ALERT_WITHIN, "the alert took {after:?}");
    assert_eq!(post.method, "POST");
    assert_eq!(post.target, "/hook");
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&post.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&post.body)));
    assert_eq!(body["job"], "apache-errors", "{body}");
    assert_eq!(body["rule"], "child_crash", "{body}");
    assert_eq!(body["severity"], "high", "{body}");
    let first = body["first_line"].as_str().unwrap_or_default();
    assert!(first.ends_with(&want), "first_line lacks {want:?}: {body}");
    assert!(
        first.starts_with("[") && first.contains("[core:notice]"),
        "{body}"
    );
    assert_eq!(
        body["file"],
        apache.log.display().to_string(),
        "no file: {body}"
    );
    let extra = body["extra"].as_str().unwrap_or_default();
    assert!(
        extra.contains("matches the known child-crash recipe"),
        "no doctor verdict: {body}"
    );
    assert!(
        body["text"].as_str().unwrap_or_default().contains(&want),
        "{body}"
    );

    // The journal/log line carries the same event.
    let line = wait_for(&lines, "child_crash");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "ERROR", "{line}");
    assert!(
        event.to_string().contains(&want),
        "the event lacks {want:?}: {line}"
    );

    // Ctrl-C stops the watch cleanly and leaves a checkpoint.
    let mut opsd = opsd;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(opsd.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = opsd.0.wait().unwrap();
    assert!(status.success(), "opsd exited with {status}");
    let cp = std::fs::read_to_string(state.join("apache/apache-errors.json")).unwrap();
    assert!(cp.contains("error.log"), "{cp}");
}
