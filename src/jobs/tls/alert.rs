//! What a tls run says about its targets: the alert for each target that failed, and the one
//! line of the run's outcome. Pure: no I/O; every piece of outside text (certificate names,
//! error reasons) is escaped here, once.

use crate::alert::Alert;
use crate::escape;
use crate::tls::{self, ProbeReport, Verdict};

/// Failing targets named in the outcome's line before "+N more".
pub const LISTED: usize = 3;

/// The alert for one target, `None` when it passed: the severity of its worst problem, the rule
/// of that problem's kind (`tls_expiring`, `tls_version`, ...), the target as the key alerts of
/// the same target are grouped by, and the target's row of the table and its detail block (serial, SANs, key, signature,
/// OCSP stapling, ciphers) in `extra`.
pub fn alert_for(
    job: &str,
    run_id: &str,
    report: &ProbeReport,
    verdict: &Verdict,
) -> Option<Alert> {
    let worst = verdict.problems.first()?;
    let severity = verdict.severity()?;
    let target = report.target.to_string();
    let summary = format!(
        "{}: {}",
        escape::control(&target),
        escape::control(&verdict.line())
    );
    let pair = (report.clone(), verdict.clone());
    let one = std::slice::from_ref(&pair);
    let row = format!("{}{}", tls::render(one), tls::render_details(one));
    let mut alert = Alert::new(job, worst.kind.rule(), severity, summary)
        .with_extra(row.trim_end().to_string());
    alert.dedup_key = Some(escape::control(&target).into_owned());
    alert.run_id = Some(run_id.to_string());
    Some(alert)
}

/// The outcome's line: on a pass, how many targets and the fewest days any certificate has
/// left; on a failure, how many failed and the first `LISTED` of them with what broke.
pub fn outcome_line(rows: &[(ProbeReport, Verdict)]) -> (bool, String) {
    let failed: Vec<&(ProbeReport, Verdict)> = rows.iter().filter(|(_, v)| !v.passed()).collect();
    let total = rows.len();
    let targets = |n: usize| if n == 1 { "target" } else { "targets" };
    if failed.is_empty() {
        let soonest = rows
            .iter()
            .filter_map(|(r, _)| {
                let chain = r.result.as_ref().ok()?.chain.as_ref().ok()?;
                chain
                    .first_to_expire()
                    .map(|(_, c)| (c.days_left, &r.target))
            })
            .min_by_key(|(days, _)| *days);
        let line = match soonest {
            Some((days, target)) => format!(
                "{total} {} pass; the first certificate to expire has {days} days left ({})",
                targets(total),
                escape::control(&target.to_string())
            ),
            None => format!("{total} {} pass", targets(total)),
        };
        return (true, line);
    }
    let mut named: Vec<String> = failed
        .iter()
        .take(LISTED)
        .map(|(r, v)| {
            format!(
                "{} ({})",
                escape::control(&r.target.to_string()),
                escape::control(&v.line())
            )
        })
        .collect();
    if failed.len() > LISTED {
        named.push(format!("+{} more", failed.len() - LISTED));
    }
    let line = format!(
        "{} of {total} {} failed: {}",
        failed.len(),
        targets(total),
        named.join(", ")
    );
    (false, line)
}
