//! The certificate chain a server sent: whether it is trusted, whether it is valid for the name,
//! and the fields an operator reads (subject, issuer, serial, SANs, expiry, key, signature).
//!
//! Trust and the name are checked apart (rustls's webpki functions), so a wrong-hostname
//! certificate from an unknown CA shows both problems. Fields come from x509-parser; every text
//! field is the certificate owner's text and is escaped where it is printed (`table.rs`).

use super::trust::Trust;
use chrono::{DateTime, Utc};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::CertificateError;
use std::fmt;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// One certificate's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=www.example.com`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The issuer's common name (or the whole issuer name when it has none), for tables.
    pub issuer_short: String,
    /// Serial number, hex bytes separated by `:`.
    pub serial: String,
    /// Subject alternative names: `DNS:name`, `IP:address`, ...
    pub sans: Vec<String>,
    /// Not valid before.
    pub not_before: DateTime<Utc>,
    /// Not valid after.
    pub not_after: DateTime<Utc>,
    /// Whole days from the probe to `not_after`, rounded toward zero: 0 in the last day before
    /// expiry and in the first day after, -1 a day after.
    pub days_left: i64,
    /// Past `not_after` at the probe.
    pub expired: bool,
    /// Key type and size, e.g. `RSA 2048`, `EC P-256`, `Ed25519`.
    pub key: String,
    /// Signature algorithm, e.g. `sha256WithRSAEncryption`.
    pub signature: String,
    /// A CA certificate (basicConstraints CA:TRUE).
    pub is_ca: bool,
}

/// Why a chain is not trusted or not valid for the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// A certificate in the path is past its `not_after`.
    Expired,
    /// A certificate in the path is not valid yet.
    NotYetValid,
    /// The chain does not lead to a trusted root.
    UnknownIssuer,
    /// The leaf is not valid for the SNI name (or address).
    NotValidForName,
    /// Anything else webpki refused, in its words.
    Other(String),
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Expired => f.write_str("expired"),
            ChainProblem::NotYetValid => f.write_str("not valid yet"),
            ChainProblem::UnknownIssuer => f.write_str("unknown issuer"),
            ChainProblem::NotValidForName => f.write_str("not valid for the name"),
            ChainProblem::Other(what) => f.write_str(what),
        }
    }
}

impl From<rustls::Error> for ChainProblem {
    fn from(e: rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    ChainProblem::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    ChainProblem::NotYetValid
                }
                CertificateError::UnknownIssuer => ChainProblem::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => ChainProblem::NotValidForName,
                other => ChainProblem::Other(in_words(&format!("{other:?}"))),
            },
            other => ChainProblem::Other(other.to_string()),
        }
    }
}

/// A webpki refusal rustls has no variant for (its debug text, e.g.
/// `Other(OtherError(CaUsedAsEndEntity))`) in words; an unknown one keeps its name.
fn in_words(debug: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        (
            "CaUsedAsEndEntity",
            "a CA certificate is used as the server's certificate",
        ),
        ("EndEntityUsedAsCa", "a server certificate is used as a CA"),
        (
            "RequiredEkuNotFound",
            "not for server authentication (extended key usage)",
        ),
        (
            "InvalidPurpose",
            "not for server authentication (extended key usage)",
        ),
        (
            "NameConstraintViolation",
            "a name outside its CA's name constraints",
        ),
        (
            "PathLenConstraintViolated",
            "the chain is longer than a CA allows",
        ),
        ("MaximumPathDepthExceeded", "the chain is too long"),
        (
            "UnsupportedSignatureAlgorithm",
            "a signature algorithm the verifier does not support",
        ),
        ("BadSignature", "a signature in the chain does not verify"),
        (
            "UnhandledCriticalExtension",
            "a critical extension the verifier does not know",
        ),
        (
            "UnsupportedCertVersion",
            "a certificate version other than 3",
        ),
        ("Revoked", "revoked"),
        ("BadDer", "a certificate that does not parse"),
        ("BadEncoding", "a certificate that does not parse"),
    ];
    for (name, words) in WORDS {
        if debug.contains(name) {
            return (*words).to_string();
        }
    }
    let name: String = debug
        .rsplit('(')
        .next()
        .unwrap_or(debug)
        .trim_end_matches(')')
        .chars()
        .take(80)
        .collect();
    format!("refused by the verifier ({name})")
}

/// The chain as examined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Each certificate as the server sent it, leaf first; `Err` for one that does not parse.
    pub certificates: Vec<Result<CertInfo, String>>,
    /// Whether the chain leads to a trusted root (dates included).
    pub trusted: Result<(), ChainProblem>,
    /// Whether the leaf is valid for the SNI name (or the address).
    pub hostname: Result<(), ChainProblem>,
    /// The server stapled an OCSP response (information only).
    pub ocsp_stapled: bool,
}

impl ChainReport {
    /// The leaf's fields, if it parsed.
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.certificates.first().and_then(|c| c.as_ref().ok())
    }

    /// The certificate that expires first (leaf or intermediate) and its position (0 = leaf).
    pub fn first_to_expire(&self) -> Option<(usize, &CertInfo)> {
        self.certificates
            .iter()
            .enumerate()
            .filter_map(|(n, c)| c.as_ref().ok().map(|c| (n, c)))
            .min_by_key(|(_, c)| c.not_after)
    }
}

/// Examines `chain` (leaf first) for `name` against `trust` at `now`.
pub fn examine(
    chain: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    ocsp_stapled: bool,
    trust: &Trust,
    now: DateTime<Utc>,
) -> ChainReport {
    let certificates = chain.iter().map(|c| parse(c, now)).collect();
    let (trusted, hostname) = match chain.split_first() {
        None => (
            Err(ChainProblem::Other("the server sent no certificate".into())),
            Err(ChainProblem::Other("the server sent no certificate".into())),
        ),
        Some((leaf, intermediates)) => match ParsedCertificate::try_from(leaf) {
            Err(e) => (Err(e.clone().into()), Err(e.into())),
            Ok(parsed) => {
                let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(now.timestamp()).unwrap_or(0),
                ));
                let algorithms = super::versions::provider().signature_verification_algorithms;
                let trusted = verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    trust.roots(),
                    intermediates,
                    at,
                    algorithms.all,
                )
                .map_err(ChainProblem::from);
                let hostname = verify_server_name(&parsed, name).map_err(ChainProblem::from);
                (trusted, hostname)
            }
        },
    };
    ChainReport {
        certificates,
        trusted,
        hostname,
        ocsp_stapled,
    }
}

/// One certificate's fields, or why it does not parse.
pub fn parse(der: &CertificateDer<'_>, now: DateTime<Utc>) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    let registry = oid_registry();
    let time = |t: ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0)
            .ok_or_else(|| "a date out of range".to_string())
    };
    let not_before = time(cert.validity().not_before)?;
    let not_after = time(cert.validity().not_after)?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(general_name).collect(),
        Ok(None) => Vec::new(),
        Err(e) => vec![format!("(unreadable: {e})")],
    };
    let issuer_short = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| cert.issuer().to_string());
    let signature = oid2sn(&cert.signature_algorithm.algorithm, registry)
        .map(str::to_string)
        .unwrap_or_else(|_| cert.signature_algorithm.algorithm.to_id_string());
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        issuer_short,
        serial: cert.raw_serial_as_string(),
        sans,
        not_before,
        not_after,
        days_left: (not_after - now).num_days(),
        expired: not_after < now,
        key: key_description(cert.public_key()),
        signature,
        is_ca: cert.is_ca(),
    })
}

/// `RSA 2048`, `EC P-256`, `Ed25519`, or the key's algorithm name.
fn key_description(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let registry = oid_registry();
    let algorithm = oid2sn(&spki.algorithm.algorithm, registry)
        .map(str::to_string)
        .unwrap_or_else(|_| spki.algorithm.algorithm.to_id_string());
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid2sn(&oid, registry) {
                    Ok("prime256v1") => "P-256".to_string(),
                    Ok("secp384r1") => "P-384".to_string(),
                    Ok("secp521r1") => "P-521".to_string(),
                    Ok(name) => name.to_string(),
                    Err(_) => oid.to_id_string(),
                });
            match curve {
                Some(curve) => format!("EC {curve}"),
                None => format!("EC {}", point.key_size()),
            }
        }
        Ok(PublicKey::DSA(y)) => format!("DSA {}", y.len() * 8),
        _ if algorithm == "ed25519" => "Ed25519".to_string(),
        _ if algorithm == "ed448" => "Ed448".to_string(),
        _ => algorithm,
    }
}

/// One SAN as `DNS:name`, `IP:address`, `email:...`, `URI:...`.
fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let b: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                format!("IP:{}", std::net::Ipv4Addr::from(b))
            }
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(bytes);
                format!("IP:{}", std::net::Ipv6Addr::from(b))
            }
            _ => format!("IP:{}", hex::encode(bytes)),
        },
        GeneralName::RFC822Name(mail) => format!("email:{mail}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        other => format!("{other}"),
    }
}
