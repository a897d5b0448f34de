//! A real nginx (Debian's) in the foreground (`daemon off`) on free 127.0.0.1 ports, with its
//! own prefix, configuration, pid file, error log and temporary directories in a temporary
//! directory, so it never touches /etc/nginx or /var/lib/nginx; stopped on drop. A missing
//! nginx fails the test with the install line.

use super::{free_port, poll_until};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nginx binary the tests need.
pub const NGINX: &str = "/usr/sbin/nginx";
/// The install line a test prints when nginx is missing.
const INSTALL: &str = "install it with `apt-get install nginx` (.ci/setup)";
/// How long nginx may take to listen.
const LISTEN: Duration = Duration::from_secs(20);

/// A running nginx, stopped (TERM, then KILL) when dropped.
pub struct Nginx {
    child: Child,
    /// The prefix directory holding everything.
    pub dir: tempfile::TempDir,
    /// The TLS port its site listens on.
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with `http` inside its `http {}` block (before the include) and `site`
    /// written to `sites/site.conf` (included from `http {}`), `{port}` in `site` replaced
    /// by the port; another port is tried when the one picked was taken meanwhile.
    pub fn start(http: &str, site: &str) -> Nginx {
        assert!(Path::new(NGINX).exists(), "{NGINX} is missing: {INSTALL}");
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let d = dir.path();
            let port = free_port();
            std::fs::create_dir(d.join("sites")).expect("sites/");
            let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
                .iter()
                .map(|t| format!("  {t}_temp_path {}/{t};\n", d.display()))
                .collect();
            std::fs::write(
                d.join("nginx.conf"),
                format!(
                    "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nworker_processes 1;\n\
                     events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n{temp}{http}\n  \
                     include sites/*.conf;\n}}\n",
                    d = d.display()
                ),
            )
            .expect("write nginx.conf");
            std::fs::write(
                d.join("sites/site.conf"),
                site.replace("{port}", &port.to_string()),
            )
            .expect("write site.conf");
            let child = Command::new(NGINX)
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("stderr.log")).expect("stderr log"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {NGINX} ({e}): {INSTALL}"));
            let mut nginx = Nginx { child, dir, port };
            let listening = poll_until(LISTEN, || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    || matches!(nginx.child.try_wait(), Ok(Some(_)))
            });
            if let Ok(Some(status)) = nginx.child.try_wait() {
                last_error = format!(
                    "nginx exited ({status}): {}{}",
                    std::fs::read_to_string(nginx.dir.path().join("stderr.log"))
                        .unwrap_or_default(),
                    std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
                );
                if last_error.contains("Address already in use") {
                    continue;
                }
                panic!("{last_error}");
            }
            assert!(
                listening,
                "nginx did not listen on {port} within {LISTEN:?}"
            );
            return nginx;
        }
        panic!("nginx did not start: {last_error}");
    }

    /// Its main configuration file.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// The site's configuration file.
    pub fn site_conf(&self) -> PathBuf {
        self.dir.path().join("sites/site.conf")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !poll_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
