//! The alert a run of any job type raises when it ends badly. It lives with the scheduler, the
//! one part that knows both a run's report and the alert record, so `alert` needs nothing of
//! `jobs`.

use crate::alert::Alert;
use crate::jobs::{Outcome, RunReport};
use crate::severity::Severity;

/// The alert for run `run_id` of `job` that ended as `report` says: the rule is
/// `run_OUTCOME`, and the last lines the run printed go in `extra`, the field every sink shows
/// (webhook JSON, the Slack-style text), so the alert says why as well as what. A failure or a
/// timeout needs someone now (`high`); a run stopped from outside (shutdown, removal) is worth
/// a look (`warning`).
pub fn failed_run_alert(job: &str, run_id: &str, report: &RunReport) -> Alert {
    let severity = match report.outcome {
        Outcome::Failed | Outcome::TimedOut => Severity::High,
        Outcome::Killed => Severity::Warning,
        Outcome::Success | Outcome::Skipped => Severity::Info,
    };
    let outcome = report.outcome.as_str();
    let summary = match report.detail.as_deref() {
        Some(d) if !d.is_empty() => format!("run {run_id} of job {job} {outcome}: {d}"),
        _ => format!("run {run_id} of job {job} {outcome}"),
    };
    let mut alert = Alert::new(job, format!("run_{outcome}"), severity, summary);
    alert.run_id = Some(run_id.to_string());
    if !report.output.is_empty() {
        alert = alert.with_extra(format!("last output:\n{}", report.output.join("\n")));
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of a run that ended in `outcome`, explained by `detail`, having printed `output`.
    fn report(outcome: Outcome, detail: Option<&str>, output: &[&str]) -> RunReport {
        RunReport {
            outcome,
            exit_code: None,
            signal: None,
            detail: detail.map(String::from),
            output: output.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn a_failed_or_timed_out_run_alerts_high_and_a_killed_one_warns() {
        for (outcome, severity) in [
            (Outcome::Failed, Severity::High),
            (Outcome::TimedOut, Severity::High),
            (Outcome::Killed, Severity::Warning),
        ] {
            let mut report = RunReport::failed("exited with code 2");
            report.outcome = outcome;
            report.output = vec!["disk full".into()];
            let a = failed_run_alert("backup", "r9", &report);
            assert_eq!(a.severity, severity, "{outcome}");
            assert_eq!(a.rule, format!("run_{outcome}"));
            assert_eq!(a.run_id.as_deref(), Some("r9"));
            assert_eq!(
                a.summary,
                format!("run r9 of job backup {outcome}: exited with code 2")
            );
            assert_eq!(a.extra.as_deref(), Some("last output:\ndisk full"));
        }
    }

    #[test]
    fn failed_run_alert_names_the_run() {
        let r = report(Outcome::TimedOut, Some("after 4s"), &[]);
        let a = failed_run_alert("backup", "abc123", &r);
        assert_eq!(a.extra, None);
        assert_eq!(a.rule, "run_timed_out");
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.run_id.as_deref(), Some("abc123"));
        assert!(
            a.text()
                .contains("run abc123 of job backup timed_out: after 4s"),
            "{}",
            a.text()
        );
    }

    #[test]
    fn failed_run_alert_carries_the_last_output_lines() {
        let output = ["pg_dump: error: connection refused", "giving up"];
        let a = failed_run_alert("backup", "r1", &report(Outcome::Failed, None, &output));
        assert_eq!(
            a.extra.as_deref(),
            Some("last output:\npg_dump: error: connection refused\ngiving up")
        );
        assert!(
            a.text().ends_with("connection refused\ngiving up"),
            "{}",
            a.text()
        );
        let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert!(json["extra"].as_str().unwrap().contains("giving up"));
    }

    #[test]
    fn an_empty_detail_is_left_out_of_the_summary() {
        let a = failed_run_alert("backup", "r2", &report(Outcome::Killed, Some(""), &[]));
        assert_eq!(a.summary, "run r2 of job backup killed");
    }
}
