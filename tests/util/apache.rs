//! A real Apache 2.4 (Debian's apache2, event MPM) on a free 127.0.0.1 port with its own
//! ServerRoot, ErrorLog and PidFile in a temporary directory; stopped on drop.

use opsd::apache::rules::{Dedup, Rule};
use opsd::severity::Severity;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The apache2 binary the tests need.
pub const APACHE: &str = "/usr/sbin/apache2";
/// Where Debian keeps the modules.
pub const MODULES: &str = "/usr/lib/apache2/modules";

/// The `LoadModule` line of mod_ssl, for configurations with TLS virtual hosts; fails the
/// test with the install line when Debian's module is missing.
pub fn mod_ssl() -> String {
    let module = format!("{MODULES}/mod_ssl.so");
    assert!(
        Path::new(&module).exists(),
        "{module} is missing: install Debian's apache2 package (.ci/setup)"
    );
    format!("LoadModule ssl_module {module}\n")
}

/// A running Apache, stopped (TERM, then KILL) when dropped, even when a test fails.
pub struct Apache {
    /// The temporary directory holding everything.
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    /// The error log.
    pub log: PathBuf,
    conf: PathBuf,
    pid_file: PathBuf,
    parent: i32,
}

impl Apache {
    /// Starts Apache (event MPM, `LogLevel info`, so requests for missing files log AH00128).
    pub fn start() -> Apache {
        Apache::start_with("")
    }

    /// Starts Apache as [`Apache::start`] does, with `extra` appended to its configuration.
    pub fn start_with(extra: &str) -> Apache {
        assert!(
            Path::new(APACHE).exists(),
            "{APACHE} is missing: these tests need Debian's apache2 package installed"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let docroot = dir.path().join("htdocs");
        std::fs::create_dir(&docroot).unwrap();
        let port = super::free_port();
        let log = dir.path().join("error.log");
        let pid_file = dir.path().join("httpd.pid");
        let conf = dir.path().join("httpd.conf");
        let root = dir.path().display();
        std::fs::write(
            &conf,
            format!(
                "ServerRoot {root}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
                 PidFile {pid}\nErrorLog {log}\nLogLevel info\nUser www-data\nGroup www-data\n\
                 LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n\
                 LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
                 DocumentRoot {docroot}\nStartServers 2\n{extra}",
                pid = pid_file.display(),
                log = log.display(),
                docroot = docroot.display(),
            ),
        )
        .unwrap();
        let out = Command::new(APACHE)
            .args(["-f", conf.to_str().unwrap(), "-k", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apache2 failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let parent = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                if let Ok(pid) = text.trim().parse::<i32>() {
                    break pid;
                }
            }
            assert!(Instant::now() < deadline, "apache2 wrote no pid file");
            std::thread::sleep(Duration::from_millis(50));
        };
        let apache = Apache {
            dir,
            port,
            log,
            conf,
            pid_file,
            parent,
        };
        super::wait_for(
            "apache2 to start its children",
            Duration::from_secs(20),
            || !apache.children().is_empty(),
        );
        apache
    }

    /// The configuration file it was started with.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The child processes of the parent.
    pub fn children(&self) -> Vec<i32> {
        let mut kids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: i32 = after.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == self.parent {
                kids.push(pid);
            }
        }
        kids
    }

    /// Runs `apache2 -k ACTION` against this server's configuration.
    pub fn control(&self, action: &str) {
        let out = Command::new(APACHE)
            .args(["-f", self.conf.to_str().unwrap(), "-k", action])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apache2 -k {action} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// GETs `path` and returns the status line (waits for the whole response).
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        String::from_utf8_lossy(&resp)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.parent);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.parent)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Sends SIGSEGV to `pid`.
pub fn segfault(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSEGV,
    )
    .unwrap();
}

/// A rule that reports every AH00128 line (a request for `/missing-N`) with `N` as its key,
/// so tests can count how often each line was seen.
pub fn counting_rule() -> Rule {
    Rule {
        id: "missing".into(),
        summary: "a request for a missing file".into(),
        pattern: r"AH00128: File does not exist: \S*/missing-(\d+)".into(),
        severity: Severity::Info,
        count: 1,
        window: Duration::from_secs(1),
        cooldown: Duration::ZERO,
        dedup: Dedup::Template("$1".into()),
        escalate: None,
    }
}

/// logrotate's `create`: rename the log away and create an empty one in its place.
pub fn rotate_create(log: &Path, to: &Path) {
    std::fs::rename(log, to).unwrap();
    std::fs::File::create(log).unwrap();
}

/// logrotate's `copytruncate`: copy the log, then truncate it in place.
pub fn rotate_copytruncate(log: &Path, to: &Path) {
    std::fs::copy(log, to).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}
