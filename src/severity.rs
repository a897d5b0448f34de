//! `Severity`: how urgently an operator must act, on one scale from `info` to `critical`.
//! A log-watch rule rates its matches with it and the alert record carries the same value to
//! every sink, so the two can never drift apart. Its lower-case names are a wire format: the
//! `severity` of alert JSON, of rule files (`severity = "high"`) and of log fields. Imports
//! nothing of ours.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How urgently an operator must act; sinks and the journal use it as the priority. Ordered
/// from least to most urgent. The default, `warning`, is what a custom rule that names no
/// severity gets.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do now.
    Info,
    /// Look at it today.
    #[default]
    Warning,
    /// Something is broken for some users: look at it now.
    High,
    /// The service is down or about to be.
    Critical,
}

impl Severity {
    /// The lower-case name used in logs, JSON and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule file's table, as far as its severity goes.
    #[derive(Deserialize)]
    struct RuleTable {
        severity: Severity,
    }

    const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::High,
        Severity::Critical,
    ];

    #[test]
    fn names_are_the_same_in_json_toml_and_logs() {
        for (s, name) in ALL.into_iter().zip(["info", "warning", "high", "critical"]) {
            assert_eq!(s.as_str(), name);
            assert_eq!(s.to_string(), name);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
            let parsed: Severity = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(parsed, s);
            let rule: RuleTable = toml::from_str(&format!("severity = \"{name}\"")).unwrap();
            assert_eq!(rule.severity, s);
        }
        assert!(serde_json::from_str::<Severity>("\"High\"").is_err());
    }

    #[test]
    fn the_scale_runs_from_info_to_critical_and_defaults_to_warning() {
        assert!(ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Severity::default(), Severity::Warning);
    }
}
