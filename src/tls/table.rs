//! The per-target table `opsd run-job` prints for a tls job: versions, cipher, days left,
//! issuer, verdict. Every cell is escaped ([`crate::escape::control`]): issuer names, cipher
//! reasons and targets are other people's text; the issuer is cut to 40 characters.

use super::probe::ProbeReport;
use super::verdict::Verdict;
use super::versions::{Support, Version};
use crate::escape::{self, Cut};

/// The most characters of the ISSUER column: a certificate's issuer is its owner's text, and a
/// name of kilobytes would stretch every row of the table.
const MAX_ISSUER: usize = 40;

/// Column headings.
const HEADINGS: [&str; 9] = [
    "TARGET", "1.3", "1.2", "1.1", "1.0", "CIPHER", "DAYS", "ISSUER", "VERDICT",
];

/// `yes`, `no` or `?` for one version.
fn mark(support: &Support) -> &'static str {
    match support {
        Support::Accepted { .. } => "yes",
        Support::Rejected { .. } => "no",
        Support::Unknown { .. } => "?",
    }
}

/// The cells of one row, escaped.
fn row(report: &ProbeReport, verdict: &Verdict) -> [String; 9] {
    let mut cells: [String; 9] = Default::default();
    cells[0] = report.target.to_string();
    match &report.result {
        Ok(findings) => {
            for (n, version) in Version::ALL.iter().enumerate() {
                cells[1 + n] = mark(findings.versions.get(*version)).to_string();
            }
            cells[5] = findings
                .versions
                .best()
                .map(|(_, cipher)| cipher.to_string())
                .unwrap_or_else(|| "-".to_string());
            let expiring = findings
                .chain
                .as_ref()
                .ok()
                .and_then(|c| c.first_to_expire());
            cells[6] = expiring
                .map(|(_, c)| c.days_left.to_string())
                .unwrap_or_else(|| "-".to_string());
            cells[7] = findings
                .chain
                .as_ref()
                .ok()
                .and_then(|c| c.leaf())
                .map(|leaf| leaf.issuer_short.clone())
                .unwrap_or_else(|| "-".to_string());
        }
        Err(_) => {
            for cell in &mut cells[1..8] {
                *cell = "-".to_string();
            }
        }
    }
    cells[8] = verdict.line();
    let mut cells = cells.map(|cell| escape::control(&cell).into_owned());
    cells[7] = escape::cut(&cells[7], MAX_ISSUER, Cut::End).into_owned();
    cells
}

/// The table, one line per report, columns aligned, ending with a newline.
pub fn render(rows: &[(ProbeReport, Verdict)]) -> String {
    let body: Vec<[String; 9]> = rows.iter().map(|(r, v)| row(r, v)).collect();
    let mut widths = HEADINGS.map(|h| h.chars().count());
    for cells in &body {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headings = HEADINGS.map(str::to_string);
    for cells in std::iter::once(&headings).chain(&body) {
        let mut line = String::new();
        for (n, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = width - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
