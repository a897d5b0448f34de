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
    /// etcd answered, and refused the request (the same on every member, so no other is
    /// tried): a lease that does not exist, an invalid request.
    #[error("etcd at {endpoint} refused the request: {message} (gRPC code {code})")]
    Rejected {
        /// The endpoint.
        endpoint: String,
        /// etcd's gRPC status code.
        code: i64,
        /// etcd's message.
        message: String,
    },
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

impl EtcdError {
    /// Whether etcd said a lease of the request does not exist (expired, revoked, or lost
    /// with a restore of etcd's data).
    pub fn is_lease_not_found(&self) -> bool {
        matches!(self, EtcdError::Rejected { code: GRPC_NOT_FOUND, message, .. }
            if message.contains("lease not found"))
    }
}

/// gRPC's status code "not found".
const GRPC_NOT_FOUND: i64 = 5;

/// gRPC status codes that every member would answer alike (invalid argument, not found,
/// failed precondition, out of range): such an answer is final, not a reason to fail over.
const FINAL_CODES: [i64; 4] = [3, GRPC_NOT_FOUND, 9, 11];

/// Why one call to one endpoint failed.
#[derive(Debug)]
enum Failure {
    /// The endpoint is of no use now (no connection, no leader, 5xx, not etcd): try the next.
    Next(String),
    /// etcd refused the request (gRPC `code`, message): every member would.
    Final(i64, String),
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
    /// The lease it lives on (0: none).
    pub lease: i64,
}

/// One measure of this host's clock against etcd's: etcd's `Date` (whole seconds) at the
/// middle of the round trip.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading {
    /// When it was taken (monotonic).
    pub at: Instant,
    /// This host's wall clock at `at`, to see a step of it since.
    pub wall: DateTime<Utc>,
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

    /// The bound on one call, all endpoints tried.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Measures this host's clock against etcd's now (one call that writes nothing).
    pub async fn measure_clock(&self) -> Result<(), EtcdError> {
        self.call("/v3/maintenance/status", &json!({}))
            .await
            .map(drop)
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
                Err(Failure::Final(code, message)) => {
                    self.preferred.store(n, Ordering::Relaxed);
                    return Err(EtcdError::Rejected {
                        endpoint: crate::redact::parsed(endpoint),
                        code,
                        message,
                    });
                }
                Err(Failure::Next(e)) => last = format!("{}: {e}", crate::redact::parsed(endpoint)),
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    /// One POST to one endpoint; an answer that is not 200 or an etcd error body is an error:
    /// final when etcd refused the request ([`FINAL_CODES`]), else the next endpoint is tried
    /// (a member without a leader, a 5xx, no connection).
    async fn call_one(
        &self,
        endpoint: &url::Url,
        path: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        let url = endpoint
            .join(path)
            .map_err(|e| Failure::Next(e.to_string()))?;
        let sent = Instant::now();
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Failure::Next(error_chain(&e)))?;
        let received = (Instant::now(), Utc::now());
        let status = resp.status();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&Utc));
        let bytes = body_capped(resp).await.map_err(Failure::Next)?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| Failure::Next(format!("HTTP {status}, not JSON")))?;
        if let Some(date) = date {
            // Any answer of etcd's, a refusal included, dates its clock.
            self.note_clock(date, sent, received);
        }
        if !status.is_success() || value.get("error").is_some() {
            return Err(refusal(status, &value));
        }
        Ok(value)
    }

    /// Keeps the clock reading of an answer dated `date`, sent at `sent` and `received`
    /// (monotonic, wall) back.
    fn note_clock(&self, date: DateTime<Utc>, sent: Instant, received: (Instant, DateTime<Utc>)) {
        let (at, wall) = received;
        let rtt = at.saturating_duration_since(sent);
        let local_mid = wall - chrono::TimeDelta::from_std(rtt / 2).unwrap_or_default();
        // `Date` is truncated to the second: etcd's clock was in [date, date + 1 s).
        let etcd_mid = date + chrono::TimeDelta::milliseconds(500);
        let reading = ClockReading {
            at,
            wall,
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

/// The failure an error answer (HTTP `status`, body `value`) stands for: final when it
/// carries one of [`FINAL_CODES`] (in `code`, or `error.grpc_code` on a streamed call), or has
/// no code and a 4xx status other than 408 and 429; else the next endpoint is tried.
fn refusal(status: reqwest::StatusCode, value: &Value) -> Failure {
    let error = value.get("error");
    let message = value
        .get("message")
        .or_else(|| error.and_then(|e| e.get("message")))
        .or(error)
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let message =
        crate::escape::control(&message.chars().take(200).collect::<String>()).into_owned();
    let code = value
        .get("code")
        .or_else(|| error.and_then(|e| e.get("grpc_code")))
        .and_then(Value::as_i64);
    let is_final = match code {
        Some(code) => FINAL_CODES.contains(&code),
        None => {
            status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        }
    };
    match (is_final, code) {
        (true, code) => Failure::Final(code.unwrap_or(-1), message),
        (false, _) => Failure::Next(format!("HTTP {status}: {message}")),
    }
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
                lease: int(kv, "lease").unwrap_or(0),
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

    /// An endpoint on loopback that answers every request with `status` and `body`.
    fn answering(status: &'static str, body: &'static str) -> url::Url {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url::Url::parse(&format!("http://{addr}")).unwrap()
    }

    const TXN_OK: &str = r#"{"header":{"revision":"7"},"succeeded":true}"#;

    /// A member that answers 503 (no leader) or a gRPC "unavailable" is skipped for the next
    /// one, within the same call.
    #[tokio::test]
    async fn an_unavailable_member_is_failed_over() {
        let no_leader = answering(
            "503 Service Unavailable",
            r#"{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}"#,
        );
        let timed_out = answering(
            "200 OK",
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: request timed out"}}"#,
        );
        let good = answering("200 OK", TXN_OK);
        let etcd = Etcd::new(
            vec![no_leader, timed_out, good],
            Tls::default(),
            Duration::from_secs(3),
        )
        .unwrap();
        let done = etcd.txn(json!({})).await.unwrap();
        assert_eq!(done.revision, 7);
    }

    /// "lease not found" is etcd's final word, the same on every member: it is returned as
    /// such (the claim then replaces its lease) instead of trying the others and calling etcd
    /// unreachable.
    #[tokio::test]
    async fn a_lease_not_found_is_final_and_recognised() {
        let not_found = answering(
            "404 Not Found",
            r#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#,
        );
        let good = answering("200 OK", TXN_OK);
        let etcd = Etcd::new(
            vec![not_found, good],
            Tls::default(),
            Duration::from_secs(3),
        )
        .unwrap();
        let e = etcd.txn(json!({})).await.unwrap_err();
        assert!(e.is_lease_not_found(), "{e}");
        assert!(e.to_string().contains("requested lease not found"), "{e}");
    }

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
                mod_revision: 3,
                lease: 0
            }]
        );
    }
}
