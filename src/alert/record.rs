//! The alert record: what happened, how bad, how often, where — the same JSON for every sink.

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The alert's severity is the crate's one scale, shared with the log-watch rules.
use crate::severity::Severity;

/// One alert, as logged and as sent to sinks (serialized to JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The job that raised it.
    pub job: String,
    /// The rule that fired (e.g. `child_crash`, `run_failed`).
    pub rule: String,
    /// How bad it is.
    pub severity: Severity,
    /// How many matches (or failures) this alert stands for.
    pub count: u64,
    /// One line a human reads first.
    pub summary: String,
    /// The first matching line, if the rule matches lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_line: Option<String>,
    /// The last matching line, when there was more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_line: Option<String>,
    /// The file the lines were read from, for log-watch alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What matches were grouped by (e.g. a PHP script's `file:line`), when not the rule alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// The run that failed, for run-failure alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Anything else worth reading (e.g. `opsd apache doctor`'s verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
    /// The machine it happened on.
    pub host: String,
    /// When the alert was raised, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
}

impl Alert {
    /// A new alert with a count of 1, stamped with this host and the current time.
    pub fn new(
        job: impl Into<String>,
        rule: impl Into<String>,
        severity: Severity,
        summary: impl Into<String>,
    ) -> Self {
        Alert {
            job: job.into(),
            rule: rule.into(),
            severity,
            count: 1,
            summary: summary.into(),
            first_line: None,
            last_line: None,
            file: None,
            dedup_key: None,
            run_id: None,
            extra: None,
            host: hostname().to_string(),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }

    /// Sets how many matches the alert stands for.
    pub fn with_count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// Sets the first and last matching lines (the last is dropped when equal to the first).
    pub fn with_lines(mut self, first: impl Into<String>, last: Option<String>) -> Self {
        let first = first.into();
        self.last_line = last.filter(|l| *l != first);
        self.first_line = Some(first);
        self
    }

    /// Sets the file the matching lines come from and the key they were grouped by.
    pub fn with_source(mut self, file: impl Into<String>, dedup_key: Option<String>) -> Self {
        self.file = Some(file.into());
        self.dedup_key = dedup_key.filter(|k| !k.is_empty());
        self
    }

    /// Adds free text such as a diagnosis.
    pub fn with_extra(mut self, extra: impl Into<String>) -> Self {
        self.extra = Some(extra.into());
        self
    }

    /// The Slack-style one-message text: severity, job, rule, summary, lines and extra.
    pub fn text(&self) -> String {
        let mut t = format!(
            "[{}] {} on {}: {} ({}",
            self.severity.as_str().to_uppercase(),
            self.job,
            self.host,
            self.summary,
            self.rule
        );
        if self.count > 1 {
            t.push_str(&format!(", {} times", self.count));
        }
        t.push(')');
        if let Some(file) = &self.file {
            t.push_str(&format!("\nfile: {file}"));
        }
        if let Some(first) = &self.first_line {
            t.push_str(&format!("\nfirst: {first}"));
        }
        if let Some(last) = &self.last_line {
            t.push_str(&format!("\nlast: {last}"));
        }
        if let Some(extra) = &self.extra {
            t.push_str(&format!("\n{extra}"));
        }
        t
    }

    /// The record as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// This machine's host name, read once (from the kernel; `localhost` if it cannot be read).
pub fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_lower_case_severity_and_skips_empty_fields() {
        let a = Alert::new("web", "child_crash", Severity::Critical, "3 child crashes")
            .with_count(3)
            .with_lines("first line", Some("last line".into()));
        let v: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["count"], 3);
        assert_eq!(v["first_line"], "first line");
        assert_eq!(v["last_line"], "last line");
        assert!(v.get("extra").is_none());
        assert!(v.get("file").is_none());
        assert!(v.get("dedup_key").is_none());
        assert_eq!(v["host"], hostname());
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn file_and_dedup_key_are_serialized_and_shown() {
        let a = Alert::new("web", "php_fatal", Severity::High, "PHP fatal error")
            .with_source("/var/log/apache2/error.log", Some("/srv/x.php:12".into()));
        let v: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(v["file"], "/var/log/apache2/error.log");
        assert_eq!(v["dedup_key"], "/srv/x.php:12");
        assert!(
            a.text().contains("\nfile: /var/log/apache2/error.log"),
            "{}",
            a.text()
        );
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
        let none = Alert::new("w", "r", Severity::Info, "s").with_source("/f", Some(String::new()));
        assert_eq!(none.dedup_key, None);
    }

    #[test]
    fn last_line_equal_to_first_is_dropped() {
        let a = Alert::new("j", "r", Severity::Info, "s").with_lines("x", Some("x".into()));
        assert_eq!(a.last_line, None);
        assert!(a.text().starts_with("[INFO] j on "), "{}", a.text());
    }
}
