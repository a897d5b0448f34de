//! The certificates a probe trusts: the machine's store plus an optional `ca_file`.
//!
//! The system store comes from rustls-native-certs (already built for reqwest's platform
//! verifier): it reads the store the administrator manages (`/etc/ssl/certs`, `SSL_CERT_FILE`,
//! `update-ca-certificates`), so a site signed by the company's own CA installed there passes,
//! and Debian's ca-certificates updates apply without rebuilding opsd. A built-in copy
//! (webpki-roots) would disagree with `curl` and browsers on the same machine. Loading parses
//! every root, so it is done once per run and shared by all targets.

use crate::bounded_read;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Largest `ca_file` read: a bundle of every public root is about 200 KiB.
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// A set of trust anchors, cheap to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
}

/// Why a `ca_file` cannot be used. The path is escaped.
#[derive(Debug, Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("ca_file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: bounded_read::ReadError,
    },
    /// The file holds a PEM block that does not parse, or no certificate at all.
    #[error("ca_file {path}: {reason}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Trust {
    /// The system store alone; unreadable or unparsable entries in it are skipped.
    pub fn system() -> Trust {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (_added, _skipped) = roots.add_parsable_certificates(loaded.certs);
        Trust {
            roots: Arc::new(roots),
        }
    }

    /// The system store plus every certificate in the PEM file `ca_file`.
    pub fn with_ca_file(ca_file: &Path) -> Result<Trust, TrustError> {
        let mut trust = Trust::system();
        let extra = Trust::only_ca_file(ca_file)?;
        let roots = Arc::make_mut(&mut trust.roots);
        roots.roots.extend(extra.roots.roots.iter().cloned());
        Ok(trust)
    }

    /// Only the certificates in the PEM file `ca_file` (no system store).
    pub fn only_ca_file(ca_file: &Path) -> Result<Trust, TrustError> {
        let path = || crate::escape::control(&ca_file.display().to_string()).into_owned();
        let pem = bounded_read::read(ca_file, MAX_CA_FILE).map_err(|source| TrustError::Read {
            path: path(),
            source,
        })?;
        let mut roots = RootCertStore::empty();
        for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let content = |reason: String| TrustError::Content {
                path: path(),
                reason: format!("certificate {}: {reason}", n + 1),
            };
            let cert = cert.map_err(|e| content(e.to_string()))?;
            roots.add(cert).map_err(|e| content(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TrustError::Content {
                path: path(),
                reason: "no \"BEGIN CERTIFICATE\" block".to_string(),
            });
        }
        Ok(Trust {
            roots: Arc::new(roots),
        })
    }

    /// The trust anchors.
    pub fn roots(&self) -> &RootCertStore {
        &self.roots
    }
}
