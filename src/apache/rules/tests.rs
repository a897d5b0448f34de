//! Unit tests of the rule set on real Apache logs: severities, escalation, deduplication and
//! hostile lines.

use super::*;

const CRASHES: &str = include_str!("../../../tests/data/apache/event-crashes.log");
const EXHAUSTION: &str = include_str!("../../../tests/data/apache/event-exhaustion.log");
const PHP: &str = include_str!("../../../tests/data/apache/php-fatal.log");
const STDERR: &str = include_str!("../../../tests/data/apache/startup-stderr.txt");

fn scan(rules: &mut RuleSet, text: &[u8]) -> Vec<LogEvent> {
    let mut events = Vec::new();
    rules.scan(text, Path::new("/var/log/apache2/error.log"), &mut events);
    events
}

fn builtin() -> RuleSet {
    RuleSet::new(builtin_rules()).unwrap()
}

#[test]
fn real_child_crashes_are_high_then_critical_at_three() {
    let mut rules = builtin();
    let events = scan(&mut rules, CRASHES.as_bytes());
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0].rule, "child_crash");
    assert_eq!(events[0].severity, Severity::High);
    assert_eq!(events[0].count, 1);
    assert!(events[0]
        .last_line
        .contains("AH00052: child pid 28517 exit signal Segmentation fault (11)"));
    // The second crash (Bus error) falls in the cooldown; the third (Abort) escalates.
    assert_eq!(events[1].severity, Severity::Critical);
    assert_eq!(events[1].count, 3);
    assert!(events[1].first_line.contains("Bus error (7)"));
    assert!(events[1].last_line.contains("Abort (6)"));
}

#[test]
fn real_worker_exhaustion_is_high() {
    let events = scan(&mut builtin(), EXHAUSTION.as_bytes());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].rule, "worker_exhaustion");
    assert_eq!(events[0].severity, Severity::High);
}

#[test]
fn real_php_fatals_are_deduplicated_by_location() {
    let mut rules = builtin();
    let mut text = PHP.to_string();
    text.push_str(PHP);
    let events = scan(&mut rules, text.as_bytes());
    let keys: Vec<_> = events
        .iter()
        .map(|e| e.dedup_key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["/tmp/apx/htdocs/fatal.php:3", "/tmp/apx/htdocs/mem.php:4"]
    );
    assert!(events.iter().all(|e| e.rule == "php_fatal"));
}

#[test]
fn real_startup_failures_are_critical() {
    let events = scan(&mut builtin(), STDERR.as_bytes());
    assert_eq!(
        events.len(),
        1,
        "one rule, in its cooldown after the first: {events:#?}"
    );
    assert_eq!(events[0].rule, "startup_failure");
    assert_eq!(events[0].severity, Severity::Critical);
    assert!(events[0].last_line.contains("AH00072"));
}

#[test]
fn glued_stderr_matches_both_rules() {
    let line = b"zend_mm_heap corrupted[Wed Nov 25 05:52:50.032317 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 3 exit signal Segmentation fault (11)\n";
    let events = scan(&mut builtin(), line);
    let ids: Vec<_> = events.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(ids, ["child_crash", "php_heap_corruption"]);
}

#[test]
fn non_utf8_lines_match_and_are_reported_lossily() {
    let line = b"[Wed Nov 25 05:52:50.032317 2026] [mpm_event:error] [pid 1:tid 1] \xff\xfe AH00484: server reached MaxRequestWorkers setting\n";
    let events = scan(&mut builtin(), line);
    assert_eq!(events.len(), 1);
    assert!(events[0].last_line.contains('\u{fffd}'));
}

#[test]
fn lines_that_match_nothing_cause_nothing() {
    let text = "[Wed Nov 25 05:52:48.025529 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: Apache/2.4.71 (Debian) configured\nAH0005 not a code\nchild pid 3 exit signal Segmentation fault (11)\n";
    assert!(scan(&mut builtin(), text.as_bytes()).is_empty());
}

#[test]
fn the_first_line_of_a_chunk_and_the_last_without_newline_are_checked() {
    let events = scan(&mut builtin(), b"AH00016: Configuration Failed");
    assert_eq!(events.len(), 1);
}

fn custom(count: u32, window: u64, cooldown: u64, dedup: Dedup) -> Rule {
    Rule {
        id: "slow".into(),
        summary: "slow backend".into(),
        pattern: r"AH01102: .* backend (\S+)".into(),
        severity: Severity::Warning,
        count,
        window: Duration::from_secs(window),
        cooldown: Duration::from_secs(cooldown),
        dedup,
        escalate: None,
    }
}

fn at(sec: u32, backend: &str) -> String {
    format!("[Wed Nov 25 05:{:02}:{:02}.000000 2026] [proxy_http:error] [pid 1:tid 1] AH01102: error reading status line from remote server backend {backend}\n", sec / 60, sec % 60)
}

#[test]
fn custom_threshold_counts_within_the_window_only() {
    let mut rules = RuleSet::new(vec![custom(3, 60, 0, Dedup::Rule)]).unwrap();
    // Two matches, then the third 61 s after the first: only two in the window.
    let text = at(0, "a") + &at(30, "a") + &at(61, "a");
    assert!(scan(&mut rules, text.as_bytes()).is_empty());
    let events = scan(&mut rules, at(62, "a").as_bytes());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].count, 3);
    // `first_line` is documented as the first match since the previous event (none yet), so
    // it is the 05:00:00 line even though that one has left the counting window.
    assert!(
        events[0].first_line.contains("05:00:00"),
        "{}",
        events[0].first_line
    );
    assert!(events[0].last_line.contains("05:01:02"));
}

#[test]
fn cooldown_suppresses_repeats_of_the_same_key_only() {
    let mut rules = RuleSet::new(vec![custom(1, 600, 300, Dedup::Template("$1".into()))]).unwrap();
    let text = at(0, "a") + &at(1, "b") + &at(2, "a") + &at(301, "a");
    let events = scan(&mut rules, text.as_bytes());
    let keys: Vec<_> = events
        .iter()
        .map(|e| e.dedup_key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "a"]);
    assert_eq!(events[2].count, 3);
    assert!(events[2].first_line.contains("05:00:02"));
}

#[test]
fn an_invalid_regex_names_its_rule() {
    let mut r = custom(1, 1, 1, Dedup::Rule);
    r.pattern = "(".into();
    let err = RuleSet::new(vec![r]).unwrap_err();
    assert_eq!(err.id, "slow");
}

#[test]
fn an_empty_rule_set_matches_nothing() {
    let mut rules = RuleSet::new(Vec::new()).unwrap();
    assert!(scan(&mut rules, CRASHES.as_bytes()).is_empty());
}

/// A flood of distinct keys within one window (every line of one second, each its own key)
/// keeps the groups bounded, and every line still makes its event. Before, no group was stale
/// within the window, so the map grew past [`MAX_KEYS`] and every new key paid a pass over all.
#[test]
fn a_flood_of_distinct_keys_keeps_the_groups_bounded() {
    let mut rules = RuleSet::new(vec![Rule {
        id: "missing".into(),
        summary: "a missing file".into(),
        pattern: r"AH00128: File does not exist: /x/(\d+)".into(),
        severity: Severity::Info,
        count: 1,
        window: Duration::from_secs(60),
        cooldown: Duration::ZERO,
        dedup: Dedup::Template("$1".into()),
        escalate: None,
    }])
    .unwrap();
    let text: String = (0..3 * MAX_KEYS)
        .map(|n| {
            format!("[Tue Dec 01 09:00:00.000000 2026] [core:info] [pid 1:tid 1] AH00128: File does not exist: /x/{n}\n")
        })
        .collect();
    let events = scan(&mut rules, text.as_bytes());
    assert_eq!(events.len(), 3 * MAX_KEYS);
    assert!(
        rules.groups.len() <= MAX_KEYS,
        "{} groups",
        rules.groups.len()
    );
}

/// Before, a match during the cooldown vanished: no count, no trace in the next event.
#[test]
fn matches_held_back_by_the_cooldown_are_counted_and_reported_with_the_next_event() {
    let mut rules = RuleSet::new(vec![custom(1, 600, 300, Dedup::Rule)])
        .unwrap()
        .with_job("web");
    // 05:00:00 alerts; 05:00:10, 05:00:20, 05:01:00 fall in the 5-minute cooldown; 05:05:01
    // alerts again and carries the three held back since 05:00:10.
    let text = at(0, "a") + &at(10, "a") + &at(20, "a") + &at(60, "a") + &at(301, "a");
    let events = scan(&mut rules, text.as_bytes());
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0].suppressed, 0);
    assert_eq!(events[0].suppressed_note(), None);
    assert_eq!(events[1].suppressed, 3);
    assert_eq!(
        events[1].suppressed_note().as_deref(),
        Some("and 3 more since 05:00:10 (held back by the rule's cooldown)")
    );
    assert_eq!(events[0].suppressed_suffix(), "");
    assert_eq!(
        events[1].suppressed_suffix(),
        " (and 3 more since 05:00:10 (held back by the rule's cooldown))"
    );
    assert_eq!(rules.suppressed(), 3);
    // The count starts again after an event.
    let events = scan(&mut rules, (at(302, "a") + &at(700, "a")).as_bytes());
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].suppressed, rules.suppressed()),
        (1, 4),
        "{events:#?}"
    );
}

#[test]
fn below_the_threshold_nothing_counts_as_held_back() {
    let mut rules = RuleSet::new(vec![custom(3, 60, 300, Dedup::Rule)]).unwrap();
    assert!(scan(&mut rules, (at(0, "a") + &at(1, "a")).as_bytes()).is_empty());
    assert_eq!(rules.suppressed(), 0);
}

/// Before, the early warnings were not matched at all: no rule named them.
#[test]
fn the_early_worker_warnings_are_a_lower_severity_rule() {
    let text = "[Tue Dec 01 10:00:00.000001 2026] [mpm_event:error] [pid 7:tid 7] AH10159: server is within MinSpareThreads of MaxRequestWorkers, consider raising the MaxRequestWorkers setting\n\
                [Tue Dec 01 10:20:00.000001 2026] [mpm_worker:error] [pid 7:tid 7] AH00287: server is within MinSpareThreads of MaxRequestWorkers, consider raising the MaxRequestWorkers setting\n";
    let events = scan(&mut builtin(), text.as_bytes());
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.rule.as_str(), e.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("workers_nearly_exhausted", Severity::Warning),
            ("workers_nearly_exhausted", Severity::Warning)
        ]
    );
    let exhaustion = builtin_rules()
        .into_iter()
        .find(|r| r.id == "worker_exhaustion")
        .unwrap();
    assert!(
        Severity::Warning < exhaustion.severity,
        "below worker_exhaustion"
    );
    assert!(BUILTIN_IDS.contains(&"workers_nearly_exhausted"));
    assert_eq!(
        BUILTIN_IDS.to_vec(),
        builtin_rules()
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
    );
}
