//! The MaxMind download client: a HEAD to learn the current release (free of the daily
//! limit), the `.sha256` checksum, then the zip streamed to a file with a size limit,
//! truncation detection, checksum check and bounded retries on network errors and 5xx.

use super::license::LicenseKey;
use reqwest::header::{CONTENT_DISPOSITION, LAST_MODIFIED};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// MaxMind's download host.
pub const DEFAULT_BASE_URL: &str = "https://download.maxmind.com";
/// Largest zip downloaded unless configured otherwise (GeoLite2-City-CSV is about 50 MB).
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 512 << 20;
/// The longest checksum file read; a real one is about 100 bytes.
const MAX_CHECKSUM_SIZE: u64 = 4096;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How the client talks to MaxMind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadConfig {
    /// Scheme and host (and optional path prefix) of the download service, no trailing `/`.
    pub base_url: String,
    /// Largest zip accepted, in bytes.
    pub max_download_size: u64,
    /// Tries per request in all (first try included) on network errors and 5xx answers.
    pub attempts: u32,
    /// Pause before the second try; doubled before each further one (up to a minute).
    pub backoff: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the server may stay silent mid-answer.
    pub read_timeout: Duration,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            attempts: 4,
            backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Which release of an edition the server offers, as told by its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The file name from `Content-Disposition`, e.g. `GeoLite2-Country-CSV_20191224.zip`.
    pub file_name: Option<String>,
    /// The release date from that name, `YYYYMMDD`.
    pub date: Option<String>,
    /// The `Last-Modified` header as sent.
    pub last_modified: Option<String>,
}

impl Release {
    /// Reads the release from a response's headers.
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Release {
        let file_name = headers
            .get(CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(disposition_file_name);
        let date = file_name.as_deref().and_then(file_name_date);
        let last_modified = headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Release {
            file_name,
            date,
            last_modified,
        }
    }

    /// True when both name the same release: same file date, else same `Last-Modified`.
    /// A release with neither is never the same as anything (so it is downloaded).
    pub fn same_as(&self, other: &Release) -> bool {
        match (&self.date, &other.date) {
            (Some(a), Some(b)) => a == b,
            _ => {
                matches!((&self.last_modified, &other.last_modified), (Some(a), Some(b)) if a == b)
            }
        }
    }

    /// A short label for logs: the file date, else `Last-Modified`, else `unknown`.
    pub fn label(&self) -> &str {
        self.date
            .as_deref()
            .or(self.last_modified.as_deref())
            .unwrap_or("unknown")
    }
}

/// The file name in a `Content-Disposition` value (`attachment; filename=X.zip`).
pub fn disposition_file_name(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (key, v) = part.trim().split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let name = v.trim().trim_matches('"');
        // Keep only the last path component; a server has no business sending folders.
        let name = name.rsplit(['/', '\\']).next()?;
        (!name.is_empty()).then(|| name.to_string())
    })
}

/// The `YYYYMMDD` date in a GeoLite2 file name such as `GeoLite2-Country-CSV_20191224.zip`.
pub fn file_name_date(name: &str) -> Option<String> {
    let stem = name.split('.').next()?;
    let date = stem.rsplit('_').next()?;
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())).then(|| date.to_string())
}

/// Parses a `.sha256` file, `"<64 hex>  <file name>"`, into (lower-case hex, file name).
pub fn parse_checksum(text: &str) -> Option<(String, Option<String>)> {
    let mut words = text.split_whitespace();
    let hex = words.next()?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = words.next().map(|n| n.trim_start_matches('*').to_string());
    if words.next().is_some() {
        return None;
    }
    Some((hex.to_ascii_lowercase(), name))
}

/// A downloaded, checksum-verified zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the zip was written.
    pub path: PathBuf,
    /// The release, from the download's headers.
    pub release: Release,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex, equal to MaxMind's.
    pub sha256: String,
}

/// Why a download failed. None of the messages holds the license key.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// 401 or 403.
    #[error(
        "{edition}: MaxMind refused the credentials (HTTP {status}): the account id or license \
         key is wrong (or the key was revoked)"
    )]
    Unauthorized {
        /// The edition asked for.
        edition: String,
        /// 401 or 403.
        status: u16,
    },
    /// 429.
    #[error(
        "{edition}: MaxMind's daily download limit for this account is reached (HTTP 429); \
         not retrying, the next scheduled run will try again"
    )]
    RateLimited {
        /// The edition asked for.
        edition: String,
    },
    /// 404.
    #[error("{edition}: no such edition at {base_url} (HTTP 404); check the edition name")]
    NotFound {
        /// The edition asked for.
        edition: String,
        /// The configured base URL.
        base_url: String,
    },
    /// Any other unexpected status.
    #[error("{edition}: {what} answered HTTP {status}")]
    Status {
        /// The edition asked for.
        edition: String,
        /// Which request.
        what: &'static str,
        /// The status code.
        status: u16,
    },
    /// Connecting, sending or receiving failed.
    #[error("{edition}: {what} failed: {source}")]
    Network {
        /// The edition asked for.
        edition: String,
        /// Which request.
        what: &'static str,
        /// The HTTP client's error (its URL removed: a storage URL carries a signature).
        source: reqwest::Error,
    },
    /// The zip is larger than `max_download_size`.
    #[error(
        "{edition}: the download is {size} bytes or more, above max_download_size ({limit} bytes)"
    )]
    TooLarge {
        /// The edition asked for.
        edition: String,
        /// The announced size, or how much had arrived when the limit was passed.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The body ended before its announced `Content-Length`.
    #[error("{edition}: the download was cut short: {got} of {expected} bytes arrived")]
    Truncated {
        /// The edition asked for.
        edition: String,
        /// Bytes received.
        got: u64,
        /// `Content-Length`.
        expected: u64,
    },
    /// The checksum file is not in the expected form.
    #[error("{edition}: the checksum file is not \"<sha256 hex>  <file name>\"")]
    BadChecksumFile {
        /// The edition asked for.
        edition: String,
    },
    /// The checksum names another file than the one downloaded.
    #[error(
        "{edition}: the checksum is for {checksum_for} but the download is {downloaded}; a new \
         release probably came out meanwhile, the next run will fetch it"
    )]
    ReleaseChanged {
        /// Name in the checksum file.
        checksum_for: String,
        /// Name of the downloaded file.
        downloaded: String,
        /// The edition asked for.
        edition: String,
    },
    /// The zip's SHA-256 differs from MaxMind's.
    #[error(
        "{edition}: checksum mismatch: the download has SHA-256 {actual}, MaxMind says {expected}"
    )]
    ChecksumMismatch {
        /// The edition asked for.
        edition: String,
        /// From the `.sha256` file.
        expected: String,
        /// Of the bytes received.
        actual: String,
    },
    /// Writing the download to disk failed.
    #[error("{edition}: cannot write {path}: {source}")]
    Io {
        /// The edition asked for.
        edition: String,
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The edition name or base URL does not make a valid URL.
    #[error("{edition}: invalid download URL from base_url {base_url:?}")]
    BadUrl {
        /// The edition asked for.
        edition: String,
        /// The configured base URL.
        base_url: String,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl DownloadError {
    /// True for failures worth another try soon: network errors, 5xx, cut-short bodies.
    pub fn is_transient(&self) -> bool {
        match self {
            DownloadError::Network { .. } | DownloadError::Truncated { .. } => true,
            DownloadError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Talks to MaxMind (or a mirror) for one account.
#[derive(Debug, Clone)]
pub struct MaxMindClient {
    http: reqwest::Client,
    config: DownloadConfig,
    account_id: u64,
    key: LicenseKey,
}

impl MaxMindClient {
    /// Builds a client for `account_id` with `key`.
    pub fn new(
        account_id: u64,
        key: LicenseKey,
        config: DownloadConfig,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("opsd/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()?;
        Ok(MaxMindClient {
            http,
            config,
            account_id,
            key,
        })
    }

    /// The download URL of `edition` with `suffix` (`zip` or `zip.sha256`).
    fn url(&self, edition: &str, suffix: &str) -> Result<Url, DownloadError> {
        let bad = || DownloadError::BadUrl {
            edition: edition.to_string(),
            base_url: self.config.base_url.clone(),
        };
        if edition.is_empty()
            || !edition
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad());
        }
        let base = self.config.base_url.trim_end_matches('/');
        let mut url =
            Url::parse(&format!("{base}/geoip/databases/{edition}/download")).map_err(|_| bad())?;
        url.query_pairs_mut().append_pair("suffix", suffix);
        Ok(url)
    }

    /// A request with the account's basic auth; reqwest drops it on a redirect to another host.
    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(self.account_id, Some(self.key.expose()))
    }

    /// Asks which release of `edition` is current, with a HEAD (not counted by MaxMind).
    pub async fn head(
        &self,
        edition: &str,
        cancel: &CancellationToken,
    ) -> Result<Release, DownloadError> {
        let url = self.url(edition, "zip")?;
        self.with_retries(edition, "HEAD", cancel, || async {
            let resp = self
                .request(reqwest::Method::HEAD, url.clone())
                .send()
                .await
                .map_err(|e| network(edition, "HEAD", e))?;
            self.check_status(edition, "HEAD", resp.status())?;
            Ok(Release::from_headers(resp.headers()))
        })
        .await
    }

    /// Downloads the checksum and then the zip of `edition` into `dir` (as `<edition>.zip`),
    /// checking size limits, length and checksum; on failure no file is left behind.
    pub async fn download(
        &self,
        edition: &str,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Downloaded, DownloadError> {
        let (expected, checksum_for) = self.checksum(edition, cancel).await?;
        let url = self.url(edition, "zip")?;
        let path = dir.join(format!("{edition}.zip"));
        let result = self
            .with_retries(edition, "download", cancel, || {
                self.fetch_to_file(edition, url.clone(), &path)
            })
            .await;
        let downloaded = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        let mismatch =
            if let (Some(want), Some(got)) = (&checksum_for, &downloaded.release.file_name) {
                (want != got).then(|| DownloadError::ReleaseChanged {
                    checksum_for: want.clone(),
                    downloaded: got.clone(),
                    edition: edition.to_string(),
                })
            } else {
                None
            }
            .or_else(|| {
                (downloaded.sha256 != expected).then(|| DownloadError::ChecksumMismatch {
                    edition: edition.to_string(),
                    expected: expected.clone(),
                    actual: downloaded.sha256.clone(),
                })
            });
        if let Some(err) = mismatch {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(err);
        }
        Ok(downloaded)
    }

    /// Fetches and parses the `.sha256` file of `edition`.
    async fn checksum(
        &self,
        edition: &str,
        cancel: &CancellationToken,
    ) -> Result<(String, Option<String>), DownloadError> {
        let url = self.url(edition, "zip.sha256")?;
        let body = self
            .with_retries(edition, "checksum download", cancel, || async {
                let mut resp = self
                    .request(reqwest::Method::GET, url.clone())
                    .send()
                    .await
                    .map_err(|e| network(edition, "checksum download", e))?;
                self.check_status(edition, "checksum download", resp.status())?;
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| network(edition, "checksum download", e))?
                {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > MAX_CHECKSUM_SIZE {
                        return Err(DownloadError::BadChecksumFile {
                            edition: edition.to_string(),
                        });
                    }
                }
                Ok(body)
            })
            .await?;
        std::str::from_utf8(&body)
            .ok()
            .and_then(parse_checksum)
            .ok_or_else(|| DownloadError::BadChecksumFile {
                edition: edition.to_string(),
            })
    }

    /// One try at streaming the zip to `path`, hashing as it goes.
    async fn fetch_to_file(
        &self,
        edition: &str,
        url: Url,
        path: &Path,
    ) -> Result<Downloaded, DownloadError> {
        const WHAT: &str = "download";
        let limit = self.config.max_download_size;
        let mut resp = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(|e| network(edition, WHAT, e))?;
        self.check_status(edition, WHAT, resp.status())?;
        let expected = resp.content_length();
        if let Some(size) = expected.filter(|&n| n > limit) {
            return Err(DownloadError::TooLarge {
                edition: edition.to_string(),
                size,
                limit,
            });
        }
        let release = Release::from_headers(resp.headers());
        let io_err = |source| DownloadError::Io {
            edition: edition.to_string(),
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(io_err)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    return Err(match expected {
                        Some(expected) if e.is_body() || e.is_decode() => {
                            DownloadError::Truncated {
                                edition: edition.to_string(),
                                got: size,
                                expected,
                            }
                        }
                        _ => network(edition, WHAT, e),
                    })
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                return Err(DownloadError::TooLarge {
                    edition: edition.to_string(),
                    size,
                    limit,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_err)?;
        }
        if let Some(expected) = expected.filter(|&n| n != size) {
            return Err(DownloadError::Truncated {
                edition: edition.to_string(),
                got: size,
                expected,
            });
        }
        file.sync_all().await.map_err(io_err)?;
        Ok(Downloaded {
            path: path.to_path_buf(),
            release,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Maps a status to an error; success passes.
    fn check_status(
        &self,
        edition: &str,
        what: &'static str,
        status: StatusCode,
    ) -> Result<(), DownloadError> {
        let edition = edition.to_string();
        match status.as_u16() {
            200..=299 => Ok(()),
            s @ (401 | 403) => Err(DownloadError::Unauthorized { edition, status: s }),
            429 => Err(DownloadError::RateLimited { edition }),
            404 => Err(DownloadError::NotFound {
                edition,
                base_url: self.config.base_url.clone(),
            }),
            s => Err(DownloadError::Status {
                edition,
                what,
                status: s,
            }),
        }
    }

    /// Runs `attempt` up to `config.attempts` times while it fails transiently, pausing with
    /// doubling backoff (plus jitter) in between; returns at once when `cancel` fires.
    async fn with_retries<T, F, Fut>(
        &self,
        edition: &str,
        what: &'static str,
        cancel: &CancellationToken,
        mut attempt: F,
    ) -> Result<T, DownloadError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DownloadError>>,
    {
        let attempts = self.config.attempts.max(1);
        let mut pause = self.config.backoff;
        let mut n = 0;
        loop {
            n += 1;
            let result = tokio::select! {
                r = attempt() => r,
                () = cancel.cancelled() => return Err(DownloadError::Cancelled),
            };
            match result {
                Err(e) if e.is_transient() && n < attempts => {
                    let jitter = pause.mul_f64(fastrand::f64() * 0.25);
                    tracing::warn!(edition, request = what, attempt = n, error = %e,
                        "{what} of {edition} failed (try {n} of {attempts}); retrying in {:?}",
                        pause + jitter);
                    tokio::select! {
                        () = tokio::time::sleep(pause + jitter) => {}
                        () = cancel.cancelled() => return Err(DownloadError::Cancelled),
                    }
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }
}

/// A network error with the URL removed (a storage host's URL carries a signature).
fn network(edition: &str, what: &'static str, e: reqwest::Error) -> DownloadError {
    DownloadError::Network {
        edition: edition.to_string(),
        what,
        source: e.without_url(),
    }
}

#[cfg(test)]
mod tests;
