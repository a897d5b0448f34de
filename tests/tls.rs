//! Tests of the `tls` probe and job type against real `openssl s_server` processes on 127.0.0.1,
//! serving certificates of a test PKI made by the openssl CLI (`util::openssl`): the probe
//! library through `opsd::tls`, then `opsd run-job` on the real binary (the test CA passed as
//! the job's `ca_file`), and `opsd check` on a broken tls job. The tests that need no openssl
//! are the library's own (`src/tls/tests.rs`).

use crate::util::free_port;
use crate::util::openssl::{ca, Cert, Pki, Server, EC};
use crate::util::starttls::{Front, Mail};
use crate::util::OPSD;
use opsd::severity::Severity;
use opsd::tls::{
    judge, probe, probe_all, ChainProblem, ChainReport, Expect, Findings, ProbeReport, Support,
    Target, Trust, Unreachable, Version,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long a network test may take before it fails as a hang.
const HANG: Duration = Duration::from_secs(60);
/// The probe timeout for servers that answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Probes `target`, failing the test if the probe itself hangs.
async fn probe_within(target: &Target, timeout: Duration, trust: &Trust) -> ProbeReport {
    tokio::time::timeout(HANG, probe(target, timeout, trust))
        .await
        .expect("the probe hung past its own timeout")
}

/// The findings of a report that reached its server.
fn findings(report: &ProbeReport) -> &Findings {
    match &report.result {
        Ok(findings) => findings,
        Err(e) => panic!("{} unreachable: {e}", report.target),
    }
}

/// The chain report of a server that finished a handshake.
fn chain(report: &ProbeReport) -> &ChainReport {
    match &findings(report).chain {
        Ok(chain) => chain,
        Err(e) => panic!("{}: no chain: {e}", report.target),
    }
}

/// `[1.3, 1.2, 1.1, 1.0]` accepted or not.
fn accepted(report: &ProbeReport) -> [bool; 4] {
    let v = &findings(report).versions;
    Version::ALL.map(|version| v.get(version).accepted())
}

// ---- the probe library -------------------------------------------------------------------

#[tokio::test]
async fn server_with_tls13_and_tls12_passes_with_its_certificate_fields() {
    let pki = Pki::new();
    let server = Server::start(&pki, "good", None, &[]);
    let r = probe_within(&server.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [true, true, false, false], "{r:#?}");
    let (best, cipher) = findings(&r).versions.best().unwrap();
    assert_eq!(best, Version::Tls13);
    assert!(cipher.starts_with("TLS13_"), "{cipher}");
    let chain = chain(&r);
    assert_eq!(chain.trusted, Ok(()));
    assert_eq!(chain.hostname, Ok(()));
    assert!(!chain.ocsp_stapled);
    let leaf = chain.leaf().unwrap();
    assert_eq!(leaf.subject, "CN=opsd test good");
    assert_eq!(leaf.issuer_short, "opsd test CA");
    assert_eq!(leaf.serial, "12:34");
    assert_eq!(leaf.key, "RSA 2048");
    assert_eq!(leaf.signature, "ecdsa-with-SHA256");
    assert!(
        leaf.sans.contains(&"DNS:shop.example.com".to_string()),
        "{:?}",
        leaf.sans
    );
    assert!(
        leaf.sans.contains(&"IP:127.0.0.1".to_string()),
        "{:?}",
        leaf.sans
    );
    assert!((88..=89).contains(&leaf.days_left), "{}", leaf.days_left);
    let verdict = judge(&r, &Expect::default());
    assert!(verdict.passed(), "{}", verdict.line());
}

#[tokio::test]
async fn tls12_only_server_fails_for_tls13_and_tls13_only_for_tls12() {
    let pki = Pki::new();
    let only12 = Server::start(&pki, "good", None, &["-tls1_2"]);
    let r = probe_within(&only12.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, true, false, false], "{r:#?}");
    assert_eq!(judge(&r, &Expect::default()).line(), "TLS 1.3 not offered");
    assert_eq!(
        chain(&r).trusted,
        Ok(()),
        "chain taken from the TLS 1.2 handshake"
    );

    let only13 = Server::start(&pki, "good", None, &["-tls1_3"]);
    let r = probe_within(&only13.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [true, false, false, false], "{r:#?}");
    let verdict = judge(&r, &Expect::default());
    assert_eq!(verdict.line(), "TLS 1.2 off: older browsers cannot connect");
    assert_eq!(verdict.severity(), Some(Severity::High));
}

#[tokio::test]
async fn legacy_versions_are_seen_by_the_hand_built_hello() {
    let pki = Pki::new();
    let legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    let tls10 = Server::start(
        &pki,
        "chained",
        Some("inter"),
        &[&["-tls1"][..], &legacy].concat(),
    );
    let r = probe_within(&tls10.target("localhost"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, false, false, true], "{r:#?}");
    let Support::Accepted { cipher } = &findings(&r).versions.tls10 else {
        unreachable!()
    };
    assert!(cipher.starts_with("TLS_"), "{cipher}");
    let line = judge(&r, &Expect::default()).line();
    assert!(line.contains("TLS 1.0 is still on"), "{line}");

    let tls11 = Server::start(
        &pki,
        "chained",
        Some("inter"),
        &[&["-tls1_1"][..], &legacy].concat(),
    );
    let r = probe_within(&tls11.target("localhost"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, false, true, false], "{r:#?}");
}

#[tokio::test]
async fn expired_wrong_name_and_untrusted_certificates_are_critical() {
    let pki = Pki::new();
    let expired = Server::start(&pki, "expired", None, &[]);
    let r = probe_within(&expired.target("localhost"), TIMEOUT, &pki.trust()).await;
    assert_eq!(
        accepted(&r)[..2],
        [true, true],
        "an expired certificate does not stop the version probes"
    );
    assert_eq!(chain(&r).trusted, Err(ChainProblem::Expired));
    let verdict = judge(&r, &Expect::default());
    assert_eq!(verdict.line(), "certificate expired 1 day ago");
    assert_eq!(verdict.severity(), Some(Severity::Critical));

    let wrong = Server::start(&pki, "wrong", None, &[]);
    let r = probe_within(&wrong.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(chain(&r).trusted, Ok(()));
    assert_eq!(chain(&r).hostname, Err(ChainProblem::NotValidForName));
    let verdict = judge(&r, &Expect::default());
    assert_eq!(
        verdict.line(),
        "hostname mismatch: the certificate is not valid for shop.example.com"
    );
    assert_eq!(verdict.severity(), Some(Severity::Critical));

    // The system store does not know the test CA.
    let good = Server::start(&pki, "good", None, &[]);
    let r = probe_within(&good.target("shop.example.com"), TIMEOUT, &Trust::system()).await;
    assert_eq!(accepted(&r)[..2], [true, true]);
    assert_eq!(chain(&r).trusted, Err(ChainProblem::UnknownIssuer));
    assert_eq!(
        judge(&r, &Expect::default()).line(),
        "certificate not trusted: unknown issuer"
    );
    // ... and a ca_file adds it to the system store.
    let with = Trust::with_ca_file(&pki.path("ca.pem")).unwrap();
    let r = probe_within(&good.target("shop.example.com"), TIMEOUT, &with).await;
    assert_eq!(chain(&r).trusted, Ok(()));
}

#[tokio::test]
async fn intermediate_that_expires_first_is_named() {
    let pki = Pki::new();
    let server = Server::start(&pki, "chained", Some("inter"), &[]);
    let r = probe_within(&server.target("localhost"), TIMEOUT, &pki.trust()).await;
    let chain = chain(&r);
    assert_eq!(
        chain.certificates.len(),
        2,
        "the chain as sent: leaf and intermediate"
    );
    assert_eq!(chain.trusted, Ok(()));
    let (position, first) = chain.first_to_expire().unwrap();
    assert_eq!(position, 1);
    assert!(first.is_ca);
    assert_eq!(first.key, "EC P-256");
    let verdict = judge(&r, &Expect::default());
    assert_eq!(
        verdict.line(),
        "intermediate certificate \"CN=opsd test inter\" expires in 9 days"
    );
    assert_eq!(verdict.severity(), Some(Severity::High));
}

#[tokio::test]
async fn probe_all_reports_every_target_in_order() {
    let pki = Pki::new();
    let server = Server::start(&pki, "good", None, &[]);
    let closed = Target::parse(&format!("127.0.0.1:{}", free_port())).unwrap();
    let targets = vec![
        server.target("shop.example.com"),
        closed.clone(),
        server.target("localhost"),
    ];
    let reports = tokio::time::timeout(HANG, probe_all(&targets, TIMEOUT, &pki.trust(), 2))
        .await
        .expect("probe_all hung");
    let order: Vec<&Target> = reports.iter().map(|r| &r.target).collect();
    assert_eq!(order, targets.iter().collect::<Vec<_>>());
    assert!(judge(&reports[0], &Expect::default()).passed());
    assert_eq!(reports[1].result, Err(Unreachable::Refused));
    assert!(judge(&reports[2], &Expect::default()).passed());
}

#[tokio::test]
async fn tls12_with_only_suites_rustls_refuses_is_still_seen_as_on() {
    let pki = Pki::new();
    let cbc = Server::start(&pki, "good", None, &["-tls1_2", "-cipher", "AES128-SHA"]);
    let r = probe_within(&cbc.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, true, false, false], "{r:#?}");
    assert_eq!(
        findings(&r).versions.tls12,
        Support::Accepted {
            cipher: "TLS_RSA_WITH_AES_128_CBC_SHA (not spoken by rustls)".to_string()
        }
    );
    // The chain comes from the hand-built hello's answer.
    assert_eq!(chain(&r).trusted, Ok(()));
    assert_eq!(chain(&r).leaf().unwrap().subject, "CN=opsd test good");
    assert_eq!(judge(&r, &Expect::default()).line(), "TLS 1.3 not offered");
}

#[tokio::test]
async fn a_legacy_only_server_has_its_chain_checked_from_the_plaintext_certificate() {
    let pki = Pki::new();
    let legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    let expired = Server::start(&pki, "expired", None, &[&["-tls1"][..], &legacy].concat());
    let r = probe_within(&expired.target("localhost"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, false, false, true], "{r:#?}");
    assert_eq!(chain(&r).trusted, Err(ChainProblem::Expired));
    assert_eq!(chain(&r).hostname, Ok(()));
    let verdict = judge(&r, &Expect::default());
    assert_eq!(verdict.severity(), Some(Severity::Critical));
    let line = verdict.line();
    assert!(
        line.starts_with("certificate expired 1 day ago;") && line.contains("TLS 1.0 is still on"),
        "{line}"
    );
    assert!(!line.contains("not checked"), "{line}");

    let wrong = Server::start(&pki, "wrong", None, &[&["-tls1_1"][..], &legacy].concat());
    let r = probe_within(&wrong.target("shop.example.com"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, false, true, false], "{r:#?}");
    assert_eq!(chain(&r).trusted, Ok(()));
    assert_eq!(chain(&r).hostname, Err(ChainProblem::NotValidForName));
    let chained = Server::start(
        &pki,
        "chained",
        Some("inter"),
        &[&["-tls1"][..], &legacy].concat(),
    );
    let r = probe_within(&chained.target("localhost"), TIMEOUT, &pki.trust()).await;
    assert_eq!(chain(&r).certificates.len(), 2);
    assert_eq!(chain(&r).trusted, Ok(()));
    assert_eq!(chain(&r).first_to_expire().unwrap().0, 1);
}

/// `127.0.0.1:PORT sni=localhost starttls=PROTOCOL`, the front of a mail server.
fn mail_target(front: &Front, protocol: &str) -> Target {
    Target::parse(&format!(
        "127.0.0.1:{} sni=localhost starttls={protocol}",
        front.port
    ))
    .expect("target parses")
}

#[tokio::test]
async fn starttls_smtp_imap_and_pop3_probe_every_version_over_the_upgraded_connection() {
    let pki = Pki::new();
    let modern = Server::start(&pki, "good", None, &[]);
    for (mail, name) in [
        (Mail::Smtp, "smtp"),
        (Mail::Imap, "imap"),
        (Mail::Pop3, "pop3"),
    ] {
        let front = Front::start(mail, true, modern.port);
        let r = probe_within(&mail_target(&front, name), TIMEOUT, &pki.trust()).await;
        assert_eq!(accepted(&r), [true, true, false, false], "{name}: {r:#?}");
        assert_eq!(chain(&r).trusted, Ok(()), "{name}");
        assert_eq!(chain(&r).leaf().unwrap().subject, "CN=opsd test good");
        let verdict = judge(&r, &Expect::default());
        assert!(verdict.passed(), "{name}: {}", verdict.line());
    }
    // The hand-built hellos go through the upgrade too: a TLS 1.0-only mail server.
    let legacy = Server::start(
        &pki,
        "expired",
        None,
        &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    );
    let front = Front::start(Mail::Smtp, true, legacy.port);
    let r = probe_within(&mail_target(&front, "smtp"), TIMEOUT, &pki.trust()).await;
    assert_eq!(accepted(&r), [false, false, false, true], "{r:#?}");
    assert_eq!(chain(&r).trusted, Err(ChainProblem::Expired));
}

#[tokio::test]
async fn a_mail_server_that_does_not_offer_starttls_is_a_clear_failure() {
    let pki = Pki::new();
    let modern = Server::start(&pki, "good", None, &[]);
    for (mail, name, why) in [
        (
            Mail::Smtp,
            "smtp",
            "the server does not offer STARTTLS (not in its EHLO answer)",
        ),
        (
            Mail::Imap,
            "imap",
            "the server does not offer STARTTLS: \"a001 BAD unknown command\"",
        ),
        (
            Mail::Pop3,
            "pop3",
            "the server does not offer STARTTLS: \"-ERR unknown command\"",
        ),
    ] {
        let front = Front::start(mail, false, modern.port);
        let r = probe_within(&mail_target(&front, name), TIMEOUT, &pki.trust()).await;
        let verdict = judge(&r, &Expect::default());
        assert_eq!(
            verdict.line(),
            format!("STARTTLS ({name}): {why}"),
            "{r:#?}"
        );
        assert_eq!(verdict.severity(), Some(Severity::Critical));
    }
    // A TLS port is not a mail server: the plaintext start fails on the TLS server's silence
    // (it waits for a ClientHello) within the probe's timeout, not later.
    let target = Target::parse(&format!(
        "127.0.0.1:{} sni=localhost starttls=pop3",
        modern.port
    ))
    .unwrap();
    let short = Duration::from_millis(700);
    let r = probe_within(&target, short, &pki.trust()).await;
    assert_eq!(r.result, Err(Unreachable::Timeout(short)));
}

#[tokio::test]
async fn a_certificate_with_10000_sans_is_refused_bounded_and_named_as_such() {
    let pki = Pki::new();
    let sans: Vec<String> = (0..10_000)
        .map(|n| format!("DNS:s{n}.example.test"))
        .collect();
    std::fs::write(
        pki.path("many.cnf"),
        format!(
            "[many]\nsubjectAltName = DNS:localhost,{}\n",
            sans.join(",")
        ),
    )
    .expect("write many.cnf");
    Cert {
        name: "many",
        subject: "/CN=many",
        key: &EC,
        issuer: "ca",
        days: "30",
        serial: "9",
        extensions: ("many.cnf", "many"),
    }
    .make(&pki.path(""));
    let server = Server::start(&pki, "many", None, &[]);
    let r = probe_within(&server.target("localhost"), TIMEOUT, &pki.trust()).await;
    let versions = &findings(&r).versions;
    // rustls refuses a Certificate message over 64 KiB: TLS 1.3 cannot be told, and the
    // hand-built TLS 1.2 hello sees 1.2 on with a suite rustls speaks (not "not spoken").
    let Support::Unknown { reason } = &versions.tls13 else {
        panic!("{r:#?}")
    };
    assert!(reason.contains("over 64 KiB"), "{reason}");
    assert_eq!(
        versions.tls12,
        Support::Accepted {
            cipher: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_string()
        }
    );
    let Err(why) = &findings(&r).chain else {
        panic!("{r:#?}")
    };
    assert!(why.contains("a handshake message of"), "{why}");
    let line = judge(&r, &Expect::default()).line();
    assert!(line.len() < 500, "{line}");
}

// ---- the tls job on the real binary ------------------------------------------------------

/// Runs `opsd ARGS --config CONFIG` (for `run-job`, with text logs and a state directory
/// beside the config).
fn opsd(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(OPSD);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    if args.first() == Some(&"run-job") {
        let state: PathBuf = config.with_file_name("state");
        cmd.args(["--log-format", "text", "--state-dir"]).arg(state);
    }
    cmd.output().expect("run opsd")
}

#[test]
fn run_job_passes_a_tls13_and_12_server_and_fails_a_tls12_only_one_with_the_table() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pki = Pki::new();
    let modern = Server::start(&pki, "good", None, &[]);
    let old = Server::start(&pki, "good", None, &["-tls1_2"]);
    let ca = pki.path("ca.pem");
    let config = dir.path().join("jobs.toml");
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(
        &config,
        format!(
            "[alerts.capture]\ntype = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n\n\
             [jobs.modern]\ntype = \"tls\"\nschedule = \"0 0 9 * * *\"\ntargets = [\"{}\"]\n\
             ca_file = \"{}\"\nprobe_timeout = \"20s\"\n\n\
             [jobs.mixed]\ntype = \"tls\"\nschedule = \"0 0 9 * * *\"\ntargets = [\"{}\", \"{}\"]\n\
             expect = {{ tls13 = true, tls12 = true, legacy = false }}\nwarn_days = 21\n\
             ca_file = \"{}\"\nprobe_timeout = \"20s\"\nalert = [\"capture\"]\n",
            alerts.display(),
            alerts.display(),
            modern.target("localhost"),
            ca.display(),
            modern.target("localhost"),
            old.target("localhost"),
            ca.display()
        ),
    )
    .expect("write jobs.toml");

    let out = opsd(&["run-job", "modern"], &config);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (table, details) = stdout
        .split_once("\n\n")
        .expect("table, blank line, details");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a heading and one row:\n{stdout}");
    for field in [
        "  serial: ",
        "  sans: ",
        "  key: ",
        "  signature: ",
        "  ocsp_stapled: ",
    ] {
        assert!(details.contains(field), "{field:?} missing:\n{stdout}");
    }
    assert!(
        lines[0].starts_with("TARGET") && lines[0].ends_with("VERDICT"),
        "{stdout}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // TARGET (two words: address and sni=), 1.3, 1.2, 1.1, 1.0, CIPHER, DAYS, ISSUER..., VERDICT
    assert_eq!(
        &row[..6],
        [
            &format!("127.0.0.1:{}", modern.port),
            "sni=localhost",
            "yes",
            "yes",
            "no",
            "no"
        ],
        "{stdout}"
    );
    assert!(row[6].starts_with("TLS13_"), "{stdout}");
    assert!(matches!(row[7], "89" | "90"), "days left: {stdout}");
    assert!(
        lines[1].contains("opsd test CA") && lines[1].ends_with("ok"),
        "{stdout}"
    );
    assert!(stderr.contains("modern: success"), "{stderr}");
    assert!(stderr.contains("1 target pass"), "{stderr}");
    assert!(
        stderr.contains(&format!("modern: tls {}: ok", modern.target("localhost"))),
        "one event per target: {stderr}"
    );

    let out = opsd(&["run-job", "mixed"], &config);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let (table, _) = stdout
        .split_once("\n\n")
        .expect("table, blank line, details");
    assert_eq!(table.lines().count(), 3, "{stdout}");
    let old_row = table
        .lines()
        .find(|l| l.starts_with(&old.target("localhost").to_string()))
        .unwrap_or_else(|| panic!("no row for {}:\n{stdout}", old.target("localhost")));
    assert!(old_row.contains("  no   yes  no   no"), "{stdout}");
    assert!(old_row.ends_with("TLS 1.3 not offered"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "mixed: failed: 1 of 2 targets failed: {} (TLS 1.3 not offered)",
            old.target("localhost")
        )),
        "{stderr}"
    );
    let event = stderr
        .lines()
        .find(|l| {
            l.contains(&format!(
                "mixed: tls {}: TLS 1.3 not offered",
                old.target("localhost")
            ))
        })
        .unwrap_or_else(|| panic!("no event for the failing target:\n{stderr}"));
    assert!(
        event.contains("ERROR")
            && event.contains("rule=\"tls_version\"")
            && event.contains(&format!("target=\"{}\"", old.target("localhost"))),
        "{event}"
    );
    // One alert for the failing target (run-job waits for the sinks before it exits), beside
    // the run's own `run_failed`.
    let sent = std::fs::read_to_string(&alerts).unwrap_or_default();
    let rules: Vec<(String, String, String)> = sent
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("an alert is JSON");
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (field("rule"), field("severity"), field("summary"))
        })
        .collect();
    let tls_alerts: Vec<_> = rules
        .iter()
        .filter(|(r, _, _)| r.starts_with("tls_"))
        .collect();
    assert_eq!(
        tls_alerts,
        [&(
            "tls_version".to_string(),
            "high".to_string(),
            format!("{}: TLS 1.3 not offered", old.target("localhost"))
        )],
        "{sent}"
    );
    assert!(rules.iter().any(|(r, _, _)| r == "run_failed"), "{sent}");
}

#[test]
fn control_characters_in_certificate_names_are_escaped_in_the_table_the_log_and_the_alert() {
    // A CA and an intermediate (expiring first, so its name is in the verdict) whose names
    // hold ANSI escapes and a carriage return, above an ordinary leaf.
    let pki = Pki::new();
    let dir = pki.path("");
    ca(&dir, "evil-ca", "/CN=Evil\u{1b}[2J\rCA", "30");
    std::fs::write(
        pki.path("evil.cnf"),
        "[inter]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign\n\
         [leaf]\nsubjectAltName = DNS:localhost\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write evil.cnf");
    let sign = |name: &str, subject: &str, issuer: &str, days: &str, ext: &str| {
        Cert {
            name,
            subject,
            key: &EC,
            issuer,
            days,
            serial: "77",
            extensions: ("evil.cnf", ext),
        }
        .make(&dir);
    };
    sign(
        "evil-inter",
        "/CN=Inter\u{1b}[31m\rERROR forged",
        "evil-ca",
        "3",
        "inter",
    );
    sign("evil-leaf", "/CN=leaf", "evil-inter", "30", "leaf");
    let server = Server::start(&pki, "evil-leaf", Some("evil-inter"), &[]);
    let target = server.target("localhost");

    let config = pki.path("evil-jobs.toml");
    let alerts = pki.path("evil-alerts.jsonl");
    std::fs::write(
        &config,
        format!(
            "[alerts.capture]\ntype = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n\n\
             [jobs.evil]\ntype = \"tls\"\nschedule = \"@daily\"\ntargets = [\"{target}\"]\n\
             ca_file = \"{}\"\nalert = [\"capture\"]\n",
            alerts.display(),
            alerts.display(),
            pki.path("evil-ca.pem").display()
        ),
    )
    .expect("write jobs.toml");
    let out = opsd(&["run-job", "evil"], &config);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let sent = std::fs::read_to_string(&alerts).unwrap_or_default();
    for (what, text) in [("table", &*stdout), ("log", &*stderr), ("alerts", &*sent)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r'),
            "a raw control character in the {what}:\n{text}"
        );
    }
    assert!(
        stdout.contains("  Inter\\u{1b}[31m\\rERROR forged  "),
        "the leaf's issuer, escaped:\n{stdout}"
    );
    let verdict = "intermediate certificate \"CN=Inter\\u{1b}[31m\\rERROR forged\" expires in ";
    assert!(stdout.contains(verdict), "{verdict}\n{stdout}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("ERROR forged")),
        "{stderr}"
    );
    let summaries: Vec<String> = sent
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("an alert is JSON");
            v["summary"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("CN=Inter\\u{1b}[31m\\rERROR forged")),
        "{summaries:?}"
    );
}

#[test]
fn a_name_that_does_not_resolve_fails_with_a_dns_reason_quickly() {
    // opsd runs in its own network namespace (loopback only: nothing can leave the machine)
    // and mount namespace, where /etc/resolv.conf names 127.0.0.1 (nothing listens on port
    // 53 there, so a lookup fails at once) and nsswitch.conf asks only files and DNS.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (resolv, nsswitch) = (
        dir.path().join("resolv.conf"),
        dir.path().join("nsswitch.conf"),
    );
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write resolv.conf");
    std::fs::write(&nsswitch, "hosts: files dns\n").expect("write nsswitch.conf");
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        "[jobs.dns]\ntype = \"tls\"\nschedule = \"@daily\"\n\
         targets = [\"does-not-exist.invalid:443\"]\nprobe_timeout = \"30s\"\n",
    )
    .expect("write jobs.toml");
    let script = format!(
        "ip link set lo up && mount --bind '{}' /etc/resolv.conf && \
         mount --bind '{}' /etc/nsswitch.conf && exec '{OPSD}' run-job dns --config '{}' \
         --log-format text --state-dir '{}'",
        resolv.display(),
        nsswitch.display(),
        config.display(),
        dir.path().join("state").display()
    );
    let mut child = Command::new("unshare")
        .args(["--net", "--mount", "sh", "-c", &script])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run unshare ({e}): install it with `apt-get install util-linux iproute2` (.ci/setup)")
        });
    // Far less than the probe's 30 s: a DNS failure, not a timeout.
    let done = crate::util::poll_until(Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("opsd's output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(done, "the run hung:\n{stdout}\n{stderr}");
    assert!(
        !stderr.contains("unshare:") && !stderr.contains("mount:"),
        "the namespaces need root and util-linux/iproute2 (.ci/setup): {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("does-not-exist.invalid:443"))
        .unwrap_or_else(|| panic!("no row:\n{stdout}\n{stderr}"));
    assert!(row.contains("DNS: "), "{row}");
    assert!(
        stderr.contains("dns: failed: 1 of 1 target failed: does-not-exist.invalid:443 (DNS: "),
        "{stderr}"
    );
}

#[test]
fn check_locates_each_error_of_a_broken_tls_job() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        "[jobs.sites]\ntype = \"tls\"\nschedule = \"@daily\"\n\
         targets = [\"www.example.com:443\", \"www.example.com\"]\n\
         expect = { tls13 = true, tls14 = true }\nwarn_days = 0\n",
    )
    .expect("write jobs.toml");
    let out = opsd(&["check"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let file = config.display().to_string();
    for located in [
        format!("{file}:4:35: `jobs.sites.targets`: target \"www.example.com\" has no port"),
        format!("{file}:5:26: `jobs.sites.expect.tls14`: unknown key in expect (known: tls13, tls12, legacy); did you mean `tls12`?"),
        format!("{file}:6:13: `jobs.sites.warn_days`: warn_days must be"),
    ] {
        assert!(stderr.contains(&located), "{located:?} not in:\n{stderr}");
    }
}
