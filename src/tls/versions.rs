//! Which protocol versions a server accepts, each by its own connection.
//!
//! TLS 1.3 and 1.2 by a real rustls handshake offering that version only, with a verifier that
//! accepts any chain (the certificate is judged separately in `certificate.rs`; a version probe
//! must not fail because of it) but still checks the handshake signature, so "accepted" means a
//! finished handshake. TLS 1.1 and 1.0, which rustls does not speak, by a hand-built ClientHello
//! (`hello.rs`). A TLS 1.2 server that only has cipher suites rustls refuses (CBC, RSA key
//! exchange) is asked again by hand-built hello, so it is not reported as "TLS 1.2 off".

use super::hello::{self, Answer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, InvalidMessage, SignatureScheme};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// A protocol version the probe asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// TLS 1.0 (RFC 2246), deprecated by RFC 8996.
    Tls10,
    /// TLS 1.1 (RFC 4346), deprecated by RFC 8996.
    Tls11,
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl Version {
    /// Every version, newest first (the order of reports and tables).
    pub const ALL: [Version; 4] = [
        Version::Tls13,
        Version::Tls12,
        Version::Tls11,
        Version::Tls10,
    ];

    /// The version number on the wire (`0x0301` for TLS 1.0).
    pub(crate) fn wire(self) -> u16 {
        match self {
            Version::Tls10 => 0x0301,
            Version::Tls11 => 0x0302,
            Version::Tls12 => 0x0303,
            Version::Tls13 => 0x0304,
        }
    }

    /// The short number used in tables: `1.3`.
    pub fn number(self) -> &'static str {
        match self {
            Version::Tls10 => "1.0",
            Version::Tls11 => "1.1",
            Version::Tls12 => "1.2",
            Version::Tls13 => "1.3",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS {}", self.number())
    }
}

/// Whether the server accepts one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The server finished a handshake (1.3, 1.2) or answered ServerHello (1.1, 1.0) with it.
    Accepted {
        /// The negotiated cipher suite, by its IANA name.
        cipher: String,
    },
    /// The server said no: an alert, a lower version, or hanging up.
    Rejected {
        /// How it said no, e.g. "ProtocolVersion alert".
        reason: String,
    },
    /// No answer either way: timeout, a connection that failed, or an answer that is not TLS.
    Unknown {
        /// What went wrong.
        reason: String,
    },
}

impl Support {
    /// True when the server accepts the version.
    pub fn accepted(&self) -> bool {
        matches!(self, Support::Accepted { .. })
    }
}

/// What the server accepts, one entry per version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// TLS 1.3.
    pub tls13: Support,
    /// TLS 1.2.
    pub tls12: Support,
    /// TLS 1.1.
    pub tls11: Support,
    /// TLS 1.0.
    pub tls10: Support,
}

impl Versions {
    /// The entry for one version.
    pub fn get(&self, version: Version) -> &Support {
        match version {
            Version::Tls13 => &self.tls13,
            Version::Tls12 => &self.tls12,
            Version::Tls11 => &self.tls11,
            Version::Tls10 => &self.tls10,
        }
    }

    /// The newest accepted version and its cipher suite.
    pub fn best(&self) -> Option<(Version, &str)> {
        Version::ALL.iter().find_map(|v| match self.get(*v) {
            Support::Accepted { cipher } => Some((*v, cipher.as_str())),
            _ => None,
        })
    }
}

/// A finished rustls handshake, or a hand-built hello the server accepted: the cipher suite and
/// what the server sent for its certificate (a hand-built hello asks for no OCSP staple).
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    /// The negotiated cipher suite.
    pub cipher: String,
    /// The chain as sent, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server stapled an OCSP response.
    pub ocsp_stapled: bool,
}

/// What the server sent, captured during the handshake.
type Seen = Mutex<Option<(Vec<CertificateDer<'static>>, bool)>>;

/// Accepts any certificate chain (recording it), but checks the handshake signatures with the
/// provider's algorithms, so a finished handshake is a real one.
#[derive(Debug)]
struct RecordAnyChain {
    /// The provider whose signature algorithms check the handshake.
    provider: Arc<CryptoProvider>,
    /// The chain and stapled OCSP response the server sent.
    seen: Arc<Seen>,
}

impl ServerCertVerifier for RecordAnyChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((chain, !ocsp_response.is_empty()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The same provider reqwest and the AWS client use (aws-lc-rs), so nothing new is compiled.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// True when rustls speaks the cipher suite of this IANA name.
pub(crate) fn rustls_speaks(cipher: &str) -> bool {
    provider()
        .cipher_suites
        .iter()
        .any(|s| hello::cipher_name(u16::from(s.suite())) == cipher)
}

/// Reads a rustls error out of the `io::Error` tokio-rustls wraps it in.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Did the server say no (an alert, an incompatible answer, hanging up) rather than fail?
fn refusal(e: &io::Error) -> Option<String> {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(alert)) => Some(format!("{alert:?} alert")),
        Some(rustls::Error::PeerIncompatible(why)) => Some(format!("incompatible: {why:?}")),
        Some(_) => None,
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof => Some("closed the connection".to_string()),
            io::ErrorKind::ConnectionReset => Some("reset the connection".to_string()),
            _ => None,
        },
    }
}

/// One rustls handshake offering `version` (1.3 or 1.2) only. `Ok(Err(reason))`: the server
/// said no.
pub(crate) async fn handshake(
    stream: TcpStream,
    server_name: ServerName<'static>,
    version: Version,
) -> Result<Result<Handshake, String>, String> {
    let provider = provider();
    let seen: Arc<Seen> = Arc::default();
    let protocol = match version {
        Version::Tls13 => &rustls::version::TLS13,
        _ => &rustls::version::TLS12,
    };
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[protocol])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordAnyChain {
            provider,
            seen: seen.clone(),
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match connector.connect(server_name, stream).await {
        Ok(mut tls) => {
            let (_, conn) = tls.get_ref();
            let cipher = conn
                .negotiated_cipher_suite()
                .map(|s| hello::cipher_name(u16::from(s.suite())))
                .unwrap_or_else(|| "unknown".to_string());
            let (chain, ocsp_stapled) = seen
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_default();
            // A polite close; the answer does not matter.
            let _ = tls.shutdown().await;
            Ok(Ok(Handshake {
                cipher,
                chain,
                ocsp_stapled,
            }))
        }
        Err(e) => match refusal(&e) {
            Some(reason) => Ok(Err(reason)),
            None => Err(match rustls_error(&e) {
                // The server took the version; what it sent next is over rustls's limit.
                Some(rustls::Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge)) => {
                    "the server sent a handshake message over 64 KiB (a certificate chain this \
                     large is refused)"
                        .to_string()
                }
                Some(tls) => format!("not a TLS answer: {tls}"),
                None => e.to_string(),
            }),
        },
    }
}

/// What a hand-built hello learnt: whether the version is accepted and, when it is, the
/// certificate chain that followed the ServerHello (`Err` says why there is none).
pub(crate) type HelloAnswer = (Support, Option<Result<Handshake, String>>);

/// One hand-built ClientHello offering `version` (1.2, 1.1 or 1.0) only; when the server
/// accepts, its certificate chain is read too, until `deadline` (the version's answer stands
/// when the chain does not come in time).
pub(crate) async fn hello(
    mut stream: TcpStream,
    sni: Option<&str>,
    version: Version,
    deadline: Instant,
) -> Result<HelloAnswer, String> {
    let record = hello::client_hello(version, sni);
    if let Err(e) = stream.write_all(&record).await {
        return match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Ok((
                Support::Rejected {
                    reason: "reset the connection".to_string(),
                },
                None,
            )),
            _ => Err(e.to_string()),
        };
    }
    let mut flight = hello::Flight::new(stream);
    let answer = match hello::read_answer(&mut flight).await {
        Ok(answer) => answer,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
            return Ok((
                Support::Rejected {
                    reason: "reset the connection".to_string(),
                },
                None,
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let rejected = |reason: String| Ok((Support::Rejected { reason }, None));
    match answer {
        Answer::ServerHello { version: v, cipher } if v == version.wire() => {
            let cipher = hello::cipher_name(cipher);
            let chain = match timeout_at(deadline, hello::read_chain(&mut flight)).await {
                Ok(chain) => chain,
                Err(_) => Err("its certificate did not come within the timeout".to_string()),
            };
            let shake = chain.map(|chain| Handshake {
                cipher: cipher.clone(),
                chain,
                ocsp_stapled: false,
            });
            Ok((Support::Accepted { cipher }, Some(shake)))
        }
        Answer::ServerHello { version: v, .. } => {
            rejected(format!("answered with version 0x{v:04x}"))
        }
        Answer::Alert(code) => rejected(hello::alert_name(code)),
        Answer::Closed => rejected("closed the connection".to_string()),
        Answer::NotTls(what) => Err(format!("not a TLS answer: {what}")),
    }
}
