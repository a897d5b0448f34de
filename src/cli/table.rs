//! The job table of `opsd status`, one line per job, like `systemctl list-timers`.

use crate::escape::Cut;
use crate::scheduler::JobStatus;

/// Prints the job table of `opsd status`.
pub(super) fn print_status(config: &str, jobs: &[JobStatus]) {
    println!(
        "{}: {} job(s)\n",
        crate::escape::control(config),
        jobs.len()
    );
    let fmt_local = |t: chrono::DateTime<chrono::Utc>, tz: Option<&str>| match tz
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
    {
        Some(tz) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    };
    let mut rows = vec![[
        "JOB".to_string(),
        "TYPE".into(),
        "SCHEDULE".into(),
        "NEXT".into(),
        "NEXT (UTC)".into(),
        "LAST".into(),
        "OUTCOME".into(),
        "DURATION".into(),
        "RUNNING".into(),
        "NOW".into(),
    ]];
    for j in jobs {
        let schedule = match (&j.schedule, &j.timezone) {
            (Some(s), Some(z)) => format!("{s} ({z})"),
            _ => "continuous".into(),
        };
        let (next, next_utc) = match (&j.broken, j.next) {
            (Some(why), _) => (format!("BROKEN: {why}"), "-".into()),
            (None, Some(t)) => (
                fmt_local(t, j.timezone.as_deref()),
                t.format("%Y-%m-%d %H:%M:%S").to_string(),
            ),
            (None, None) if !j.enabled => ("disabled".into(), "-".into()),
            (None, None) => ("-".into(), "-".into()),
        };
        let (last, outcome, duration) = match &j.last {
            Some(l) => (
                fmt_local(l.started, j.timezone.as_deref()),
                l.outcome.to_string(),
                format!("{} ms", l.duration_ms),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let running = if j.running > 0 {
            format!("yes ({})", j.running)
        } else {
            "no".into()
        };
        let now = j
            .live
            .as_ref()
            .map_or_else(|| "-".to_string(), |l| l.summary.clone());
        rows.push([
            j.name.clone(),
            j.job_type.clone(),
            schedule,
            next,
            next_utc,
            last,
            outcome,
            duration,
            running,
            now,
        ]);
    }
    // Cells hold what jobs.toml and jobs wrote: one line each, and short enough for a table
    // (a 1 MB schedule once made the padding panic).
    for row in &mut rows {
        for cell in row.iter_mut() {
            *cell = table_cell(cell);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// The longest cell of the status table, in characters.
const CELL_CHARS: usize = 60;

/// `text` as one table cell: control characters escaped, cut to [`CELL_CHARS`] with an ellipsis.
pub(super) fn table_cell(text: &str) -> String {
    let safe = crate::escape::control(text);
    crate::escape::cut(&safe, CELL_CHARS, Cut::End).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_or_multi_line_cell_is_cut_and_kept_on_one_line() {
        let huge = "0 0 3 1 1 * ".to_string() + &"2030,".repeat(300_000);
        let cell = table_cell(&huge);
        assert_eq!(cell.chars().count(), CELL_CHARS);
        assert!(cell.ends_with('…'), "{cell}");
        assert_eq!(table_cell("a\nb"), "a\\nb");
        assert_eq!(table_cell("@every 5s"), "@every 5s");
    }
}
