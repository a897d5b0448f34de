//! A webhook's delivery: one HTTP client per sink (its headers marked sensitive), one POST of
//! the alert as JSON per attempt, and every error or answer quoted with the webhook's secrets
//! (its URL's userinfo and path, its header values) cut out.

use super::WebhookSink;
use crate::alert::record::Alert;
use crate::alert::sink::attempt::{quote, Attempt, AttemptError, Deliver, PrepareError};
use crate::redact;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Serialize;

/// A webhook ready to deliver: its client, where to POST, and what never to quote.
pub(super) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    /// What must never be quoted from an error or an answer: see [`secrets`].
    secrets: Vec<String>,
}

/// Shows a webhook by scheme and host only: the client's headers and the URL's userinfo and path
/// hold secrets.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &redact::parsed(&self.url))
            .finish_non_exhaustive()
    }
}

/// Why a webhook's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the HTTP client: {0}")]
struct ClientError(#[source] reqwest::Error);

impl Webhook {
    /// Prepares `w`'s delivery (builds its HTTP client once).
    pub(super) fn new(w: &WebhookSink) -> Result<Webhook, PrepareError> {
        Ok(Webhook {
            client: webhook_client(w).map_err(ClientError)?,
            url: w.url.clone(),
            secrets: secrets(w),
        })
    }
}

impl Deliver for Webhook {
    fn attempt<'a>(&'a self, alert: &'a Alert) -> Attempt<'a> {
        Box::pin(post(&self.client, &self.url, &self.secrets, alert))
    }
}

/// The JSON a webhook receives: Slack's `text` plus the whole record.
#[derive(Serialize)]
struct WebhookBody<'a> {
    text: String,
    #[serde(flatten)]
    alert: &'a Alert,
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
