//! Tests of the TLS probe that need no openssl: target parsing, the hand-built hello's bytes,
//! verdicts and the table on made-up reports, and probes of hostile listeners (refusing,
//! silent, streaming garbage) written here; nothing leaves loopback. The probes of real
//! `openssl s_server` processes are in the integration tests (`tests/tls.rs`).

use super::hello::{self, Answer};
use super::starttls::{self, Starttls};
use super::*;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// How long a network test may take before it fails as a hang.
const HANG: Duration = Duration::from_secs(60);
/// The probe timeout for servers that answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// Probes `target`, failing the test if the probe itself hangs.
async fn probe_within(target: &Target, timeout: Duration, trust: &Trust) -> ProbeReport {
    tokio::time::timeout(HANG, probe(target, timeout, trust))
        .await
        .expect("the probe hung past its own timeout")
}

// ---- targets ----------------------------------------------------------------------------

#[test]
fn target_parses_names_ports_ipv6_sni_and_idn() {
    let t = Target::parse("www.example.com:443").unwrap();
    assert_eq!(t.port(), 443);
    assert_eq!(t.sni_name(), Some("www.example.com"));
    assert_eq!(t.to_string(), "www.example.com:443");

    let t = Target::parse("[::1]:8443").unwrap();
    assert_eq!(t.host(), &Host::Ip("::1".parse().unwrap()));
    assert_eq!(t.sni_name(), None);
    assert_eq!(t.to_string(), "[::1]:8443");

    let t = Target::parse("  127.0.0.1:8443   sni=shop.example.com ").unwrap();
    assert_eq!(t.host(), &Host::Ip("127.0.0.1".parse().unwrap()));
    assert_eq!(t.sni_name(), Some("shop.example.com"));
    assert_eq!(t.to_string(), "127.0.0.1:8443 sni=shop.example.com");

    let idn = Target::parse("Bücher.Example:443").unwrap();
    assert_eq!(idn.sni_name(), Some("xn--bcher-kva.example"));
    assert_eq!(idn, Target::parse("xn--bcher-kva.example:443").unwrap());
    let sni = Target::parse("[2001:db8::1]:443 sni=bücher.example").unwrap();
    assert_eq!(sni.sni_name(), Some("xn--bcher-kva.example"));
}

#[test]
fn target_errors_say_what_is_wrong() {
    let err = |text: &str| Target::parse(text).unwrap_err();
    assert_eq!(err("  "), TargetError::Empty);
    assert!(matches!(err("example.com"), TargetError::NoPort { .. }));
    assert!(err("example.com")
        .to_string()
        .contains("\"example.com:443\""));
    assert!(matches!(err("example.com:0"), TargetError::BadPort { .. }));
    assert!(matches!(
        err("example.com:65536"),
        TargetError::BadPort { .. }
    ));
    assert!(matches!(
        err("example.com:https"),
        TargetError::BadPort { .. }
    ));
    assert!(matches!(err("::1:443"), TargetError::BareIpv6 { .. }));
    assert!(matches!(err("[::1:443"), TargetError::BadBrackets { .. }));
    assert!(matches!(err("[::1]x:443"), TargetError::BadBrackets { .. }));
    assert!(matches!(err("[::1]"), TargetError::NoPort { .. }));
    assert!(matches!(err("[not-v6]:443"), TargetError::BadHost { .. }));
    assert!(matches!(
        err("exa mple.com:443"),
        TargetError::UnknownOption { .. }
    ));
    assert!(matches!(err("a<b>.com:443"), TargetError::BadHost { .. }));
    assert!(matches!(
        err("h:443 port=1"),
        TargetError::UnknownOption { .. }
    ));
    assert!(matches!(
        err("h:443 sni=a.b sni=c.d"),
        TargetError::Duplicate { option: "sni", .. }
    ));
    assert!(matches!(
        err("h:443 sni=10.0.0.1"),
        TargetError::BadSni { .. }
    ));
    assert!(matches!(err("h:443 sni="), TargetError::BadSni { .. }));
    assert!(matches!(
        err("h:443 starttls=smtp starttls=imap"),
        TargetError::Duplicate {
            option: "starttls",
            ..
        }
    ));
    let bad = err("h:25 starttls=SMTP\u{1b}");
    assert!(matches!(bad, TargetError::BadStarttls { .. }));
    assert_eq!(
        bad.to_string(),
        "target \"h:25 starttls=SMTP\\u{1b}\": starttls \"SMTP\\u{1b}\" is not one of \"smtp\", \"imap\", \"pop3\""
    );
    // Outside text in a message is escaped: no control character reaches a log line.
    let message = err("h\u{1b}[31m:443").to_string();
    assert!(!message.contains('\u{1b}'), "{message}");
}

// ---- the hand-built hello ---------------------------------------------------------------

#[test]
fn client_hello_is_one_well_formed_record_with_sni() {
    let record = hello::client_hello(Version::Tls11, Some("shop.example.com"));
    assert_eq!(
        &record[..3],
        &[22, 3, 2],
        "handshake record, version TLS 1.1"
    );
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    assert_eq!(record.len(), 5 + len);
    assert_eq!(record[5], 1, "client_hello");
    let body_len = u32::from_be_bytes([0, record[6], record[7], record[8]]) as usize;
    assert_eq!(body_len + 4, len);
    assert_eq!(&record[9..11], &[3, 2], "client_version TLS 1.1");
    let sni = b"shop.example.com";
    assert!(record.windows(sni.len()).any(|w| w == sni));
    let without = hello::client_hello(Version::Tls10, None);
    assert!(!without.windows(sni.len()).any(|w| w == sni));
}

/// The chain `read_chain` read (each certificate's bytes), or why it read none.
type ReadChain = Result<Vec<Vec<u8>>, String>;

/// What `read_answer` (and then `read_chain`) make of `bytes` sent by a server.
fn read_flight(bytes: Vec<u8>) -> (Answer, Option<ReadChain>) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async move {
            let mut flight = hello::Flight::new(&bytes[..]);
            let answer = hello::read_answer(&mut flight).await.unwrap();
            let chain = match answer {
                Answer::ServerHello { .. } => Some(
                    hello::read_chain(&mut flight)
                        .await
                        .map(|c| c.iter().map(|d| d.to_vec()).collect()),
                ),
                _ => None,
            };
            (answer, chain)
        })
}

/// A ServerHello's body: TLS 1.0, session id of 2 bytes, cipher 0xc013.
fn server_hello_body() -> Vec<u8> {
    let mut body = vec![3, 1];
    body.extend([0u8; 32]);
    body.extend([2, 9, 9, 0xc0, 0x13, 0]);
    body
}

/// One handshake message: type, 24-bit length, body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_be_bytes();
    let mut out = vec![kind];
    out.extend_from_slice(&len[len.len() - 3..]);
    out.extend_from_slice(body);
    out
}

/// `bytes` as handshake records of at most `size` bytes each.
fn records(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in bytes.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// A Certificate message's body holding `certs`.
fn certificate_body(certs: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for cert in certs {
        list.extend_from_slice(&u32::try_from(cert.len()).unwrap().to_be_bytes()[1..]);
        list.extend_from_slice(cert);
    }
    let mut body = u32::try_from(list.len()).unwrap().to_be_bytes()[1..].to_vec();
    body.extend(list);
    body
}

#[test]
fn server_answers_are_read_and_bounded() {
    let hello_body = server_hello_body();
    assert_eq!(
        hello::parse_server_hello(&hello_body),
        Answer::ServerHello {
            version: 0x0301,
            cipher: 0xc013
        }
    );
    assert!(matches!(
        hello::parse_server_hello(&hello_body[..20]),
        Answer::NotTls(_)
    ));
    assert_eq!(hello::alert_name(70), "ProtocolVersion alert");
    assert_eq!(
        hello::cipher_name(0xc013),
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
    );
    assert_eq!(hello::cipher_name(0xfefe), "SSL_RSA_FIPS_WITH_DES_CBC_SHA");
    assert_eq!(hello::cipher_name(0x0a0a), "0x0a0a");
    assert_eq!(hello::alert_name(250), "alert 250");

    let answer = |bytes: &[u8]| read_flight(bytes.to_vec()).0;
    assert_eq!(answer(&[21, 3, 1, 0, 2, 2, 40]), Answer::Alert(40));
    assert!(matches!(answer(&[21, 3, 1, 0, 1, 2]), Answer::NotTls(_)));
    assert_eq!(answer(&[21, 3, 1]), Answer::Closed);
    assert_eq!(answer(&[22, 3, 1, 0, 9, 2]), Answer::Closed);
    assert!(matches!(
        answer(b"HTTP/1.1 400 Bad Request\r\n"),
        Answer::NotTls(_)
    ));
    // A record header claiming more than TLS allows is refused before any body is read.
    assert!(matches!(answer(&[22, 3, 3, 0xff, 0xff]), Answer::NotTls(_)));
    // A Certificate where the ServerHello belongs.
    assert!(matches!(
        answer(&records(&message(11, &[0, 0, 0]), 100)),
        Answer::NotTls(_)
    ));
}

#[test]
fn the_certificate_after_a_legacy_server_hello_is_read() {
    let (leaf, inter) = (b"leaf DER".as_slice(), b"intermediate DER".as_slice());
    let mut flight = message(2, &server_hello_body());
    flight.extend(message(11, &certificate_body(&[leaf, inter])));
    flight.extend(message(14, &[]));
    let expected = Some(Ok(vec![leaf.to_vec(), inter.to_vec()]));
    // One record for the whole flight, and records of one byte each.
    for size in [16384, 1] {
        let (answer, chain) = read_flight(records(&flight, size));
        assert!(matches!(answer, Answer::ServerHello { .. }), "{size}");
        assert_eq!(chain, expected, "records of {size} bytes");
    }
    let chain_of = |after_hello: Vec<u8>| {
        let mut bytes = records(&message(2, &server_hello_body()), 16384);
        bytes.extend(after_hello);
        read_flight(bytes).1.expect("a ServerHello").unwrap_err()
    };
    // No Certificate message (an anonymous suite), an alert, the end of the connection.
    assert!(chain_of(records(&message(14, &[]), 100)).contains("message 14"));
    assert!(chain_of(vec![21, 3, 1, 0, 2, 2, 40]).contains("HandshakeFailure alert"));
    assert!(chain_of(Vec::new()).contains("closed before its certificate"));
    // Lying lengths: the list, one certificate, the message.
    let mut lying = certificate_body(&[leaf]);
    lying[2] += 1;
    assert!(chain_of(records(&message(11, &lying), 100)).contains("claims"));
    let mut lying = certificate_body(&[leaf]);
    lying[5] += 1;
    assert!(chain_of(records(&message(11, &lying), 100)).contains("where 8 are left"));
    let huge = [11, 0xff, 0xff, 0xff];
    assert!(chain_of(records(&huge, 100)).contains("handshake message of 16777215 bytes"));
}

#[test]
fn a_flight_of_tiny_records_is_cut_off_at_its_allowance() {
    // A ServerHello then a Certificate claiming 60 KiB, sent in one-byte records: six bytes on
    // the wire for each byte of message, past MAX_FLIGHT before the message is whole.
    let mut flight = message(2, &server_hello_body());
    flight.extend(message(11, &certificate_body(&[&[0u8; 60 * 1024]])));
    let bytes = records(&flight, 1);
    assert!(bytes.len() > hello::MAX_FLIGHT);
    let (answer, chain) = read_flight(bytes);
    assert!(matches!(answer, Answer::ServerHello { .. }));
    let why = chain.expect("a ServerHello").unwrap_err();
    assert!(why.contains("more than 262140 bytes of handshake"), "{why}");
}

// ---- verdicts and the table ---------------------------------------------------------------

/// A certificate expiring in `days_left` days, issued by `issuer`.
pub(crate) fn cert(subject: &str, issuer: &str, days_left: i64) -> CertInfo {
    let now = chrono::Utc::now();
    CertInfo {
        subject: format!("CN={subject}"),
        issuer: format!("CN={issuer}"),
        issuer_short: issuer.to_string(),
        serial: "01".to_string(),
        sans: vec![format!("DNS:{subject}")],
        not_before: now - chrono::Duration::days(30),
        not_after: now + chrono::Duration::days(days_left),
        days_left,
        expired: days_left < 0,
        key: "EC P-256".to_string(),
        signature: "ecdsa-with-SHA256".to_string(),
        is_ca: false,
    }
}

/// A report of a reachable server with versions `on` ([1.3, 1.2, 1.1, 1.0]) and `chain`.
fn report(on: [bool; 4], chain: Vec<CertInfo>, trusted: Result<(), ChainProblem>) -> ProbeReport {
    let support = |yes: bool| {
        if yes {
            Support::Accepted {
                cipher: "TLS13_AES_128_GCM_SHA256".to_string(),
            }
        } else {
            Support::Rejected {
                reason: "ProtocolVersion alert".to_string(),
            }
        }
    };
    ProbeReport {
        target: Target::parse("127.0.0.1:443 sni=shop.example.com").unwrap(),
        address: Some("127.0.0.1:443".parse().unwrap()),
        result: Ok(Findings {
            versions: Versions {
                tls13: support(on[0]),
                tls12: support(on[1]),
                tls11: support(on[2]),
                tls10: support(on[3]),
            },
            chain: Ok(ChainReport {
                certificates: chain.into_iter().map(Ok).collect(),
                trusted,
                hostname: Ok(()),
                ocsp_stapled: false,
            }),
        }),
        elapsed: Duration::from_millis(5),
    }
}

#[test]
fn verdict_names_what_broke_with_its_severity() {
    let expect = Expect::default();
    let modern = [true, true, false, false];
    let good = judge(
        &report(modern, vec![cert("shop", "CA", 80)], Ok(())),
        &expect,
    );
    assert!(good.passed());
    assert_eq!(good.line(), "ok");
    assert_eq!(good.severity(), None);

    let soon = judge(
        &report(modern, vec![cert("shop", "CA", 6)], Ok(())),
        &expect,
    );
    assert_eq!(soon.line(), "certificate expires in 6 days");
    assert_eq!(soon.severity(), Some(crate::severity::Severity::High));
    assert_eq!(soon.problems[0].kind, ProblemKind::Expiring);

    let expired = report(
        modern,
        vec![cert("shop", "CA", -3)],
        Err(ChainProblem::Expired),
    );
    let expired = judge(&expired, &expect);
    assert_eq!(expired.line(), "certificate expired 3 days ago");
    assert_eq!(
        expired.severity(),
        Some(crate::severity::Severity::Critical)
    );

    let no13 = judge(
        &report(
            [false, true, false, false],
            vec![cert("s", "CA", 80)],
            Ok(()),
        ),
        &expect,
    );
    assert_eq!(no13.line(), "TLS 1.3 not offered");
    assert_eq!(no13.severity(), Some(crate::severity::Severity::High));

    let no12 = judge(
        &report(
            [true, false, false, false],
            vec![cert("s", "CA", 80)],
            Ok(()),
        ),
        &expect,
    );
    assert_eq!(no12.line(), "TLS 1.2 off: older browsers cannot connect");

    let legacy = judge(
        &report([true, true, true, true], vec![cert("s", "CA", 80)], Ok(())),
        &expect,
    );
    assert_eq!(
        legacy.line(),
        "TLS 1.1 and TLS 1.0 are still on: deprecated (RFC 8996), turn off"
    );
    let allowed = Expect {
        legacy: true,
        ..expect
    };
    assert!(judge(
        &report([true, true, true, true], vec![cert("s", "CA", 80)], Ok(())),
        &allowed
    )
    .passed());

    // Worst first: the untrusted chain (critical) before the version (high).
    let both = judge(
        &report(
            [false, true, false, false],
            vec![cert("s", "CA", 80)],
            Err(ChainProblem::UnknownIssuer),
        ),
        &expect,
    );
    assert_eq!(
        both.line(),
        "certificate not trusted: unknown issuer; TLS 1.3 not offered"
    );
    assert_eq!(both.severity(), Some(crate::severity::Severity::Critical));

    let intermediate = judge(
        &report(
            modern,
            vec![cert("s", "Mid", 80), cert("Mid", "CA", 4)],
            Ok(()),
        ),
        &expect,
    );
    assert_eq!(
        intermediate.line(),
        "intermediate certificate \"CN=Mid\" expires in 4 days"
    );

    let down = ProbeReport {
        result: Err(Unreachable::Refused),
        ..report(modern, vec![], Ok(()))
    };
    let down = judge(&down, &expect);
    assert_eq!(down.line(), "connection refused");
    assert_eq!(down.problems[0].kind, ProblemKind::Unreachable);
}

#[test]
fn table_aligns_columns_and_escapes_certificate_text() {
    let hostile = cert("shop", "Evil\u{1b}[2J\nCA", 42);
    let r = report([true, true, false, false], vec![hostile], Ok(()));
    let v = judge(&r, &Expect::default());
    let down = ProbeReport {
        result: Err(Unreachable::Timeout(Duration::from_secs(5))),
        ..r.clone()
    };
    let dv = judge(&down, &Expect::default());
    let table = render(&[(r, v), (down, dv)]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("TARGET"));
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(lines[1].contains("yes") && lines[1].contains(" 42 ") && lines[1].ends_with("ok"));
    assert!(
        lines[2].ends_with("timeout: no answer within 5s"),
        "{table}"
    );
    let verdict_column = lines[0].find("VERDICT").unwrap();
    assert_eq!(lines[1].rfind("ok"), Some(verdict_column), "{table}");
}

#[test]
fn kilobytes_of_certificate_names_are_cut_in_the_table_and_the_verdict() {
    let huge = format!("\u{1b}[31m{}", "x".repeat(20_000));
    let leaf = cert("shop", &huge, 300);
    let mut inter = cert(&huge, &huge, 3);
    inter.is_ca = true;
    let r = report([true, true, false, false], vec![leaf, inter], Ok(()));
    let verdict = judge(&r, &Expect::default());
    let line = verdict.line();
    assert!(
        line.starts_with("intermediate certificate \"CN=\u{1b}[31mxxx"),
        "{line}"
    );
    assert!(line.ends_with("…\" expires in 3 days"), "{line}");
    assert!(line.chars().count() < 200, "{} chars", line.chars().count());
    let table = render(&[(r, verdict)]);
    for row in table.lines() {
        assert!(
            row.chars().count() < 400,
            "{} chars: {row}",
            row.chars().count()
        );
        assert!(!row.contains('\u{1b}'), "{row}");
    }
}

// ---- trust ------------------------------------------------------------------------------------

#[test]
fn ca_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Trust::only_ca_file(&dir.path().join("none.pem")).unwrap_err();
    assert!(missing.to_string().contains("none.pem"), "{missing}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Trust::only_ca_file(&empty).unwrap_err();
    assert!(
        e.to_string().contains("no \"BEGIN CERTIFICATE\" block"),
        "{e}"
    );
}

// ---- hostile listeners ---------------------------------------------------------------------

#[tokio::test]
async fn closed_port_is_refused() {
    let target = Target::parse(&format!("127.0.0.1:{}", free_port())).unwrap();
    let r = probe_within(&target, TIMEOUT, &Trust::system()).await;
    assert_eq!(r.result, Err(Unreachable::Refused));
}

#[tokio::test]
async fn listener_that_never_answers_times_out() {
    // Connections complete in the kernel's backlog; nobody ever reads or writes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let target = Target::parse(&format!("127.0.0.1:{port}")).unwrap();
    let r = probe_within(&target, Duration::from_millis(500), &Trust::system()).await;
    assert_eq!(
        r.result,
        Err(Unreachable::Timeout(Duration::from_millis(500)))
    );
    assert_eq!(
        judge(&r, &Expect::default()).line(),
        "timeout: no answer within 500ms"
    );
    drop(silent);
}

#[tokio::test]
async fn server_streaming_garbage_is_cut_off() {
    /// What the garbage server may send before the test calls the client unbounded.
    const CAP: usize = 256 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // One thread per connection, each sending records that claim to be handshake messages of
    // 16 MiB, until the client hangs up (or the cap is reached). Returns bytes sent each.
    let server = std::thread::spawn(move || {
        let mut chunk = Vec::new();
        while chunk.len() < 64 * 1024 {
            chunk.extend_from_slice(&[22, 3, 3, 0x40, 0x00]);
            chunk.extend(std::iter::repeat_n(0xffu8, 0x4000));
        }
        let mut senders = Vec::new();
        for conn in listener.incoming().take(5) {
            let Ok(mut conn) = conn else { break };
            let chunk = chunk.clone();
            senders.push(std::thread::spawn(move || {
                let mut sent = 0;
                while sent < CAP {
                    match conn.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                sent
            }));
        }
        senders
            .into_iter()
            .map(|s| s.join().unwrap_or(CAP))
            .collect::<Vec<_>>()
    });
    let target = Target::parse(&format!("127.0.0.1:{port}")).unwrap();
    let r = probe_within(&target, TIMEOUT, &Trust::system()).await;
    let verdict = judge(&r, &Expect::default());
    assert!(
        verdict.line().starts_with("no TLS version accepted"),
        "{}",
        verdict.line()
    );
    // The fifth connection is the TLS 1.2 retry by hand; wake the accept loop if it never came.
    let _ = TcpStream::connect(("127.0.0.1", port));
    let sent = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(
        sent.iter().all(|n| *n < CAP),
        "a connection read everything the server sent: {sent:?}"
    );
}

/// `probe_all` on borrowed targets, as a boxed `Send` future (what a job's run is).
fn boxed_probe_all<'a>(
    targets: &'a [Target],
    trust: &'a Trust,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<ProbeReport>> + Send + 'a>> {
    Box::pin(probe_all(targets, TIMEOUT, trust, 4))
}

#[tokio::test]
async fn probe_all_is_a_send_future_for_borrowed_targets() {
    // This did not compile while probe_all's stream closure was generic over the target's
    // lifetime ("FnOnce is not general enough").
    let trust = Trust::system();
    assert!(boxed_probe_all(&[], &trust).await.is_empty());
}

#[tokio::test]
async fn a_name_is_probed_on_its_first_address_that_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    assert_eq!(super::probe::pick(closed, &[open]).await, Ok(open));
    assert_eq!(
        super::probe::pick(closed, &[]).await,
        Ok(closed),
        "one address: no pre-connect"
    );
    assert_eq!(
        super::probe::pick(closed, &[closed]).await,
        Err((closed, Unreachable::Refused))
    );
    drop(listener);
}

// ---- STARTTLS against hostile mail servers --------------------------------------------------

/// What `starttls::upgrade` makes of a server that sends `script` (then closes its side)
/// whatever the client says.
async fn upgrade_against(protocol: Starttls, script: Vec<u8>) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (mut from, mut to) = tokio::io::split(server);
    // Read what the client sends so that it never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while from.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let talker = tokio::spawn(async move {
        let _ = to.write_all(&script).await;
        let _ = to.shutdown().await;
        to
    });
    let result = tokio::time::timeout(HANG, starttls::upgrade(&mut client, protocol))
        .await
        .expect("the upgrade hung");
    drop(client);
    let _ = talker.await;
    let _ = drain.await;
    result
}

#[tokio::test]
async fn starttls_reads_are_bounded_and_server_text_is_escaped() {
    let endless = [b"220 hi\r\n".as_slice(), &[b'a'; 10_000]].concat();
    let why = upgrade_against(Starttls::Smtp, endless).await.unwrap_err();
    assert_eq!(why, "the server sent a line longer than 4096 bytes");

    let mut many = b"220 hi\r\n".to_vec();
    many.extend(b"250-EXTENSION\r\n".repeat(500));
    let why = upgrade_against(Starttls::Smtp, many).await.unwrap_err();
    assert_eq!(why, "the server sent a reply of more than 100 lines");

    let why = upgrade_against(Starttls::Imap, b"* OK hi\r\n".repeat(500))
        .await
        .unwrap_err();
    assert_eq!(why, "no answer to STARTTLS within 100 lines");

    let hostile = b"554 \x1b[2J\x1b[31mgo away\r\n".to_vec();
    let why = upgrade_against(Starttls::Smtp, hostile).await.unwrap_err();
    assert_eq!(why, "greeting 554 \"\\u{1b}[2J\\u{1b}[31mgo away\"");
    let why = upgrade_against(Starttls::Pop3, b"HTTP/1.1 400 Bad Request\r\n".to_vec())
        .await
        .unwrap_err();
    assert_eq!(why, "greeting \"HTTP/1.1 400 Bad Request\"");
    let why = upgrade_against(Starttls::Smtp, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(why, "the server closed the connection");
    // A long server line is quoted cut short.
    let long = format!("220-{}\r\n220 x\r\n", "y".repeat(3000));
    let why = upgrade_against(Starttls::Smtp, long.into_bytes())
        .await
        .unwrap_err();
    assert!(why.len() < 200, "{why}");

    let smtp = b"220 hi\r\n250-mx greets you\r\n250-starttls\r\n250 SIZE\r\n220 go ahead\r\n";
    assert_eq!(upgrade_against(Starttls::Smtp, smtp.to_vec()).await, Ok(()));
    let no = b"220 hi\r\n250-mx STARTTLS\r\n250 SIZE\r\n";
    let why = upgrade_against(Starttls::Smtp, no.to_vec())
        .await
        .unwrap_err();
    assert!(why.contains("does not offer STARTTLS"), "{why}");
}

/// A listener answering every connection with `answer(n)` (`n` counts connections from 0)
/// after reading what the client sent first, then draining the connection until it closes.
fn scripted_server(answer: fn(usize) -> Vec<(Vec<u8>, Duration)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                use std::io::Read;
                let mut first = [0u8; 4096];
                let _ = conn.read(&mut first);
                for (bytes, pause) in answer(n) {
                    std::thread::sleep(pause);
                    if conn.write_all(&bytes).is_err() {
                        return;
                    }
                }
                while conn.read(&mut first).is_ok_and(|n| n > 0) {}
            });
        }
    });
    port
}

#[tokio::test]
async fn a_server_hello_in_one_byte_records_is_read() {
    // Every connection gets a TLS 1.0 ServerHello and a Certificate, in records of one byte
    // each, each record in its own write.
    let port = scripted_server(|_| {
        let mut flight = message(2, &server_hello_body());
        flight.extend(message(11, &certificate_body(&[b"not DER"])));
        flight.extend(message(14, &[]));
        records(&flight, 1)
            .chunks(6)
            .map(|record| (record.to_vec(), Duration::ZERO))
            .collect()
    });
    let target = Target::parse(&format!("127.0.0.1:{port} sni=localhost")).unwrap();
    let r = probe_within(&target, TIMEOUT, &Trust::system()).await;
    let findings = r.result.as_ref().expect("reachable");
    assert_eq!(
        findings.versions.tls10,
        Support::Accepted {
            cipher: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".to_string()
        },
        "{r:#?}"
    );
    assert!(!findings.versions.tls11.accepted(), "{r:#?}");
    let chain = findings
        .chain
        .as_ref()
        .expect("the chain of the TLS 1.0 hello");
    assert_eq!(chain.certificates.len(), 1);
    assert!(chain.certificates[0].is_err(), "{chain:?}");
    assert!(chain.trusted.is_err());
}

/// `bytes` one byte at a time, 100 ms apart.
fn drip(bytes: &[u8]) -> Vec<(Vec<u8>, Duration)> {
    bytes
        .iter()
        .map(|b| (vec![*b], Duration::from_millis(100)))
        .collect()
}

#[tokio::test]
async fn slowloris_servers_end_at_the_probe_timeout() {
    // One byte every 100 ms: a ServerHello on a TLS port, an SMTP greeting on a STARTTLS one.
    let tls = scripted_server(|_| drip(&records(&message(2, &server_hello_body()), 16384)));
    let smtp = scripted_server(|_| drip(format!("220-{}", "x".repeat(1000)).as_bytes()));
    let timeout = Duration::from_millis(800);
    for target in [
        format!("127.0.0.1:{tls}"),
        format!("127.0.0.1:{smtp} starttls=smtp"),
    ] {
        let target = Target::parse(&target).unwrap();
        let r = probe_within(&target, timeout, &Trust::system()).await;
        assert_eq!(
            r.result,
            Err(Unreachable::Timeout(timeout)),
            "{target}: {r:#?}"
        );
    }
    // A ServerHello at once, then the certificate dripping: the version's answer stands, the
    // chain is missing with its reason.
    let slow_chain = scripted_server(|_| {
        let mut script = vec![(
            records(&message(2, &server_hello_body()), 16384),
            Duration::ZERO,
        )];
        script.extend(drip(&records(
            &message(11, &certificate_body(&[&[0u8; 500]])),
            16384,
        )));
        script
    });
    let target = Target::parse(&format!("127.0.0.1:{slow_chain}")).unwrap();
    let r = probe_within(&target, timeout, &Trust::system()).await;
    let findings = r.result.as_ref().expect("reachable");
    assert!(findings.versions.tls10.accepted(), "{r:#?}");
    assert_eq!(
        findings.chain,
        Err("TLS 1.0: its certificate did not come within the timeout".to_string())
    );
}

#[test]
fn webpki_refusals_are_in_words_not_debug_text() {
    #[derive(Debug)]
    struct CaUsedAsEndEntity;
    impl std::fmt::Display for CaUsedAsEndEntity {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl std::error::Error for CaUsedAsEndEntity {}
    let e = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(CaUsedAsEndEntity),
    )));
    let text = ChainProblem::from(e).to_string();
    assert_eq!(text, "a CA certificate is used as the server's certificate");
    assert!(!text.contains("OtherError"), "{text}");
}

#[test]
fn details_show_serial_sans_key_signature_ocsp_and_ciphers_escaped_and_cut() {
    let mut leaf = cert("shop.example.com", "R3", 40);
    leaf.serial = "0a:1b".to_string();
    leaf.sans = vec!["DNS:shop.example.com".into(), "DNS:evil\n\u{1b}[2J".into()];
    leaf.sans.push(format!("DNS:{}", "a".repeat(5000)));
    let r = report([true, true, false, false], vec![leaf], Ok(()));
    let fields: std::collections::BTreeMap<_, _> = details(&r).into_iter().collect();
    assert_eq!(fields["serial"], "0a:1b");
    assert_eq!(fields["key"], "EC P-256");
    assert_eq!(fields["signature"], "ecdsa-with-SHA256");
    assert_eq!(fields["ocsp_stapled"], "no");
    assert_eq!(fields["cipher_tls13"], "TLS13_AES_128_GCM_SHA256");
    assert!(fields.contains_key("cipher_tls12") && !fields.contains_key("cipher_tls11"));
    let sans = &fields["sans"];
    assert!(
        sans.starts_with("DNS:shop.example.com, DNS:evil\\n"),
        "{sans}"
    );
    assert!(
        !sans.contains('\u{1b}') && sans.chars().count() < 300,
        "{sans}"
    );
    let verdict = judge(&r, &Expect::default());
    let block = render_details(&[(r, verdict)]);
    assert!(
        block.starts_with("127.0.0.1:443 sni=shop.example.com:\n  serial: 0a:1b\n"),
        "{block}"
    );
    assert!(!block.contains('\u{1b}'), "{block}");
}
