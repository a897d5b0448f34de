//! Asking a program a question (`apache2 -V`, `nginx -V`, `ldd mod_ssl.so`): the doctors'
//! one way to find ([`find_program`]) and run a probe. The program gets a clean environment (`PATH` and `LC_ALL=C`, plus
//! only what the caller names), stdin closed, a deadline after which it is killed, and a cap
//! on what of its output is kept: past [`MAX_OUTPUT`] bytes a stream is still read (so the
//! program never blocks writing) but dropped. It is spawned through [`super::reaper`], so the
//! daemon's reaper leaves it to tokio. Not for a job's run, which has its own supervision.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// The `PATH` a probe gets.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// The most bytes of each of stdout and stderr kept.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// What a program answered.
#[derive(Debug)]
pub struct Answer {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout (lossy UTF-8, at most [`MAX_OUTPUT`] bytes of it).
    pub stdout: String,
    /// Its stderr (likewise).
    pub stderr: String,
}

/// Why a program gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// It could not be started.
    #[error("{0}")]
    Spawn(#[source] std::io::Error),
    /// It did not finish in time (and was killed).
    #[error("did not finish within {}s", .0.as_secs())]
    Timeout(Duration),
}

/// The first of `names` found in `$PATH`, then in `extra` (sbin is often missing from a
/// user's path): the program a probe asks.
pub fn find_program(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(extra.iter().map(PathBuf::from));
    names
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Runs `program args` with a clean environment plus `env`, within `timeout`.
pub async fn call<A, K, V>(
    program: &Path,
    args: impl IntoIterator<Item = A>,
    env: impl IntoIterator<Item = (K, V)>,
    timeout: Duration,
) -> Result<Answer, CallError>
where
    A: AsRef<OsStr>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("LC_ALL", "C")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = async {
        let (mut child, _spawned) = super::reaper::spawn(&mut cmd).map_err(CallError::Spawn)?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (stdout, stderr) = tokio::join!(bounded(stdout), bounded(stderr));
        let status = child.wait().await.map_err(CallError::Spawn)?;
        Ok(Answer {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}

/// Reads `stream` to its end, keeping the first [`MAX_OUTPUT`] bytes.
async fn bounded(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut stream) = stream else {
        return kept;
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ENV: [(&str, &str); 0] = [];

    #[tokio::test]
    async fn the_environment_is_clean_but_for_what_is_named() {
        let a = call(
            Path::new("/bin/sh"),
            ["-c", "env"],
            [("KEPT", "yes")],
            Duration::from_secs(20),
        )
        .await
        .expect("runs");
        assert!(a.status.success());
        let mut names: Vec<&str> = a
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(n, _)| n))
            .filter(|n| !["PWD", "SHLVL", "_"].contains(n))
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["KEPT", "LC_ALL", "PATH"], "{}", a.stdout);
    }

    #[tokio::test]
    async fn output_is_capped_and_read_to_its_end() {
        // 4 MiB on stdout, then a word on stderr: the program is never blocked writing.
        let a = call(
            Path::new("/bin/sh"),
            ["-c", "head -c 4194304 /dev/zero; echo done >&2"],
            NO_ENV,
            Duration::from_secs(20),
        )
        .await
        .expect("runs");
        assert_eq!(a.stdout.len(), MAX_OUTPUT);
        assert_eq!(a.stderr, "done\n");
    }

    #[test]
    fn find_program_looks_in_the_extra_directories_too() {
        assert_eq!(
            find_program(&["no-such-program-here", "sh"], &["/bin"]).map(|p| p.is_file()),
            Some(true)
        );
        assert_eq!(find_program(&["no-such-program-here"], &["/bin"]), None);
    }

    #[tokio::test]
    async fn a_hanging_program_is_a_timeout_and_a_missing_one_a_spawn_error() {
        let slow = call(
            Path::new("/bin/sleep"),
            ["30"],
            NO_ENV,
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(slow, Err(CallError::Timeout(_))), "{slow:?}");
        let missing = call(
            Path::new("/nonexistent/program"),
            ["-V"],
            NO_ENV,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(missing, Err(CallError::Spawn(_))), "{missing:?}");
    }
}
