//! A small etcd v3 client over etcd's own JSON gateway (`POST /v3/kv/txn`, `/v3/kv/range`,
//! `/v3/lease/grant|keepalive|revoke`, served on every member's client port, TLS and client
//! certificates included), through the reqwest + rustls build already in the tree: no protoc,
//! no gRPC stack, the same v3 semantics (transactions, leases, revisions).
//!
//! Every call is bounded by `[fleet].timeout`, all endpoints tried included: it goes to the
//! endpoint that answered last, then to the others in turn. Each answer's `Date` header and
//! round trip feed [`ClockReading`], the measure of this host's clock against etcd's. Errors
//! name the endpoint (validated without credentials) and never a key's value.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered within the bound; the last problem seen.
    #[error("etcd unreachable ({0})")]
    Unreachable(String),
    /// An endpoint answered something that is not an etcd answer.
    #[error("unexpected answer from etcd at {endpoint}: {what}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        what: String,
    },
    /// The TLS files of `[fleet]` cannot be used.
    #[error("{0}")]
    Setup(String),
}

/// One key-value pair as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key (the fencing token of a claim).
    pub create_revision: u64,
    /// The revision of its last change.
    pub mod_revision: u64,
}

/// One measure of this host's clock against etcd's: etcd's `Date` (whole seconds) at the
/// middle of the round trip.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading {
    /// When it was taken (monotonic).
    pub at: Instant,
    /// This host's clock minus etcd's, in milliseconds (the middle of the range).
    pub offset_ms: i64,
    /// How far off `offset_ms` may be: half the round trip plus half a second of `Date`.
    pub uncertainty_ms: i64,
}

/// An etcd cluster reached through its JSON gateway.
#[derive(Debug)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<url::Url>,
    /// The endpoint that answered last, tried first.
    preferred: AtomicUsize,
    timeout: Duration,
    clock: Mutex<Option<ClockReading>>,
}

/// The most an etcd answer may hold (a range of every slot of a busy job stays far below).
const MAX_BODY: usize = 4 << 20;

/// The body of `resp`, refused past [`MAX_BODY`] (announced or read so far) so that a
/// hostile or broken endpoint cannot fill this host's memory.
async fn body_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_big = || format!("answer larger than {} MiB, refused", MAX_BODY >> 20);
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The TLS material a client presents and trusts (its `Debug` shows no PEM: the identity
/// holds the client key).
#[derive(Default)]
pub struct Tls {
    /// PEM of the CA that signs the members' certificates.
    pub ca: Option<Vec<u8>>,
    /// PEM of the client certificate followed by its key.
    pub identity: Option<Vec<u8>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<Vec<u8>>| v.as_ref().map(|pem| format!("<{} bytes>", pem.len()));
        f.debug_struct("Tls")
            .field("ca", &shown(&self.ca))
            .field("identity", &shown(&self.identity))
            .finish()
    }
}

impl Etcd {
    /// A client of `endpoints` whose calls each end within `timeout`.
    pub fn new(endpoints: Vec<url::Url>, tls: Tls, timeout: Duration) -> Result<Etcd, EtcdError> {
        let per_try = timeout / endpoints.len().max(1) as u32;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(per_try)
            .timeout(per_try)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(ca) = &tls.ca {
            let cert = reqwest::Certificate::from_pem(ca).map_err(|e| {
                EtcdError::Setup(format!("fleet.ca_file: not a PEM certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(id) = &tls.identity {
            let identity = reqwest::Identity::from_pem(id).map_err(|e| {
                EtcdError::Setup(format!(
                    "fleet.cert_file/key_file: not a PEM certificate and key: {e}"
                ))
            })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| EtcdError::Setup(format!("cannot set up the etcd client: {e}")))?;
        Ok(Etcd {
            http,
            endpoints,
            preferred: AtomicUsize::new(0),
            timeout,
            clock: Mutex::new(None),
        })
    }

    /// The latest measure of this host's clock against etcd's, if any.
    pub fn clock(&self) -> Option<ClockReading> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// POSTs `body` to `path` on the preferred endpoint, then the others, within the bound.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let deadline = Instant::now() + self.timeout;
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = String::from("no endpoint");
        for i in 0..self.endpoints.len() {
            let n = (first + i) % self.endpoints.len();
            if Instant::now() >= deadline {
                break;
            }
            let endpoint = &self.endpoints[n];
            match self.call_one(endpoint, path, body).await {
                Ok(v) => {
                    self.preferred.store(n, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => last = format!("{}: {e}", crate::redact::parsed(endpoint)),
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    /// One POST to one endpoint; an answer that is not 200 or an etcd error body is an error
    /// (the next endpoint is tried: a member without a leader says so).
    async fn call_one(
        &self,
        endpoint: &url::Url,
        path: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let url = endpoint.join(path).map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let rtt = sent.elapsed();
        let status = resp.status();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&Utc));
        let bytes = body_capped(resp).await?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| format!("HTTP {status}, not JSON"))?;
        if !status.is_success() || value.get("error").is_some() {
            let msg = value
                .get("message")
                .or_else(|| value.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(format!(
                "HTTP {status}: {}",
                crate::escape::control(&msg.chars().take(200).collect::<String>())
            ));
        }
        if let Some(date) = date {
            self.note_clock(date, sent, rtt);
        }
        Ok(value)
    }

    /// Keeps the clock reading of an answer dated `date`, sent at `sent`, back after `rtt`.
    fn note_clock(&self, date: DateTime<Utc>, sent: Instant, rtt: Duration) {
        let now = Utc::now();
        let local_mid = now - chrono::TimeDelta::from_std(rtt / 2).unwrap_or_default();
        // `Date` is truncated to the second: etcd's clock was in [date, date + 1 s).
        let etcd_mid = date + chrono::TimeDelta::milliseconds(500);
        let reading = ClockReading {
            at: sent + rtt,
            offset_ms: (local_mid - etcd_mid).num_milliseconds(),
            uncertainty_ms: 500 + (rtt / 2).as_millis() as i64,
        };
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(reading);
    }

    /// Grants a lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/grant", &json!({ "TTL": ttl.as_secs().max(1) }))
            .await?;
        int(&v, "ID").ok_or_else(|| self.protocol("no lease ID in the grant"))
    }

    /// Keeps lease `id` alive; its remaining TTL in seconds (0: it has expired).
    pub async fn keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))
            .await?;
        Ok(v.get("result").and_then(|r| int(r, "TTL")).unwrap_or(0))
    }

    /// Revokes lease `id`, deleting its keys.
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .await
            .map(drop)
    }

    /// Runs a transaction (`compare`, `success`, `failure` as etcd's JSON names them):
    /// whether it succeeded, the revision after it, and the ranges its branch read.
    pub async fn txn(&self, body: Value) -> Result<TxnResult, EtcdError> {
        let v = self.call("/v3/kv/txn", &body).await?;
        let revision = v
            .get("header")
            .and_then(|h| int(h, "revision"))
            .ok_or_else(|| self.protocol("no revision in the transaction's header"))?;
        let succeeded = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let ranges = v
            .get("responses")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r.get("response_range").or_else(|| r.get("responseRange")))
                    .flat_map(kvs)
                    .collect()
            })
            .unwrap_or_default();
        Ok(TxnResult {
            succeeded,
            revision: revision as u64,
            ranges,
        })
    }

    fn protocol(&self, what: &str) -> EtcdError {
        let n = self.preferred.load(Ordering::Relaxed);
        EtcdError::Protocol {
            endpoint: self
                .endpoints
                .get(n)
                .map(crate::redact::parsed)
                .unwrap_or_default(),
            what: what.into(),
        }
    }
}

/// What a transaction did.
#[derive(Debug, Clone)]
pub struct TxnResult {
    /// Whether its comparisons held (the success branch ran).
    pub succeeded: bool,
    /// The store's revision after it: the revision of its writes when it wrote.
    pub revision: u64,
    /// The key-value pairs its branch's ranges read.
    pub ranges: Vec<Kv>,
}

/// A request that puts `value` at `key`, on lease `lease` when not 0.
pub fn put(key: &str, value: &[u8], lease: i64) -> Value {
    let mut put = json!({ "key": b64(key), "value": B64.encode(value) });
    if lease != 0 {
        put["lease"] = json!(lease.to_string());
    }
    json!({ "request_put": put })
}

/// A request that deletes `key`.
pub fn delete(key: &str) -> Value {
    json!({ "request_delete_range": { "key": b64(key) } })
}

/// A request that reads `key`.
pub fn get(key: &str) -> Value {
    json!({ "request_range": { "key": b64(key) } })
}

/// A request that reads every key under `prefix` (which ends with `/`).
pub fn get_prefix(prefix: &str) -> Value {
    json!({ "request_range": { "key": b64(prefix), "range_end": b64(&prefix_end(prefix)) } })
}

/// A comparison that holds when `key` does not exist.
pub fn absent(key: &str) -> Value {
    json!({ "target": "CREATE", "key": b64(key), "create_revision": "0", "result": "EQUAL" })
}

/// A comparison that holds when no key starts with `prefix` (which ends with `/`).
pub fn none_under(prefix: &str) -> Value {
    json!({ "target": "CREATE", "key": b64(prefix), "range_end": b64(&prefix_end(prefix)),
            "create_revision": "0", "result": "EQUAL" })
}

/// A comparison that holds when `key` was last changed at `revision`.
pub fn unchanged(key: &str, revision: u64) -> Value {
    json!({ "target": "MOD", "key": b64(key), "mod_revision": revision.to_string(), "result": "EQUAL" })
}

/// `text` in base64, as the gateway wants keys.
fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// The end of the range of keys starting with `prefix`: its last byte plus one.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An int64 field, which the gateway writes as a string.
fn int(v: &Value, field: &str) -> Option<i64> {
    match v.get(field)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The `kvs` of a range answer.
fn kvs(v: &Value) -> Vec<Kv> {
    let Some(list) = v.get("kvs").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|kv| {
            let key = B64.decode(kv.get("key")?.as_str()?).ok()?;
            let value = match kv.get("value").and_then(Value::as_str) {
                Some(v) => B64.decode(v).ok()?,
                None => Vec::new(),
            };
            Some(Kv {
                key: String::from_utf8(key).ok()?,
                value,
                create_revision: int(kv, "create_revision").unwrap_or(0) as u64,
                mod_revision: int(kv, "mod_revision").unwrap_or(0) as u64,
            })
        })
        .collect()
}

/// A reqwest error with its causes (connection refused, timed out), without the URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    /// An endpoint answering a body past the cap (chunked, so without Content-Length) is
    /// refused rather than read whole (before, `bytes()` read any size into memory).
    #[tokio::test]
    async fn a_huge_answer_is_refused() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..6 {
                let _ = conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
                let _ = conn.write_all(&chunk);
                let _ = conn.write_all(b"\r\n");
            }
            let _ = conn.write_all(b"0\r\n\r\n");
        });
        let url = url::Url::parse(&format!("http://{addr}")).unwrap();
        let etcd = Etcd::new(vec![url], Tls::default(), Duration::from_secs(5)).unwrap();
        let e = etcd.txn(json!({})).await.unwrap_err().to_string();
        assert!(e.contains("larger than 4 MiB"), "{e}");
    }

    /// The client key must not reach a log line through `{:?}` (before, `Tls` derived
    /// `Debug` and printed the key PEM).
    #[test]
    fn tls_debug_shows_no_key() {
        let tls = Tls {
            ca: Some(b"CA PEM".to_vec()),
            identity: Some(b"-----BEGIN PRIVATE KEY-----secret".to_vec()),
        };
        let shown = format!("{tls:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert!(!shown.contains("67, 65"), "bytes of the PEM shown: {shown}");
        assert!(shown.contains("<33 bytes>"), "{shown}");
    }

    use super::*;

    #[test]
    fn a_prefix_range_ends_just_past_the_prefix() {
        assert_eq!(prefix_end("/opsd/slots/"), "/opsd/slots0");
    }

    #[test]
    fn range_answers_are_decoded_with_their_revisions() {
        let v = json!({"kvs":[{"key":"L29wc2Qvc2xvdHMvYS8x","create_revision":"2","mod_revision":"3","version":"1","value":"d2ViLTAx"}],"count":"1"});
        assert_eq!(
            kvs(&v),
            [Kv {
                key: "/opsd/slots/a/1".into(),
                value: b"web-01".to_vec(),
                create_revision: 2,
                mod_revision: 3
            }]
        );
    }
}
