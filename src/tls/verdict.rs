//! From a probe report and what the operator expects to pass or fail, with one line saying what
//! broke and how bad it is. Pure: no I/O, no clock (days left were counted at probe time).
//!
//! Severity by kind (issue 13): unreachable, expired or invalid certificate = critical; a
//! version expectation or a certificate under `warn_days` = high. The line lists every problem,
//! worst first, separated by "; ".

use super::certificate::ChainProblem;
use super::probe::ProbeReport;
use super::versions::{Support, Version};
use crate::escape::{self, Cut};
use crate::severity::Severity;

/// The most characters of a certificate's name a verdict quotes: the name is the certificate
/// owner's text, and up to 64 KiB of it would otherwise reach every log line and alert.
pub const MAX_NAME: usize = 100;

/// What the operator expects of every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// TLS 1.3 must be on (`false`: must be off).
    pub tls13: bool,
    /// TLS 1.2 must be on (`false`: must be off).
    pub tls12: bool,
    /// TLS 1.0/1.1 may be on (`false`: both must be off; `true`: at least one must be on).
    pub legacy: bool,
    /// Fail when a certificate of the chain expires in fewer days than this.
    pub warn_days: u32,
}

impl Default for Expect {
    /// The recommendation: 1.3 and 1.2 on, 1.0/1.1 off, 21 days' warning.
    fn default() -> Self {
        Expect {
            tls13: true,
            tls12: true,
            legacy: false,
            warn_days: 21,
        }
    }
}

/// What kind of thing broke; the job uses it as the alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The target could not be reached or spoke no TLS.
    Unreachable,
    /// A certificate of the chain has expired (or is not valid yet).
    Expired,
    /// The chain is not trusted, or there is none to check.
    Untrusted,
    /// The leaf is not valid for the name.
    HostnameMismatch,
    /// A version is on that should be off, or off that should be on.
    Version,
    /// A certificate expires within `warn_days`.
    Expiring,
}

impl ProblemKind {
    /// The rule name for alerts, e.g. `tls_expiring`.
    pub fn rule(self) -> &'static str {
        match self {
            ProblemKind::Unreachable => "tls_unreachable",
            ProblemKind::Expired => "tls_expired",
            ProblemKind::Untrusted => "tls_untrusted",
            ProblemKind::HostnameMismatch => "tls_hostname",
            ProblemKind::Version => "tls_version",
            ProblemKind::Expiring => "tls_expiring",
        }
    }

    /// How urgent this kind is.
    pub fn severity(self) -> Severity {
        match self {
            ProblemKind::Unreachable
            | ProblemKind::Expired
            | ProblemKind::Untrusted
            | ProblemKind::HostnameMismatch => Severity::Critical,
            ProblemKind::Version | ProblemKind::Expiring => Severity::High,
        }
    }
}

/// One broken expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of thing broke.
    pub kind: ProblemKind,
    /// What broke, in words, e.g. "certificate expires in 6 days".
    pub message: String,
}

/// The judgement of one target: no problems = pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Every problem, worst first.
    pub problems: Vec<Problem>,
}

impl Verdict {
    /// True when every expectation holds.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The worst severity, `None` on a pass.
    pub fn severity(&self) -> Option<Severity> {
        self.problems.iter().map(|p| p.kind.severity()).max()
    }

    /// One line: "ok", or every problem, worst first, joined by "; ".
    pub fn line(&self) -> String {
        if self.passed() {
            return "ok".to_string();
        }
        let messages: Vec<&str> = self.problems.iter().map(|p| p.message.as_str()).collect();
        messages.join("; ")
    }
}

/// "less than a day" / "1 day" / "6 days".
fn days(n: i64) -> String {
    match n {
        0 => "less than a day".to_string(),
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

/// Judges `report` against `expect`.
pub fn judge(report: &ProbeReport, expect: &Expect) -> Verdict {
    let mut problems = Vec::new();
    let mut add = |kind, message: String| problems.push(Problem { kind, message });
    let findings = match &report.result {
        Err(unreachable) => {
            add(ProblemKind::Unreachable, unreachable.to_string());
            return Verdict { problems };
        }
        Ok(findings) => findings,
    };
    let versions = &findings.versions;
    if Version::ALL.iter().all(|v| !versions.get(*v).accepted()) {
        let why = match &versions.tls13 {
            Support::Rejected { reason } | Support::Unknown { reason } => reason.as_str(),
            Support::Accepted { .. } => "",
        };
        add(
            ProblemKind::Unreachable,
            format!("no TLS version accepted ({why})"),
        );
        return Verdict { problems };
    }

    if let Ok(chain) = &findings.chain {
        if let Some((n, cert)) = chain.first_to_expire() {
            let which = if n == 0 {
                "certificate".to_string()
            } else {
                format!(
                    "intermediate certificate \"{}\"",
                    escape::cut(&cert.subject, MAX_NAME, Cut::End)
                )
            };
            if cert.expired {
                add(
                    ProblemKind::Expired,
                    format!("{which} expired {} ago", days(-cert.days_left)),
                );
            } else if cert.days_left < i64::from(expect.warn_days) {
                add(
                    ProblemKind::Expiring,
                    format!("{which} expires in {}", days(cert.days_left)),
                );
            }
        }
        match &chain.trusted {
            Ok(()) => {}
            // Said above, with the days, when the dates show it.
            Err(ChainProblem::Expired)
                if chain.first_to_expire().is_some_and(|(_, c)| c.expired) => {}
            Err(ChainProblem::Expired) => {
                add(ProblemKind::Expired, "certificate expired".to_string())
            }
            Err(ChainProblem::NotYetValid) => add(
                ProblemKind::Expired,
                "certificate not valid yet".to_string(),
            ),
            Err(problem) => add(
                ProblemKind::Untrusted,
                format!("certificate not trusted: {problem}"),
            ),
        }
        if chain.hostname.is_err() {
            let name = report
                .target
                .sni_name()
                .map(str::to_string)
                .or_else(|| report.address.map(|a| a.ip().to_string()))
                .unwrap_or_default();
            add(
                ProblemKind::HostnameMismatch,
                format!("hostname mismatch: the certificate is not valid for {name}"),
            );
        }
    } else if let Err(why) = &findings.chain {
        add(
            ProblemKind::Untrusted,
            format!("certificate not checked: {why}"),
        );
    }

    let on = |v: Version| versions.get(v).accepted();
    let unknown = |v: Version| match versions.get(v) {
        Support::Unknown { reason } => Some(reason.clone()),
        _ => None,
    };
    match (expect.tls13, on(Version::Tls13)) {
        (true, false) => match unknown(Version::Tls13) {
            Some(why) => add(ProblemKind::Version, format!("TLS 1.3 unknown: {why}")),
            None => add(ProblemKind::Version, "TLS 1.3 not offered".to_string()),
        },
        (false, true) => add(ProblemKind::Version, "TLS 1.3 on, expected off".to_string()),
        _ => {}
    }
    match (expect.tls12, on(Version::Tls12)) {
        (true, false) => match unknown(Version::Tls12) {
            Some(why) => add(ProblemKind::Version, format!("TLS 1.2 unknown: {why}")),
            None => add(
                ProblemKind::Version,
                "TLS 1.2 off: older browsers cannot connect".to_string(),
            ),
        },
        (false, true) => add(ProblemKind::Version, "TLS 1.2 on, expected off".to_string()),
        _ => {}
    }
    let legacy_on: Vec<String> = [Version::Tls11, Version::Tls10]
        .into_iter()
        .filter(|v| on(*v))
        .map(|v| v.to_string())
        .collect();
    if !expect.legacy && !legacy_on.is_empty() {
        let verb = if legacy_on.len() == 1 { "is" } else { "are" };
        add(
            ProblemKind::Version,
            format!(
                "{} {verb} still on: deprecated (RFC 8996), turn off",
                legacy_on.join(" and ")
            ),
        );
    }
    if expect.legacy && legacy_on.is_empty() {
        add(
            ProblemKind::Version,
            "TLS 1.0 and 1.1 off, expected on (legacy = true)".to_string(),
        );
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.kind.severity()));
    Verdict { problems }
}
