//! `opsd apache test-rules FILE`: what each rule would match in a given error log, like
//! `fail2ban-regex`, without sending anything. The rules are the built-in ones, or those of an
//! `apache_log` job of the job file (its disabled built-ins left out, its custom rules added);
//! each line is counted and thresholds and cooldowns apply as in the watch, by the lines' own
//! timestamps, so the alerts listed are the ones the watch would have sent.

use super::rules::{LogEvent, Rule, RuleError, RuleSet};
use crate::escape::control;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Matching lines shown per rule.
const SAMPLES: usize = 5;
/// Alerts listed at most.
const MAX_ALERTS: usize = 50;
/// Characters of a line shown at most.
const SHOWN_CHARS: usize = 300;

/// `opsd apache test-rules`'s own arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TestRulesArgs {
    /// The Apache error log to test the rules on (`-` for standard input).
    pub file: PathBuf,
    /// Test the rules of this `apache_log` job of the job file (its custom rules, without its
    /// disabled built-ins) instead of the built-in rules alone.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
}

/// What one rule did over the whole log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// Lines it matched.
    pub matched: u64,
    /// The first matching lines: line number and text.
    pub samples: Vec<(u64, String)>,
    /// Alerts it would have sent.
    pub alerts: u64,
}

/// The result of testing rules on one log.
#[derive(Debug)]
pub struct Report {
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// What each rule did, by the rules' order.
    pub per_rule: Vec<RuleReport>,
    /// Lines read.
    pub lines: u64,
    /// The alerts the watch would have sent, with the number of the line that caused each.
    pub alerts: Vec<(u64, LogEvent)>,
    /// Matches held back by cooldowns.
    pub suppressed: u64,
}

/// Errors of the rule tester.
#[derive(Debug, thiserror::Error)]
pub enum TestRulesError {
    /// The log could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A rule does not compile.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// Matches every line of `input` (named `path` in events) against `rules`.
pub fn test_rules(
    rules: Vec<Rule>,
    input: impl Read,
    path: &Path,
) -> Result<Report, TestRulesError> {
    let mut set = RuleSet::new(rules)?;
    let mut per_rule = vec![RuleReport::default(); set.rules().len()];
    let mut alerts = Vec::new();
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut events = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| TestRulesError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        lines += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        for idx in set.matching(line) {
            let r = &mut per_rule[idx];
            r.matched += 1;
            if r.samples.len() < SAMPLES {
                r.samples
                    .push((lines, shown(&String::from_utf8_lossy(line))));
            }
        }
        set.check_line(line, path, &mut events);
        for ev in events.drain(..) {
            if let Some(idx) = set.rules().iter().position(|r| r.id == ev.rule) {
                per_rule[idx].alerts += 1;
            }
            alerts.push((lines, ev));
        }
    }
    Ok(Report {
        rules: set.rules().to_vec(),
        per_rule,
        lines,
        alerts,
        suppressed: set.suppressed(),
    })
}

/// `text` made safe for the terminal and cut to [`SHOWN_CHARS`].
fn shown(text: &str) -> String {
    let safe = control(text);
    match safe.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", &safe[..cut]),
        None => safe.into_owned(),
    }
}

impl Report {
    /// The report as printed: a line per rule with its counts and first matching lines, then
    /// the alerts the watch would have sent.
    pub fn render(&self, file: &Path, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} lines read from {}; {} rules ({source}); nothing is sent.",
            self.lines,
            file.display(),
            self.rules.len()
        );
        let _ = writeln!(out);
        for (rule, r) in self.rules.iter().zip(&self.per_rule) {
            if r.matched == 0 {
                let _ = writeln!(out, "{} ({}): no match", rule.id, rule.severity);
                continue;
            }
            let _ = writeln!(
                out,
                "{} ({}): {} matched line(s), {} alert(s)",
                rule.id, rule.severity, r.matched, r.alerts
            );
            for (n, text) in &r.samples {
                let _ = writeln!(out, "  line {n}: {text}");
            }
            if r.matched > r.samples.len() as u64 {
                let _ = writeln!(out, "  ... {} more", r.matched - r.samples.len() as u64);
            }
        }
        let _ = writeln!(out);
        if self.alerts.is_empty() {
            let _ = writeln!(out, "No alert would be sent.");
        } else {
            let _ = writeln!(
                out,
                "Alerts the watch would send ({}; {} more matches held back by cooldowns):",
                self.alerts.len(),
                self.suppressed
            );
            for (n, ev) in self.alerts.iter().take(MAX_ALERTS) {
                let held = ev.suppressed_suffix();
                let _ = writeln!(
                    out,
                    "  line {n}: {} {} x{}{held}: {}",
                    ev.severity, ev.rule, ev.count, ev.summary
                );
            }
            if self.alerts.len() > MAX_ALERTS {
                let _ = writeln!(out, "  ... {} more", self.alerts.len() - MAX_ALERTS);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
