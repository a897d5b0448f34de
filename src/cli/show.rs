//! How the command line prints text others wrote (job output, details, paths, JSON): on one
//! line, escaped.

use std::path::Path;

/// Prints a run's last output lines under its one-line summary, as `systemctl status` shows
/// a unit's last log lines, each escaped: the job wrote them.
pub(super) fn print_output(lines: &[String]) {
    for line in lines {
        println!("  | {}", crate::escape::control(line));
    }
}

/// `: DETAIL` escaped for one line (a run's detail quotes what the job or a file said), or
/// nothing.
pub(super) fn detail_text(detail: Option<&str>) -> String {
    detail
        .map(|d| format!(": {}", crate::escape::control(d)))
        .unwrap_or_default()
}

/// A path as `opsd` prints it: on one line, with what its name holds that could move the
/// cursor or end the line escaped (a file name is anyone's text).
pub(super) fn shown_path(path: &Path) -> String {
    crate::escape::control(&path.to_string_lossy()).into_owned()
}

/// Prints `value` as one JSON line with every character that could reach a terminal raw
/// (DEL, C1, line separators, bidi) escaped; serde_json escapes the rest.
pub(super) fn print_json(value: &serde_json::Value) {
    println!("{}", crate::escape::json(&value.to_string()));
}
