//! The rules a line is matched against: the built-in ones (child and parent crashes, worker
//! exhaustion, PHP fatals, start-up failures) and custom ones from the configuration, each with a
//! threshold (`count` matches within `window`), a `cooldown` and a dedup key.
//!
//! Matching is two-step so that a line that matches nothing costs little: one combined regex
//! (with literal prefilters) runs over a whole chunk of lines, and only lines it hits are checked
//! against the per-rule [`RegexSet`].

use super::line::{truncate, ErrorLine};
use chrono::NaiveDateTime;
use regex::bytes::{Regex, RegexSet};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

/// Matches counted per rule and key at most; beyond this the count stays at the cap.
const MAX_COUNTED: usize = 10_000;
/// Keys remembered before stale ones are forgotten.
const MAX_KEYS: usize = 4096;

/// A rule rates its matches on the crate's one scale, the one alert records carry.
use crate::severity::Severity;

/// How matches of one rule are grouped for counting, cooldown and dedup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    /// All matches of the rule form one group.
    Rule,
    /// The group is this template expanded with the regex's captures (`$1`, `${name}`).
    Template(String),
    /// The group is the PHP script location `file:line` named in the message.
    PhpLocation,
}

/// A stronger severity once a rule matched often enough within its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// Matches within the window that escalate.
    pub count: u32,
    /// The severity then.
    pub severity: Severity,
}

/// One rule: what to look for and when a match is worth an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// A short stable name, e.g. `child_crash`.
    pub id: String,
    /// What the match means and what to do about it, for the alert text.
    pub summary: String,
    /// The regex (over bytes), matched anywhere in the line.
    pub pattern: String,
    /// The severity of an event.
    pub severity: Severity,
    /// Matches within `window` needed for an event.
    pub count: u32,
    /// The span in which matches are counted.
    pub window: Duration,
    /// After an event, further matches of the same group are only counted for this long
    /// (unless they escalate the severity).
    pub cooldown: Duration,
    /// How matches are grouped.
    pub dedup: Dedup,
    /// An optional stronger severity at a higher count.
    pub escalate: Option<Escalation>,
}

/// Ten minutes, the default window and cooldown.
const TEN_MINUTES: Duration = Duration::from_secs(600);

fn builtin(id: &str, severity: Severity, pattern: &str, summary: &str) -> Rule {
    Rule {
        id: id.to_string(),
        summary: summary.to_string(),
        pattern: pattern.to_string(),
        severity,
        count: 1,
        window: TEN_MINUTES,
        cooldown: TEN_MINUTES,
        dedup: Dedup::Rule,
        escalate: None,
    }
}

/// The ids of the built-in rules, in table order.
pub const BUILTIN_IDS: &[&str] = &[
    "child_crash",
    "parent_crash",
    "worker_exhaustion",
    "workers_nearly_exhausted",
    "scoreboard_full",
    "php_fatal",
    "php_heap_corruption",
    "startup_failure",
];

/// The rules that apply without configuration.
pub fn builtin_rules() -> Vec<Rule> {
    let mut child = builtin(
        "child_crash",
        Severity::High,
        r"AH0005[12]: .*exit signal (?:Segmentation fault|Bus error|Abort(?:ed)?) ",
        "an Apache child process crashed; the parent respawns it, so clients only see dropped \
         connections",
    );
    child.escalate = Some(Escalation {
        count: 3,
        severity: Severity::Critical,
    });
    let mut php = builtin(
        "php_fatal",
        Severity::High,
        r"\[php\d*:(?:error|crit)\].*PHP Fatal error:",
        "a PHP script died with a fatal error; the page it served failed",
    );
    php.dedup = Dedup::PhpLocation;
    vec![
        child,
        builtin(
            "parent_crash",
            Severity::Critical,
            r"AH00060: |AH00050: .*Apache is exiting",
            "the Apache parent process crashed or gave up: the server is down; check the \
             lines before this one and restart it",
        ),
        builtin(
            "worker_exhaustion",
            Severity::High,
            r"AH00484: |AH00161: |AH00286: ",
            "all workers are busy (MaxRequestWorkers reached): requests queue or are refused; \
             raise MaxRequestWorkers or find what holds the workers",
        ),
        builtin(
            "workers_nearly_exhausted",
            Severity::Warning,
            r"AH10159: |AH00287: ",
            "the server is within MinSpareThreads of MaxRequestWorkers: workers are about to run \
             out; raise MaxRequestWorkers (and ServerLimit) or find what holds the workers, \
             before requests queue",
        ),
        builtin(
            "scoreboard_full",
            Severity::High,
            r"AH03490: |AH00288: ",
            "the scoreboard is full (often children stuck in graceful stop): no new processes \
             can start; raise ServerLimit or look for stuck connections",
        ),
        php,
        builtin(
            "php_heap_corruption",
            Severity::High,
            r"zend_mm_heap corrupted",
            "PHP's memory manager found its heap corrupted: a PHP extension or opcache bug \
             crashes requests",
        ),
        builtin(
            "startup_failure",
            Severity::Critical,
            r"AH00072: |AH00015: |AH00016: ",
            "Apache failed to start (cannot bind its address, open its logs, or read its \
             configuration): the server is down",
        ),
    ]
}

/// An alert-worthy event: a rule whose threshold was reached, with the lines that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    /// The rule's id.
    pub rule: String,
    /// How urgent it is (after escalation).
    pub severity: Severity,
    /// Matches of this rule and key within the window, this one included.
    pub count: u32,
    /// The window the count covers.
    pub window: Duration,
    /// The dedup key, for rules that group by one.
    pub dedup_key: Option<String>,
    /// The first matching line since the previous event for this rule and key.
    pub first_line: String,
    /// The line that triggered this event.
    pub last_line: String,
    /// The file the lines came from.
    pub file: String,
    /// What the rule means and what to do.
    pub summary: String,
    /// Matches of this rule and key held back by the cooldown since the previous event.
    pub suppressed: u32,
    /// When the first of those held-back matches was logged.
    pub suppressed_since: Option<NaiveDateTime>,
}

impl LogEvent {
    /// `and 7 more since 10:02:13` when the cooldown held matches back since the previous
    /// event, for the alert text; `None` when it held none.
    pub fn suppressed_note(&self) -> Option<String> {
        let since = self.suppressed_since?;
        (self.suppressed > 0).then(|| {
            format!(
                "and {} more since {} (held back by the rule's cooldown)",
                self.suppressed,
                since.format("%H:%M:%S")
            )
        })
    }

    /// [`Self::suppressed_note`] as it follows a summary in alerts, logs and reports:
    /// ` (and 7 more since ...)`, or nothing.
    pub fn suppressed_suffix(&self) -> String {
        self.suppressed_note()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    }
}

/// Counting state of one rule and key.
#[derive(Debug, Default)]
struct Group {
    times: VecDeque<NaiveDateTime>,
    first_line: Option<Vec<u8>>,
    quiet_until: Option<NaiveDateTime>,
    last_severity: Severity,
    /// Matches held back by the cooldown since the last event.
    suppressed: u32,
    /// When the first of them was logged.
    suppressed_since: Option<NaiveDateTime>,
}

/// Error for a rule set that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("rule {id:?}: invalid regex: {source}")]
pub struct RuleError {
    /// The rule at fault.
    pub id: String,
    /// What the regex engine said.
    #[source]
    pub source: Box<regex::Error>,
}

/// Compiled rules plus their counting state.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    regexes: Vec<Regex>,
    set: RegexSet,
    any: Regex,
    groups: HashMap<(usize, Vec<u8>), Group>,
    /// The job's name, for the debug line about each held-back match.
    job: String,
    /// Matches held back by cooldowns since the set was built, per rule (in `rules`' order).
    suppressed: Vec<u64>,
}

/// `in /path/file.php on line 12` or `in /path/file.php:12`, as PHP writes locations.
static PHP_LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r" in (\S+?)(?: on line |:)(\d+)").expect("constant regex compiles")
});

impl RuleSet {
    /// Compiles `rules`.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleError> {
        let regexes = rules
            .iter()
            .map(|r| {
                Regex::new(&r.pattern).map_err(|e| RuleError {
                    id: r.id.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let err = |e| RuleError {
            id: "(all rules)".to_string(),
            source: Box::new(e),
        };
        let set = RegexSet::new(rules.iter().map(|r| &r.pattern)).map_err(err)?;
        let combined = if rules.is_empty() {
            // Matches nothing.
            r"[^\s\S]".to_string()
        } else {
            let alts: Vec<String> = rules.iter().map(|r| format!("(?:{})", r.pattern)).collect();
            format!("(?m){}", alts.join("|"))
        };
        let any = Regex::new(&combined).map_err(err)?;
        Ok(RuleSet {
            suppressed: vec![0; rules.len()],
            rules,
            regexes,
            set,
            any,
            groups: HashMap::new(),
            job: String::new(),
        })
    }

    /// Names the job in the debug line logged for each match a cooldown holds back.
    pub fn with_job(mut self, job: impl Into<String>) -> Self {
        self.job = job.into();
        self
    }

    /// Matches held back by a rule's cooldown since the set was built (each is also counted
    /// in the next event of its rule and key).
    pub fn suppressed(&self) -> u64 {
        self.suppressed.iter().sum()
    }

    /// [`Self::suppressed`] per rule, in the order of [`Self::rules`].
    pub fn suppressed_by_rule(&self) -> &[u64] {
        &self.suppressed
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Matches every line of `chunk` (complete lines, each ending in `\n`) read from `file`,
    /// pushing the events they cause onto `events`.
    pub fn scan(&mut self, chunk: &[u8], file: &Path, events: &mut Vec<LogEvent>) {
        self.scan_marked(chunk, file, events, &mut |_| {});
    }

    /// [`RuleSet::scan`], telling `line_start` for every event pushed where in `chunk` the line
    /// that caused it starts.
    pub fn scan_marked(
        &mut self,
        chunk: &[u8],
        file: &Path,
        events: &mut Vec<LogEvent>,
        line_start: &mut dyn FnMut(usize),
    ) {
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(m) = self.any.find_at(chunk, pos) else {
                return;
            };
            let start = memchr::memrchr(b'\n', &chunk[..m.start()]).map_or(0, |i| i + 1);
            let end =
                memchr::memchr(b'\n', &chunk[m.start()..]).map_or(chunk.len(), |i| i + m.start());
            let before = events.len();
            self.check_line(&chunk[start..end], file, events);
            for _ in before..events.len() {
                line_start(start);
            }
            pos = end + 1;
        }
    }

    /// The indices (into [`RuleSet::rules`]) of the rules whose regex matches `line`, without
    /// counting anything.
    pub fn matching(&self, line: &[u8]) -> Vec<usize> {
        self.set.matches(truncate(line)).into_iter().collect()
    }

    /// Matches one line (without its newline), pushing the events it causes onto `events`.
    pub fn check_line(&mut self, line: &[u8], file: &Path, events: &mut Vec<LogEvent>) {
        let line = truncate(line);
        let hits = self.set.matches(line);
        if !hits.matched_any() {
            return;
        }
        let at = ErrorLine::parse(line)
            .time()
            .unwrap_or_else(|| chrono::Local::now().naive_local());
        for idx in hits.iter() {
            if let Some(ev) = self.observe(idx, line, at, file) {
                events.push(ev);
            }
        }
    }

    /// Makes room for new keys: forgets the groups whose window and cooldown are over, and when
    /// that is not enough (many keys within one window), the least recently matched ones down
    /// to half of [`MAX_KEYS`], so that a flood of distinct keys costs amortised constant time
    /// per line instead of a pass over every group.
    fn forget_stale(&mut self, at: NaiveDateTime) {
        let rules = &self.rules;
        self.groups.retain(|(i, _), g| {
            let keep = rules[*i].window.max(rules[*i].cooldown);
            g.times
                .back()
                .is_some_and(|&t| at - t < chrono::Duration::from_std(keep).unwrap_or_default())
        });
        if self.groups.len() < MAX_KEYS * 3 / 4 {
            return;
        }
        let mut last: Vec<NaiveDateTime> = self
            .groups
            .values()
            .map(|g| g.times.back().copied().unwrap_or(NaiveDateTime::MIN))
            .collect();
        let cut = last.len() - MAX_KEYS / 2;
        let (_, &mut oldest_kept, _) = last.select_nth_unstable(cut);
        let mut excess = self.groups.len() - MAX_KEYS / 2;
        self.groups.retain(|_, g| {
            let t = g.times.back().copied().unwrap_or(NaiveDateTime::MIN);
            let forget = excess > 0 && t <= oldest_kept;
            excess -= usize::from(forget);
            !forget
        });
    }

    /// Counts one match of rule `idx` and returns an event when one is due.
    fn observe(
        &mut self,
        idx: usize,
        line: &[u8],
        at: NaiveDateTime,
        file: &Path,
    ) -> Option<LogEvent> {
        let rule = &self.rules[idx];
        let key = match &rule.dedup {
            Dedup::Rule => None,
            Dedup::Template(t) => self.regexes[idx].captures(line).map(|c| {
                let mut k = Vec::new();
                c.expand(t.as_bytes(), &mut k);
                k
            }),
            Dedup::PhpLocation => PHP_LOCATION.captures_iter(line).last().map(|c| {
                let mut k = c[1].to_vec();
                k.push(b':');
                k.extend_from_slice(&c[2]);
                k
            }),
        };
        let group_key = (idx, key.clone().unwrap_or_default());
        if self.groups.len() >= MAX_KEYS && !self.groups.contains_key(&group_key) {
            self.forget_stale(at);
        }
        let rule = &self.rules[idx];
        let group = self.groups.entry(group_key).or_default();
        let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
        while group.times.front().is_some_and(|&t| at - t > window) {
            group.times.pop_front();
        }
        if group.times.len() >= MAX_COUNTED {
            group.times.pop_front();
        }
        group.times.push_back(at);
        let first = group.first_line.get_or_insert_with(|| line.to_vec());
        let count = u32::try_from(group.times.len()).unwrap_or(u32::MAX);
        let severity = match rule.escalate {
            Some(e) if count >= e.count => e.severity.max(rule.severity),
            _ => rule.severity,
        };
        let quiet = group.quiet_until.is_some_and(|u| at < u);
        if count < rule.count {
            return None;
        }
        if quiet && severity <= group.last_severity {
            group.suppressed = group.suppressed.saturating_add(1);
            group.suppressed_since.get_or_insert(at);
            self.suppressed[idx] += 1;
            tracing::debug!(
                job = %self.job,
                rule = %rule.id,
                dedup_key = %crate::escape::control(&String::from_utf8_lossy(key.as_deref().unwrap_or_default())),
                suppressed = group.suppressed,
                line = %crate::escape::control(&String::from_utf8_lossy(line)),
                "{}: {} matched during its cooldown; held back, reported with the next alert",
                self.job,
                rule.id
            );
            return None;
        }
        let first_line = String::from_utf8_lossy(first).into_owned();
        group.first_line = None;
        let suppressed = std::mem::take(&mut group.suppressed);
        let suppressed_since = group.suppressed_since.take();
        group.quiet_until = chrono::Duration::from_std(rule.cooldown)
            .ok()
            .and_then(|c| at.checked_add_signed(c));
        group.last_severity = severity;
        Some(LogEvent {
            rule: rule.id.clone(),
            severity,
            count,
            window: rule.window,
            dedup_key: key.map(|k| String::from_utf8_lossy(&k).into_owned()),
            first_line,
            last_line: String::from_utf8_lossy(line).into_owned(),
            file: file.display().to_string(),
            summary: rule.summary.clone(),
            suppressed,
            suppressed_since,
        })
    }
}

#[cfg(test)]
mod tests;
