//! The `geoip` job's keys (`GeoipSpec`), their checks beyond serde, and the run settings
//! they give.

use super::ByteSize;
use crate::field::{did_you_mean_hint, FieldError};
use crate::geoip::archive::ZipLimits;
use crate::geoip::download::{DownloadConfig, DEFAULT_BASE_URL};
use crate::geoip::EDITIONS;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// The `type = "geoip"` keys of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeoipSpec {
    /// The MaxMind account id (the basic-auth user name).
    pub account_id: Spanned<i64>,
    /// File holding the license key; default `$CREDENTIALS_DIRECTORY/maxmind-license`.
    pub license_key_file: Option<Spanned<PathBuf>>,
    /// The GeoLite2 CSV editions to fetch, from [`crate::geoip::EDITIONS`].
    pub editions: Spanned<Vec<Spanned<String>>>,
    /// Where the legacy `.dat` files are installed, e.g. `/usr/share/GeoIP`.
    pub output_dir: Spanned<PathBuf>,
    /// A program and arguments run (no shell) after a run that changed some file.
    pub after: Option<Spanned<Vec<String>>>,
    /// The download service (default `https://download.maxmind.com`).
    pub base_url: Option<Spanned<String>>,
    /// The largest zip accepted (default 512 MiB).
    pub max_download_size: Option<Spanned<ByteSize>>,
}

impl GeoipSpec {
    /// Checks what serde cannot: known editions, absolute paths, a usable URL and argv.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |span, key: &str, msg: String| {
            errors.push(FieldError::new(span, format!("{prefix}.{key}"), msg));
        };
        if *self.account_id.get_ref() <= 0 {
            err(
                self.account_id.span(),
                "account_id",
                "account_id must be your MaxMind account number (a positive integer)".into(),
            );
        }
        if let Some(file) = &self.license_key_file {
            if !file.get_ref().is_absolute() {
                err(
                    file.span(),
                    "license_key_file",
                    "license_key_file must be an absolute path".into(),
                );
            }
        }
        if self.editions.get_ref().is_empty() {
            err(
                self.editions.span(),
                "editions",
                format!("list at least one edition (known: {})", EDITIONS.join(", ")),
            );
        }
        let mut seen = Vec::new();
        for edition in self.editions.get_ref() {
            let name = edition.get_ref().as_str();
            if !EDITIONS.contains(&name) {
                let hint = did_you_mean_hint(name, EDITIONS.iter().copied()).unwrap_or_default();
                err(
                    edition.span(),
                    "editions",
                    format!(
                        "unknown edition {name:?}{hint} (known: {})",
                        EDITIONS.join(", ")
                    ),
                );
            } else if seen.contains(&name) {
                err(
                    edition.span(),
                    "editions",
                    format!("{name} is listed twice"),
                );
            }
            seen.push(name);
        }
        if !self.output_dir.get_ref().is_absolute() {
            err(
                self.output_dir.span(),
                "output_dir",
                "output_dir must be an absolute path".into(),
            );
        }
        if let Some(after) = &self.after {
            if after.get_ref().first().is_none_or(|p| p.trim().is_empty()) {
                err(
                    after.span(),
                    "after",
                    "after is empty; give a program and its arguments, e.g. [\"apachectl\", \"graceful\"]"
                        .into(),
                );
            }
        }
        if let Some(url) = &self.base_url {
            let ok = reqwest::Url::parse(url.get_ref())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                err(
                    url.span(),
                    "base_url",
                    format!(
                        "base_url must be an http(s) URL such as {DEFAULT_BASE_URL:?}, not {:?}",
                        url.get_ref()
                    ),
                );
            }
        }
        if let Some(size) = &self.max_download_size {
            if size.get_ref().0 == 0 {
                err(
                    size.span(),
                    "max_download_size",
                    "max_download_size must be more than 0".into(),
                );
            }
        }
        errors
    }

    /// The run settings this spec asks for (defaults for what it leaves out).
    pub fn settings(&self) -> RunSettings {
        let mut download = DownloadConfig::default();
        if let Some(url) = &self.base_url {
            download.base_url = url.get_ref().trim_end_matches('/').to_string();
        }
        if let Some(size) = &self.max_download_size {
            download.max_download_size = size.get_ref().0;
        }
        RunSettings {
            download,
            zip: ZipLimits::default(),
        }
    }
}

/// Limits and network settings of a run, from [`GeoipSpec::settings`] (tests shrink them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// How to talk to MaxMind.
    pub download: DownloadConfig,
    /// What a downloaded zip may unpack to.
    pub zip: ZipLimits,
}
