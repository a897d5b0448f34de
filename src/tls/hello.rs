//! A hand-built ClientHello for the versions rustls does not speak (TLS 1.0 and 1.1, and TLS 1.2
//! with the older cipher suites), and a reader for the server's answer.
//!
//! No cryptography: the server's choice is in its ServerHello, the first handshake message it
//! sends, in the clear, and in these versions its certificate chain follows in the clear too
//! (the Certificate message); the probe hangs up after reading them. The reader is bounded
//! ([`Flight`]): records of at most 18 KiB (the TLS limit), messages of at most 64 KiB, 256 KiB
//! in all, so a server that sends gigabytes costs 256 KiB; the caller bounds the time.

use super::Version;
use rustls::pki_types::CertificateDer;
use rustls::{AlertDescription, CipherSuite};
use tokio::io::{AsyncRead, AsyncReadExt};

/// TLS record content type of an alert.
const ALERT: u8 = 21;
/// TLS record content type of a handshake message.
const HANDSHAKE: u8 = 22;
/// Handshake message type of ServerHello.
const SERVER_HELLO: u8 = 2;
/// Handshake message type of Certificate.
const CERTIFICATE: u8 = 11;
/// The largest record a server may send (RFC 5246 §6.2.3: 2^14 plus 2048 of expansion).
pub(crate) const MAX_RECORD: usize = 16384 + 2048;
/// The largest handshake message read: rustls's own limit (64 KiB), so a chain the TLS 1.2 and
/// 1.3 handshakes would refuse is refused here too.
pub(crate) const MAX_MESSAGE: usize = 0xffff;
/// The most read from one server in all (record headers included): a ServerHello and a
/// Certificate message at their largest, with room for the headers of small records.
pub(crate) const MAX_FLIGHT: usize = 4 * MAX_MESSAGE;

/// Cipher suites that TLS 1.0 and 1.1 servers choose from: ECDHE and RSA key exchange with
/// AES-CBC, 3DES and RC4, so that a server offering any legacy suite can say yes.
const LEGACY_SUITES: &[u16] = &[
    0xc00a, 0xc009, 0xc014, 0xc013, 0x0039, 0x0033, 0x0035, 0x002f, 0xc012, 0xc008, 0x000a, 0xc011,
    0xc007, 0x0005, 0x0004,
];
/// TLS 1.2-only suites added to the TLS 1.2 hello: AES-GCM and ChaCha20 with ECDHE, DHE and RSA.
const TLS12_SUITES: &[u16] = &[
    0xc02c, 0xc02b, 0xc030, 0xc02f, 0xcca9, 0xcca8, 0x009f, 0x009e, 0x009d, 0x009c, 0xc024, 0xc023,
    0xc028, 0xc027, 0x003d, 0x003c,
];
/// Named groups offered for ECDHE: x25519, P-256, P-384, P-521.
const GROUPS: &[u16] = &[0x001d, 0x0017, 0x0018, 0x0019];
/// Signature algorithms offered in the TLS 1.2 hello (RSA and ECDSA with SHA-2 and SHA-1).
const SIGNATURE_ALGORITHMS: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201, 0x0203,
];

/// The server's answer to a hand-built ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A ServerHello choosing this protocol version and cipher suite.
    ServerHello {
        /// The version in the ServerHello (`0x0301` = TLS 1.0 ... `0x0303` = TLS 1.2).
        version: u16,
        /// The chosen cipher suite.
        cipher: u16,
    },
    /// An alert record.
    Alert(u8),
    /// The connection closed before a whole record arrived.
    Closed,
    /// Something that is not a TLS answer.
    NotTls(String),
}

/// Appends `bytes` preceded by its length in `width` bytes (big-endian).
fn put_vec(out: &mut Vec<u8>, width: usize, bytes: &[u8]) {
    let len = bytes.len().to_be_bytes();
    out.extend_from_slice(&len[len.len() - width..]);
    out.extend_from_slice(bytes);
}

/// Appends one extension: type and length-prefixed body.
fn put_extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_vec(out, 2, body);
}

/// A list of 16-bit values as bytes.
fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A ClientHello record offering exactly `version` (TLS 1.0, 1.1 or 1.2), with SNI for `sni`.
pub(crate) fn client_hello(version: Version, sni: Option<&str>) -> Vec<u8> {
    let wire = version.wire();
    let mut suites = Vec::new();
    if version == Version::Tls12 {
        suites.extend_from_slice(TLS12_SUITES);
    }
    suites.extend_from_slice(LEGACY_SUITES);

    let mut extensions = Vec::new();
    if let Some(name) = sni {
        // server_name: a list holding one host_name entry.
        let mut entry = vec![0u8];
        put_vec(&mut entry, 2, name.as_bytes());
        let mut list = Vec::new();
        put_vec(&mut list, 2, &entry);
        put_extension(&mut extensions, 0x0000, &list);
    }
    let mut groups = Vec::new();
    put_vec(&mut groups, 2, &u16s(GROUPS));
    put_extension(&mut extensions, 0x000a, &groups);
    // ec_point_formats: uncompressed only.
    put_extension(&mut extensions, 0x000b, &[1, 0]);
    if version == Version::Tls12 {
        let mut algorithms = Vec::new();
        put_vec(&mut algorithms, 2, &u16s(SIGNATURE_ALGORITHMS));
        put_extension(&mut extensions, 0x000d, &algorithms);
    }
    // renegotiation_info, empty: servers that insist on secure renegotiation accept it.
    put_extension(&mut extensions, 0xff01, &[0]);

    let mut body = Vec::new();
    body.extend_from_slice(&wire.to_be_bytes());
    body.extend((0..32).map(|_| fastrand::u8(..)));
    body.push(0); // no session id
    put_vec(&mut body, 2, &u16s(&suites));
    body.extend_from_slice(&[1, 0]); // compression: null only
    put_vec(&mut body, 2, &extensions);

    let mut handshake = vec![1u8]; // client_hello
    put_vec(&mut handshake, 3, &body);

    let mut record = vec![HANDSHAKE];
    record.extend_from_slice(&wire.to_be_bytes());
    put_vec(&mut record, 2, &handshake);
    record
}

/// A server's handshake flight, read one handshake message at a time: messages may be split
/// across records (down to one byte each) or share one. Bounded: each record by [`MAX_RECORD`],
/// each message by [`MAX_MESSAGE`], and everything read by [`MAX_FLIGHT`] (record headers
/// included, so a server sending one-byte records runs out of allowance as fast as one sending
/// big ones); the caller bounds the time.
pub(crate) struct Flight<R> {
    /// The connection.
    reader: R,
    /// Handshake bytes read but not yet taken as a message.
    pending: Vec<u8>,
    /// Bytes read from the connection so far.
    taken: usize,
}

impl<R: AsyncRead + Unpin> Flight<R> {
    /// A flight read from `reader`.
    pub(crate) fn new(reader: R) -> Self {
        Flight {
            reader,
            pending: Vec::new(),
            taken: 0,
        }
    }

    /// The next handshake message (its type and body), or the answer that ended the flight
    /// instead: an alert, the connection closing, or bytes that are not TLS.
    pub(crate) async fn message(&mut self) -> std::io::Result<Result<(u8, Vec<u8>), Answer>> {
        loop {
            if let [kind, a, b, c, ..] = self.pending[..] {
                let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                if len > MAX_MESSAGE {
                    return Ok(Err(Answer::NotTls(format!(
                        "a handshake message of {len} bytes (the most read is {MAX_MESSAGE})"
                    ))));
                }
                if self.pending.len() >= 4 + len {
                    let body = self.pending[4..4 + len].to_vec();
                    self.pending.drain(..4 + len);
                    return Ok(Ok((kind, body)));
                }
            }
            let mut header = [0u8; 5];
            if !read_all(&mut self.reader, &mut header).await? {
                return Ok(Err(Answer::Closed));
            }
            let [kind, major, _minor, len_hi, len_lo] = header;
            let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
            if !(kind == ALERT || kind == HANDSHAKE) || major != 3 {
                return Ok(Err(Answer::NotTls(format!(
                    "the answer starts with bytes {}",
                    hex::encode(header)
                ))));
            }
            if len > MAX_RECORD || len == 0 {
                return Ok(Err(Answer::NotTls(format!("a record of {len} bytes"))));
            }
            self.taken += header.len() + len;
            if self.taken > MAX_FLIGHT {
                return Ok(Err(Answer::NotTls(format!(
                    "more than {MAX_FLIGHT} bytes of handshake"
                ))));
            }
            let mut body = vec![0u8; len];
            if !read_all(&mut self.reader, &mut body).await? {
                return Ok(Err(Answer::Closed));
            }
            if kind == ALERT {
                return Ok(Err(match body[..] {
                    [_level, description, ..] => Answer::Alert(description),
                    _ => Answer::NotTls("an alert record shorter than 2 bytes".to_string()),
                }));
            }
            self.pending.extend_from_slice(&body);
        }
    }
}

/// Fills `buf`; `false` when the connection closed first.
async fn read_all<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads the server's first handshake message and says what it is.
pub(crate) async fn read_answer<R: AsyncRead + Unpin>(
    flight: &mut Flight<R>,
) -> std::io::Result<Answer> {
    Ok(match flight.message().await? {
        Ok((SERVER_HELLO, body)) => parse_server_hello(&body),
        Ok((kind, _)) => Answer::NotTls(format!(
            "handshake message {kind} where a ServerHello belongs"
        )),
        Err(answer) => answer,
    })
}

/// The version and cipher suite of a ServerHello's body: version, 32 bytes of random, session
/// id (length-prefixed), cipher suite.
pub(crate) fn parse_server_hello(hello: &[u8]) -> Answer {
    let version = hello.get(0..2);
    let session_len = hello.get(34).map(|n| usize::from(*n));
    let cipher = session_len.and_then(|n| hello.get(35 + n..37 + n));
    match (version, cipher) {
        (Some(v), Some(c)) => Answer::ServerHello {
            version: u16::from_be_bytes([v[0], v[1]]),
            cipher: u16::from_be_bytes([c[0], c[1]]),
        },
        _ => Answer::NotTls("a ServerHello cut short".to_string()),
    }
}

/// The certificate chain (leaf first) from the message after the ServerHello, which in
/// TLS 1.0 to 1.2 is the Certificate message, in the clear; `Err` says why there is none.
pub(crate) async fn read_chain<R: AsyncRead + Unpin>(
    flight: &mut Flight<R>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    match flight.message().await {
        Ok(Ok((CERTIFICATE, body))) => parse_certificates(&body),
        Ok(Ok((kind, _))) => Err(format!(
            "the server sent handshake message {kind}, not its certificate"
        )),
        Ok(Err(Answer::Alert(code))) => Err(format!(
            "the server sent {} instead of its certificate",
            alert_name(code)
        )),
        Ok(Err(Answer::Closed)) => Err("the server closed before its certificate".to_string()),
        Ok(Err(Answer::NotTls(what))) => Err(format!("its certificate message: {what}")),
        Ok(Err(Answer::ServerHello { .. })) => Err("a second ServerHello".to_string()),
        Err(e) => Err(format!("reading its certificate: {e}")),
    }
}

/// The certificates of a Certificate message's body: a 24-bit length of the list, then each
/// certificate as a 24-bit length and its DER bytes. Every length is checked against what is
/// there.
pub(crate) fn parse_certificates(body: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let u24 = |b: &[u8]| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
    let (Some(head), Some(mut list)) = (body.get(..3), body.get(3..)) else {
        return Err("a Certificate message cut short".to_string());
    };
    if u24(head) != list.len() {
        return Err(format!(
            "a Certificate message whose list claims {} bytes but holds {}",
            u24(head),
            list.len()
        ));
    }
    let mut chain = Vec::new();
    while !list.is_empty() {
        let Some(len) = list.get(..3).map(u24) else {
            return Err("a certificate length cut short".to_string());
        };
        let Some(der) = list.get(3..3 + len) else {
            return Err(format!(
                "a certificate claiming {len} bytes where {} are left",
                list.len() - 3
            ));
        };
        chain.push(CertificateDer::from(der.to_vec()));
        list = &list[3 + len..];
    }
    Ok(chain)
}

/// The IANA name of a cipher suite (`TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA`), or its number.
pub(crate) fn cipher_name(id: u16) -> String {
    match CipherSuite::from(id).as_str() {
        Some(name) => name.to_string(),
        None => format!("0x{id:04x}"),
    }
}

/// The name of an alert (`protocol_version`), or its number.
pub(crate) fn alert_name(code: u8) -> String {
    match AlertDescription::from(code).as_str() {
        Some(name) => format!("{name} alert"),
        None => format!("alert {code}"),
    }
}
