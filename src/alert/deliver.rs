//! One delivery attempt to one sink: POST to a webhook, or run a program with the alert on stdin.

use super::record::Alert;
use super::sink::{CommandSink, SinkConfig, SinkKind, WebhookSink};
use crate::process::env::{self, RunUser};
use crate::{escape, redact};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Serialize;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Most bytes of a failing program's stderr or a failing webhook's body quoted in the log.
const MAX_QUOTE: usize = 300;

/// Why one attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AttemptError {
    /// A timeout, a refused connection, a 5xx, a program exiting non-zero: worth another try.
    #[error("{0}")]
    Retry(String),
    /// The sink rejected the alert itself (e.g. HTTP 400/401/404): retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

/// A sink ready to deliver: a configured HTTP client or a program line.
#[derive(Debug)]
pub(super) struct Sink {
    /// The sink's name in `[alerts.NAME]`.
    pub name: String,
    target: Target,
}

enum Target {
    Webhook {
        client: reqwest::Client,
        url: reqwest::Url,
        /// What must never be quoted from an error or an answer: see [`secrets`].
        secrets: Vec<String>,
    },
    Command(CommandSink),
}

/// Shows a webhook by scheme and host only: the client's headers and the URL's userinfo and path
/// hold secrets.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", &redact::parsed(url))
                .finish_non_exhaustive(),
            Target::Command(c) => f.debug_tuple("Command").field(c).finish(),
        }
    }
}

/// The JSON a webhook receives: Slack's `text` plus the whole record.
#[derive(Serialize)]
struct WebhookBody<'a> {
    text: String,
    #[serde(flatten)]
    alert: &'a Alert,
}

impl Sink {
    /// Prepares a sink from its configuration (builds the HTTP client once).
    pub fn new(cfg: &SinkConfig) -> Result<Sink, reqwest::Error> {
        let target = match &cfg.kind {
            SinkKind::Webhook(w) => Target::Webhook {
                client: webhook_client(w)?,
                url: w.url.clone(),
                secrets: secrets(w),
            },
            SinkKind::Command(c) => Target::Command(c.clone()),
        };
        Ok(Sink {
            name: cfg.name.clone(),
            target,
        })
    }

    /// Makes one attempt to deliver `alert`.
    pub async fn attempt(&self, alert: &Alert) -> Result<(), AttemptError> {
        match &self.target {
            Target::Webhook {
                client,
                url,
                secrets,
            } => post(client, url, secrets, alert).await,
            Target::Command(c) => run_program(c, alert).await,
        }
    }
}

fn webhook_client(w: &WebhookSink) -> Result<reqwest::Client, reqwest::Error> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &w.headers {
        // Both were checked when the configuration was validated.
        if let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            // Header values are tokens more often than not; keep them out of Debug output.
            v.set_sensitive(true);
            headers.insert(n, v);
        }
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(w.timeout)
        .user_agent(concat!("opsd/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    secrets: &[String],
    alert: &Alert,
) -> Result<(), AttemptError> {
    let body = serde_json::to_vec(&WebhookBody {
        text: alert.text(),
        alert,
    })
    .map_err(|e| AttemptError::Permanent(format!("cannot encode the alert: {e}")))?;
    let response = client
        .post(url.clone())
        .body(body)
        .send()
        .await
        // `without_url`: reqwest's text names the whole URL, token and password included.
        .map_err(|e| {
            AttemptError::Retry(format!(
                "POST {}: {}",
                redact::parsed(url),
                scrub(&error_chain(&e.without_url()), secrets)
            ))
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = body_start(response).await;
    let msg = format!(
        "POST {}: HTTP {status}: {}",
        redact::parsed(url),
        quote(scrub(&String::from_utf8_lossy(&text), secrets).as_bytes())
    );
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(AttemptError::Retry(msg))
    } else {
        Err(AttemptError::Permanent(msg))
    }
}

/// The first few KiB of a failed answer's body (a hostile or broken receiver may send far more),
/// enough to quote its start after cutting out the URL's secrets.
async fn body_start(mut response: reqwest::Response) -> Vec<u8> {
    const READ: usize = 16 * 1024;
    let mut body = Vec::new();
    while body.len() < READ {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// The secret pieces of a webhook: its URL's userinfo (also decoded, and as Basic credentials),
/// path, query and fragment (and the path's
/// longer segments, as an echo may quote only the token), and its header values; longest first,
/// so that a piece inside another does not leave the rest of the longer one behind.
fn secrets(w: &WebhookSink) -> Vec<String> {
    let url = &w.url;
    // The userinfo as sent: percent-decoded, and as the `Authorization: Basic` value that the
    // HTTP client builds from it (a receiver that echoes the request quotes that header).
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = (decode(url.username()), decode(url.password().unwrap_or("")));
    let basic = if user.is_empty() && password.is_empty() {
        String::new()
    } else {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let mut pieces: Vec<String> = [
        url.username(),
        url.password().unwrap_or(""),
        &user,
        &password,
        &basic,
        url.path(),
        url.query().unwrap_or(""),
        url.fragment().unwrap_or(""),
    ]
    .into_iter()
    .chain(
        url.path_segments()
            .into_iter()
            .flatten()
            .filter(|s| s.len() > 5),
    )
    .chain(w.headers.iter().map(|(_, v)| v.as_str()))
    .filter(|p| p.len() > 1)
    .map(str::to_string)
    .collect();
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    pieces.dedup();
    pieces
}

/// `text` (a lower layer's error, or an answer that may echo the request) with every one of
/// `secrets` cut out.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for piece in secrets {
        out = out.replace(piece.as_str(), "…");
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The start of `bytes` (a body or stderr written by someone else), safe for one log line.
fn quote(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_QUOTE)];
    escape::control(String::from_utf8_lossy(cut).trim()).into_owned()
}

async fn run_program(sink: &CommandSink, alert: &Alert) -> Result<(), AttemptError> {
    let (program, args) = sink
        .command
        .program_and_args()
        .ok_or_else(|| AttemptError::Permanent("the command is empty".into()))?;
    // The marker its processes carry, so what leaves its process group is found and stopped.
    let marker = format!("alert-{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
    // The same clean environment as a job's run (the daemon's `TZ`, as alerts have no zone of
    // their own): an alert program must not see the daemon's secrets unless it asks by name.
    let timezone = std::env::var("TZ").unwrap_or_default();
    let vars = env::base(&RunUser::current(), &timezone, &sink.pass_env, |name| {
        std::env::var_os(name)
    });
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(vars)
        .env("OPSD_RUN_ID", &marker);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // Nothing the program starts can leave its cgroup (when opsd has a delegated one).
    let cgroup = crate::process::cgroup::for_run(&marker).unwrap_or_else(|e| {
        tracing::warn!("cannot create a cgroup for alert program {program} ({e}); what it leaves running is found by its OPSD_RUN_ID only");
        None
    });
    if let Some(cg) = &cgroup {
        cg.join_at_exec(&mut cmd);
    }
    let (mut child, _spawned) = crate::process::reaper::spawn(&mut cmd)
        .map_err(|e| AttemptError::Retry(format!("cannot start {program}: {e}")))?;
    let pid = child.id();
    // Kills the program's process group however the attempt ends, even when the dispatcher
    // abandons it at shutdown (the attempt is dropped then).
    let group = GroupGuard(pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw));
    let mut json = alert.to_json().into_bytes();
    json.push(b'\n');
    let stdin = child.stdin.take();
    let writer = async move {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input is judged by its exit status.
            let _ = stdin.write_all(&json).await;
        }
    };
    let run = async { tokio::join!(writer, child.wait_with_output()).1 };
    let result = tokio::time::timeout(sink.timeout, run).await;
    // Whatever the program left in its group or outside it ends with the attempt.
    drop(group);
    crate::process::reaper::stop_run(&marker, Duration::ZERO).await;
    if let Some(cg) = cgroup {
        let left = cg.end(Duration::ZERO).await;
        if left > 0 {
            tracing::warn!(
                processes = left,
                "alert program {program}: stopped {left} processes it left behind in its cgroup"
            );
        }
    }
    match result {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(AttemptError::Retry(format!(
            "{program} exited with {}: {}",
            out.status,
            quote(&out.stderr)
        ))),
        Ok(Err(e)) => Err(AttemptError::Retry(format!("{program}: {e}"))),
        Err(_) => Err(AttemptError::Retry(format!(
            "{program} did not finish within {}",
            humantime::format_duration(sink.timeout)
        ))),
    }
}

/// SIGKILLs a command sink's process group when dropped.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // The group may be gone already; nothing more to do then.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}
