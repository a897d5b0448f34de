//! Unit tests: the spec's checks, each located at its file, line and key; the outcome's line and
//! the alerts built from verdicts.

use super::{alert_for, outcome_line, TlsSpec, DEFAULT_CONCURRENCY, DEFAULT_PROBE_TIMEOUT};
use crate::config::{parse, ConfigError};
use crate::jobs::JobType;
use crate::severity::Severity;
use crate::tls::{
    judge, CertInfo, ChainReport, Expect, Findings, ProbeReport, Support, Target, Unreachable,
    Verdict, Versions,
};
use std::path::Path;
use std::time::Duration;

/// The errors of `text` as (line, key, message); empty when it parses.
fn errors(text: &str) -> Vec<(usize, String, String)> {
    match parse(Path::new("/etc/opsd/jobs.toml"), text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(v)) => v.into_iter().map(|l| (l.line, l.key, l.message)).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The spec of job `sites` in `text`, which must parse.
fn spec(text: &str) -> TlsSpec {
    let cfg = parse(Path::new("jobs.toml"), text).expect("valid");
    let job = &cfg.jobs["sites"].spec;
    assert_eq!(job.type_name(), "tls");
    assert!(!job.is_continuous());
    match job {
        JobType::Tls(spec) => spec.clone(),
        other => panic!("not a tls job: {other:?}"),
    }
}

const HEAD: &str = "[jobs.sites]\ntype = \"tls\"\nschedule = \"0 0 9 * * *\"\n";

#[test]
fn the_issues_example_parses_with_its_expectations() {
    let spec = spec(&format!(
        "{HEAD}targets = [\"www.example.com:443\", \"api.example.com:443\", \"127.0.0.1:8443 sni=shop.example.com\"]\n\
         expect = {{ tls13 = true, tls12 = true, legacy = false }}\nwarn_days = 21\n"
    ));
    let shown: Vec<String> = spec.targets.iter().map(Target::to_string).collect();
    assert_eq!(
        shown,
        [
            "www.example.com:443",
            "api.example.com:443",
            "127.0.0.1:8443 sni=shop.example.com"
        ]
    );
    assert_eq!(spec.expect, Expect::default());
    assert_eq!(spec.probe_timeout, DEFAULT_PROBE_TIMEOUT);
    assert_eq!(spec.concurrency, DEFAULT_CONCURRENCY);
    assert_eq!(spec.ca_file, None);
}

#[test]
fn every_key_is_read_and_expect_keys_left_out_keep_their_defaults() {
    let spec = spec(&format!(
        "{HEAD}targets = [\"[::1]:8443\"]\nexpect = {{ tls12 = false }}\nwarn_days = 3650\n\
         ca_file = \"/etc/ssl/company-ca.pem\"\nprobe_timeout = \"2s\"\nconcurrency = 4\ntimeout = \"5m\"\n"
    ));
    assert_eq!(
        spec.expect,
        Expect {
            tls13: true,
            tls12: false,
            legacy: false,
            warn_days: 3650
        }
    );
    let (path, _) = spec.ca_file.expect("ca_file");
    assert_eq!(path, Path::new("/etc/ssl/company-ca.pem"));
    assert_eq!(spec.probe_timeout, Duration::from_secs(2));
    assert_eq!(spec.concurrency, 4);
}

#[test]
fn every_bad_key_is_reported_at_its_own_line() {
    let text = format!(
        "{HEAD}targets = [\n  \"www.example.com:443\",\n  \"no-port.example.com\",\n  \"www.example.com:443\",\n]\n\
         expect = {{ tls13 = true, tsl12 = true, legacy = \"no\" }}\n\
         warn_days = 0\nca_file = \"ca.pem\"\nprobe_timeout = \"0s\"\nconcurrency = 1000\n"
    );
    let errs = errors(&text);
    let located: Vec<(usize, &str)> = errs.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        located,
        [
            (6, "jobs.sites.targets"),
            (7, "jobs.sites.targets"),
            (9, "jobs.sites.expect.tsl12"),
            (9, "jobs.sites.expect.legacy"),
            (10, "jobs.sites.warn_days"),
            (11, "jobs.sites.ca_file"),
            (12, "jobs.sites.probe_timeout"),
            (13, "jobs.sites.concurrency"),
        ],
        "{errs:?}"
    );
    let message = |n: usize| errs[n].2.as_str();
    assert!(
        message(0).contains("\"no-port.example.com\" has no port"),
        "{errs:?}"
    );
    assert!(message(1).contains("listed twice"), "{errs:?}");
    assert!(message(2).contains("did you mean `tls12`?"), "{errs:?}");
    assert!(message(3).contains("expected a boolean"), "{errs:?}");
    assert!(message(4).contains("from 1 to 3650"), "{errs:?}");
    assert!(message(5).contains("not an absolute path"), "{errs:?}");
    assert!(message(6).contains("longer than zero"), "{errs:?}");
    assert!(message(7).contains("from 1 to 256"), "{errs:?}");
}

#[test]
fn starttls_of_the_job_applies_to_targets_without_their_own() {
    let spec = spec(&format!(
        "{HEAD}targets = [\"mail.example.com:587\", \"mail.example.com:143 starttls=imap\"]\n\
         starttls = \"smtp\"\n"
    ));
    let shown: Vec<String> = spec.targets.iter().map(Target::to_string).collect();
    assert_eq!(
        shown,
        [
            "mail.example.com:587 starttls=smtp",
            "mail.example.com:143 starttls=imap"
        ]
    );
    let errs = errors(&format!(
        "{HEAD}targets = [\n  \"a:25 starttls=smtps\",\n]\nstarttls = \"lmtp\"\n"
    ));
    let located: Vec<(usize, &str, &str)> = errs
        .iter()
        .map(|(l, k, m)| (*l, k.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        located,
        [
            (
                5,
                "jobs.sites.targets",
                "target \"a:25 starttls=smtps\": starttls \"smtps\" is not one of \"smtp\", \"imap\", \"pop3\""
            ),
            (
                7,
                "jobs.sites.starttls",
                "starttls \"lmtp\" is not one of \"smtp\", \"imap\", \"pop3\""
            ),
        ],
        "{errs:?}"
    );
}

#[test]
fn missing_empty_or_mistyped_targets_and_a_non_table_expect_are_located() {
    let errs = errors(&format!("{HEAD}expect = true\n"));
    let located: Vec<(usize, &str)> = errs.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        located,
        [(1, "jobs.sites"), (4, "jobs.sites.expect")],
        "{errs:?}"
    );
    assert!(errs[0].2.contains("missing field `targets`"), "{errs:?}");
    assert!(errs[1].2.contains("expect must be a table"), "{errs:?}");

    let errs = errors(&format!("{HEAD}targets = []\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1.as_str()), (4, "jobs.sites.targets"));
    assert!(errs[0].2.contains("targets is empty"), "{errs:?}");

    let errs = errors(&format!("{HEAD}targets = \"www.example.com:443\"\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1.as_str()), (4, "jobs.sites.targets"));

    let errs = errors(&format!("{HEAD}targets = [\"a:443\"]\nwarn_dayz = 3\n"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].1, "jobs.sites.warn_dayz");
    assert!(
        errs[0]
            .2
            .contains("unknown key for a tls job; did you mean `warn_days`?"),
        "{errs:?}"
    );
}

#[test]
fn a_tls_job_needs_a_schedule() {
    let errs = errors("[jobs.sites]\ntype = \"tls\"\ntargets = [\"a:443\"]\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].1, "jobs.sites.schedule");
}

#[tokio::test]
async fn preflight_loads_the_ca_file_and_names_it_when_it_cannot() {
    let text = format!("{HEAD}targets = [\"a:443\"]\nca_file = \"/nonexistent/ca.pem\"\n");
    let cfg = parse(Path::new("jobs.toml"), &text).expect("valid");
    let e = cfg.jobs["sites"]
        .spec
        .preflight()
        .await
        .expect_err("no such file");
    assert!(e.starts_with("ca_file /nonexistent/ca.pem: "), "{e}");
    let text = format!("{HEAD}targets = [\"a:443\"]\n");
    let cfg = parse(Path::new("jobs.toml"), &text).expect("valid");
    assert_eq!(cfg.jobs["sites"].spec.preflight().await, Ok(None));
}

#[tokio::test]
async fn a_cancel_stops_probes_that_wait_on_a_silent_server_at_once() {
    // A server that takes connections and never answers: each probe would wait its full
    // `probe_timeout` (5 minutes here).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (connected, mut first) = tokio::sync::mpsc::channel::<()>(8);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            let _ = connected.try_send(());
        }
    });
    let text = format!("{HEAD}targets = [\"127.0.0.1:{port}\"]\nprobe_timeout = \"5m\"\n");
    let cfg = parse(Path::new("jobs.toml"), &text).expect("valid");
    let ctx = crate::jobs::RunContext::for_tests("sites");
    let job = &cfg.jobs["sites"].spec;
    let run = job.run(&ctx);
    tokio::pin!(run);
    tokio::select! {
        report = &mut run => panic!("the run ended before the server answered: {report:?}"),
        _ = first.recv() => ctx.cancel.cancel(),
    }
    // Bounded only so that a regression fails instead of hanging for the 5-minute timeout.
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ignored its cancel");
    assert_eq!(report.outcome, crate::jobs::Outcome::Killed, "{report:?}");
    assert_eq!(report.detail.as_deref(), Some("cancelled while probing"));
}

#[test]
fn the_ca_file_is_a_path_the_job_needs_at_its_key() {
    let text = format!("{HEAD}targets = [\"a:443\"]\nca_file = \"/tmp/ca.pem\"\n");
    let spec = spec(&text);
    let mut needs = crate::jobs::needs::Needs::default();
    crate::jobs::JobSpec::needs(&spec, &mut needs);
    let needs = needs.into_vec();
    assert_eq!(needs.len(), 1, "{needs:?}");
    assert_eq!(
        (needs[0].key, needs[0].path.as_path()),
        ("ca_file", Path::new("/tmp/ca.pem"))
    );
    let span = needs[0].span.clone().expect("located");
    assert_eq!(&text[span], "\"/tmp/ca.pem\"");
}

// ---- outcomes and alerts ------------------------------------------------------------------

/// A certificate of shop.example.com by `issuer` with `days_left` days left.
fn cert(issuer: &str, days_left: i64) -> CertInfo {
    crate::tls::tests::cert("shop.example.com", issuer, days_left)
}

/// A reachable target `address` with TLS 1.3 `tls13` and 1.2 on, and a trusted leaf with
/// `days_left` days left, judged with the defaults.
fn reached(address: &str, tls13: bool, issuer: &str, days_left: i64) -> (ProbeReport, Verdict) {
    let on = Support::Accepted {
        cipher: "TLS13_AES_128_GCM_SHA256".to_string(),
    };
    let off = Support::Rejected {
        reason: "ProtocolVersion alert".to_string(),
    };
    let report = ProbeReport {
        target: Target::parse(address).expect("target"),
        address: None,
        result: Ok(Findings {
            versions: Versions {
                tls13: if tls13 { on.clone() } else { off.clone() },
                tls12: on,
                tls11: off.clone(),
                tls10: off,
            },
            chain: Ok(ChainReport {
                certificates: vec![Ok(cert(issuer, days_left))],
                trusted: Ok(()),
                hostname: Ok(()),
                ocsp_stapled: false,
            }),
        }),
        elapsed: Duration::from_millis(3),
    };
    let verdict = judge(&report, &Expect::default());
    (report, verdict)
}

/// A target nothing listens on, judged with the defaults.
fn refused(address: &str) -> (ProbeReport, Verdict) {
    let report = ProbeReport {
        target: Target::parse(address).expect("target"),
        address: None,
        result: Err(Unreachable::Refused),
        elapsed: Duration::from_millis(1),
    };
    let verdict = judge(&report, &Expect::default());
    (report, verdict)
}

#[test]
fn a_pass_names_the_certificate_that_expires_first() {
    let rows = [
        reached("a.example.com:443", true, "R3", 80),
        reached("b.example.com:443", true, "R3", 42),
    ];
    assert_eq!(
        outcome_line(&rows),
        (
            true,
            "2 targets pass; the first certificate to expire has 42 days left (b.example.com:443)"
                .to_string()
        )
    );
    for (report, verdict) in &rows {
        assert!(alert_for("sites", "r1", report, verdict).is_none());
    }
}

#[test]
fn a_failure_names_the_first_failing_targets_and_counts_the_rest() {
    let rows = [
        reached("ok.example.com:443", true, "R3", 80),
        reached("old.example.com:443", false, "R3", 80),
        reached("soon.example.com:443", true, "R3", 6),
        refused("down.example.com:443"),
        refused("gone.example.com:443"),
    ];
    let (passed, line) = outcome_line(&rows);
    assert!(!passed);
    assert_eq!(
        line,
        "4 of 5 targets failed: old.example.com:443 (TLS 1.3 not offered), \
         soon.example.com:443 (certificate expires in 6 days), \
         down.example.com:443 (connection refused), +1 more"
    );
}

#[test]
fn each_failing_target_alerts_with_its_worst_problems_rule_and_severity() {
    let (report, verdict) = reached("old.example.com:443", false, "R3", 80);
    let alert = alert_for("sites", "r1", &report, &verdict).expect("an alert");
    assert_eq!(
        (alert.rule.as_str(), alert.severity),
        ("tls_version", Severity::High)
    );
    assert_eq!(alert.summary, "old.example.com:443: TLS 1.3 not offered");
    assert_eq!(alert.job, "sites");
    assert_eq!(alert.run_id.as_deref(), Some("r1"));
    assert_eq!(alert.dedup_key.as_deref(), Some("old.example.com:443"));
    let extra = alert.extra.expect("the target's row");
    assert!(extra.starts_with("TARGET"), "{extra}");
    assert!(extra.contains("old.example.com:443  no "), "{extra}");

    let (report, verdict) = refused("down.example.com:443");
    let alert = alert_for("sites", "r1", &report, &verdict).expect("an alert");
    assert_eq!(
        (alert.rule.as_str(), alert.severity),
        ("tls_unreachable", Severity::Critical)
    );
}

#[test]
fn certificate_text_is_escaped_in_the_line_and_the_alert() {
    let (mut report, _) = reached("x.example.com:443", true, "R3", 5);
    let Ok(findings) = &mut report.result else {
        unreachable!("reached")
    };
    let Ok(chain) = &mut findings.chain else {
        unreachable!("a chain")
    };
    let mut inter = cert("Evil\nCA", 2);
    inter.subject = "CN=Evil\u{1b}[31m\nInter".to_string();
    inter.is_ca = true;
    chain.certificates.push(Ok(inter));
    let verdict = judge(&report, &Expect::default());
    let rows = [(report.clone(), verdict.clone())];
    let (_, line) = outcome_line(&rows);
    assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
    let alert = alert_for("sites", "r1", &report, &verdict).expect("an alert");
    assert!(
        !alert.summary.contains('\n') && !alert.summary.contains('\u{1b}'),
        "{}",
        alert.summary
    );
    let extra = alert.extra.expect("row");
    assert!(!extra.contains('\u{1b}'), "{extra}");
    // Heading, row, the detail block's target line; the rest are its indented fields.
    let unindented = extra.lines().filter(|l| !l.starts_with("  ")).count();
    assert_eq!(unindented, 3, "{extra}");
}

#[test]
fn the_alerts_extra_has_serial_sans_key_signature_ocsp_and_ciphers() {
    let (report, verdict) = reached("old.example.com:443", false, "R3", 80);
    let alert = alert_for("sites", "r1", &report, &verdict).expect("an alert");
    let extra = alert.extra.expect("extra");
    for field in [
        "old.example.com:443:\n",
        "  serial: ",
        "  sans: ",
        "  key: ",
        "  signature: ",
        "  ocsp_stapled: no",
        "  cipher_tls12: ",
    ] {
        assert!(extra.contains(field), "{field:?} missing: {extra}");
    }
}
