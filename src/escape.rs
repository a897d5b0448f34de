//! Outside text made safe for one log line: tag values, Apache log lines, job output, file names.
//!
//! Invariant: what [`control`] returns holds no character that can end a line, move the cursor,
//! recolour a terminal or reorder text (C0 and C1 controls, DEL, U+2028/U+2029, bidi overrides and
//! isolates), so text someone else wrote can never forge or hide a log line. Everything else,
//! printable Unicode included, passes through unchanged. [`cut`] shortens a long value for a
//! message or a table cell.

use std::borrow::Cow;
use std::fmt::Write;

/// True for characters that must not reach a log line as they are.
fn is_unsafe(c: char) -> bool {
    c.is_control() // C0 (CR, LF, ESC, ...), DEL and C1 (U+0085 NEL, ...)
        || matches!(c,
            '\u{2028}' | '\u{2029}'           // line and paragraph separators
            | '\u{200E}' | '\u{200F}'         // left-to-right / right-to-left marks
            | '\u{202A}'..='\u{202E}'         // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}'         // bidi isolates
            | '\u{061C}'                      // Arabic letter mark
        )
}

/// `text` with every unsafe character written as an escape (`\n`, `\r`, `\t`, `\u{1b}`); the
/// borrowed input when there is nothing to escape. A backslash itself is left alone.
pub fn control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A JSON line as serde_json writes it, with the unsafe characters it leaves raw (DEL, C1,
/// U+2028/U+2029, bidi) written as `\uXXXX` escapes. Valid JSON stays valid JSON with the same
/// meaning: serde escapes C0 itself, so these can only occur inside strings. The line end passes.
pub fn json(line: &str) -> Cow<'_, str> {
    if !line.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c != '\n' && is_unsafe(c) {
            // Every unsafe character is in the Basic Multilingual Plane: one escape each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`control`] for bytes that may not be UTF-8 (log file lines, process output): invalid
/// sequences become U+FFFD first.
pub fn bytes(raw: &[u8]) -> String {
    control(&String::from_utf8_lossy(raw)).into_owned()
}

/// How [`cut`] shortens a text longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Keep the start and end with `…`, the limit's number of characters in all (a table cell).
    End,
    /// Keep the first half and the last quarter of the limit around `… (N bytes) …`, so that a
    /// message keeps its subject and its hint but not a huge value between them.
    Middle,
}

/// `text` itself when at most `max` characters long, else shortened as `how` says; cut at
/// characters, never inside one.
pub fn cut(text: &str, max: usize, how: Cut) -> Cow<'_, str> {
    let chars = text.chars().count();
    if chars <= max {
        return Cow::Borrowed(text);
    }
    let at = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    Cow::Owned(match how {
        Cut::End => format!("{}…", &text[..at(max.saturating_sub(1))]),
        Cut::Middle => format!(
            "{}… ({} bytes) …{}",
            &text[..at(max / 2)],
            text.len(),
            &text[at(chars - max / 4)..]
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_terminal_escapes_and_bidi_are_escaped() {
        let forged = "web-1\n2026-12-01T08:00:00Z  INFO i-0abc skipped, tagged opsd:skip\r\u{1b}[2K\u{85}\u{2028}\u{202e}";
        let safe = control(forged);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        assert_eq!(
            safe,
            "web-1\\n2026-12-01T08:00:00Z  INFO i-0abc skipped, tagged opsd:skip\\r\\u{1b}[2K\\u{85}\\u{2028}\\u{202e}"
        );
    }

    #[test]
    fn json_lines_get_json_escapes_and_keep_their_meaning() {
        let line =
            serde_json::json!({"msg": "a\u{2028}b\u{202e}c\u{85}d\u{7f}\n"}).to_string() + "\n";
        let safe = json(&line);
        assert_eq!(safe, "{\"msg\":\"a\\u2028b\\u202ec\\u0085d\\u007f\\n\"}\n");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["msg"], "a\u{2028}b\u{202e}c\u{85}d\u{7f}\n");
        assert!(matches!(json("{\"msg\":\"Zürich\"}\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_long_text_is_cut_at_characters_to_its_limit() {
        assert!(matches!(cut("ünï", 3, Cut::End), Cow::Borrowed("ünï")));
        assert_eq!(cut("ünïcödé", 4, Cut::End), "ünï…");
        assert_eq!(cut("ünïcödé", 4, Cut::End).chars().count(), 4);
        let long = "a".repeat(10) + "ß" + &"z".repeat(10);
        assert_eq!(cut(&long, 8, Cut::Middle), "aaaa… (22 bytes) …zz");
        assert!(matches!(cut(&long, 21, Cut::Middle), Cow::Borrowed(_)));
    }

    #[test]
    fn plain_text_and_unicode_pass_through_borrowed() {
        assert!(matches!(control("Zürich 서울 tag=a\\b"), Cow::Borrowed(_)));
        assert_eq!(bytes(b"ok\xffthen\n"), "ok\u{fffd}then\\n");
    }
}
