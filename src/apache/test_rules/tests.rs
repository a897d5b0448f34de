//! Unit tests of `opsd apache test-rules`' report: what each rule matched, the alerts the watch
//! would send, and hostile lines shown safely.

use super::*;
use crate::apache::rules::{builtin_rules, Dedup};
use crate::severity::Severity;
use std::time::Duration;

const CRASHES: &str = include_str!("../../../tests/data/apache/event-crashes.log");

#[test]
fn each_rule_says_what_it_matched_and_which_alerts_the_watch_would_send() {
    let report = test_rules(
        builtin_rules(),
        CRASHES.as_bytes(),
        Path::new("/var/log/apache2/error.log"),
    )
    .unwrap();
    assert_eq!(report.lines, 6);
    let crash = report
        .rules
        .iter()
        .position(|r| r.id == "child_crash")
        .unwrap();
    let r = &report.per_rule[crash];
    assert_eq!((r.matched, r.alerts), (3, 2), "{r:?}");
    assert_eq!(r.samples[0].0, 4);
    assert!(r.samples[0].1.contains("Segmentation fault (11)"));
    // Line 5 fell in the cooldown; line 6 escalated to critical and says so.
    let lines: Vec<_> = report
        .alerts
        .iter()
        .map(|(n, e)| (*n, e.severity))
        .collect();
    assert_eq!(lines, [(4, Severity::High), (6, Severity::Critical)]);
    let text = report.render(Path::new("error.log"), "built-in");
    assert!(
        text.starts_with("6 lines read from error.log; 8 rules (built-in); nothing is sent."),
        "{text}"
    );
    assert!(
        text.contains("child_crash (high): 3 matched line(s), 2 alert(s)\n  line 4: "),
        "{text}"
    );
    assert!(text.contains("parent_crash (critical): no match"), "{text}");
    assert!(
        text.contains("  line 6: critical child_crash x3 (and 1 more since 05:52:51"),
        "{text}"
    );
}

#[test]
fn held_back_matches_and_hostile_lines_are_shown_safely() {
    let rule = Rule {
        id: "slow".into(),
        summary: "slow backend".into(),
        pattern: "AH01102: ".into(),
        severity: Severity::Warning,
        count: 1,
        window: Duration::from_secs(600),
        cooldown: Duration::from_secs(300),
        dedup: Dedup::Rule,
        escalate: None,
    };
    let line = |t: &str| {
        format!("[Tue Dec 01 {t}.000001 2026] [proxy_http:error] [pid 1:tid 1] AH01102: error reading status line \x1b[31mred\r\n")
    };
    let log: String = ["10:00:00", "10:01:00", "10:02:00", "10:06:00"]
        .iter()
        .map(|t| line(t))
        .collect();
    let report = test_rules(vec![rule], log.as_bytes(), Path::new("-")).unwrap();
    assert_eq!(report.suppressed, 2);
    let text = report.render(Path::new("-"), "of job web");
    assert!(
        text.contains("line 4: warning slow x4 (and 2 more since 10:01:00 (held back by the rule's cooldown)): slow backend"),
        "{text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert!(text.contains("\\u{1b}[31mred\\r"), "{text}");
}

#[test]
fn a_log_with_no_match_says_no_alert_would_be_sent() {
    let report = test_rules(builtin_rules(), &b"nothing here\n"[..], Path::new("x")).unwrap();
    assert!(report
        .render(Path::new("x"), "built-in")
        .ends_with("No alert would be sent.\n"));
}
