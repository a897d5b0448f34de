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

/// The most characters of one detail value (a SAN list, a serial) before it is cut.
const MAX_DETAIL: usize = 200;

/// The fields the table has no column for, for one target: the leaf's serial, SANs, key,
/// signature algorithm, OCSP stapling, and each accepted version's cipher suite. Each value is
/// escaped and cut to 200 characters; empty when the probe failed.
pub fn details(report: &ProbeReport) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let Ok(findings) = &report.result else {
        return out;
    };
    if let Ok(chain) = &findings.chain {
        if let Some(leaf) = chain.leaf() {
            out.push(("serial", leaf.serial.clone()));
            out.push(("sans", leaf.sans.join(", ")));
            out.push(("key", leaf.key.clone()));
            out.push(("signature", leaf.signature.clone()));
        }
        let ocsp = if chain.ocsp_stapled { "yes" } else { "no" };
        out.push(("ocsp_stapled", ocsp.to_string()));
    }
    for (version, key) in Version::ALL.iter().zip([
        "cipher_tls13",
        "cipher_tls12",
        "cipher_tls11",
        "cipher_tls10",
    ]) {
        if let Support::Accepted { cipher } = findings.versions.get(*version) {
            out.push((key, cipher.clone()));
        }
    }
    out.into_iter()
        .map(|(k, v)| {
            let v = escape::control(&v).into_owned();
            (k, escape::cut(&v, MAX_DETAIL, Cut::End).into_owned())
        })
        .collect()
}

/// The detail block under the table: per target, its name then one indented `key: value`
/// line per [`details`] field; empty when no target has details.
pub fn render_details(rows: &[(ProbeReport, Verdict)]) -> String {
    let mut out = String::new();
    for (report, _) in rows {
        let fields = details(report);
        if fields.is_empty() {
            continue;
        }
        out.push_str(&escape::control(&report.target.to_string()));
        out.push_str(":\n");
        for (k, v) in fields {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    out
}
