//! Positions and quoting in a file's text: byte offsets to lines and columns, and a value from
//! the file shown in a message without letting a huge one swamp it.

/// Characters of a value shown in a message before it is cut.
const SHOWN_CHARS: usize = 80;

/// A position in a text walked forward once, for locating errors in span order.
#[derive(Debug)]
pub struct Cursor {
    offset: usize,
    line: usize,
    column: usize,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            offset: 0,
            line: 1,
            column: 1,
        }
    }
}

impl Cursor {
    /// Moves to byte `offset` (clamped to the text and to a character start; never backwards)
    /// and returns its 1-based (line, column).
    pub fn advance(&mut self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset > self.offset {
            let walked = &text[self.offset..offset];
            match walked.rfind('\n') {
                Some(i) => {
                    self.line += memchr::memchr_iter(b'\n', walked.as_bytes()).count();
                    self.column = walked[i + 1..].chars().count() + 1;
                }
                None => self.column += walked.chars().count(),
            }
            self.offset = offset;
        }
        (self.line, self.column)
    }
}

/// Converts a byte offset into a 1-based (line, column) pair.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Cursor::default().advance(text, offset)
}

/// A value from the file quoted for a message, cut to its first 80 characters and its length in
/// bytes when it is longer: `"aaaa…" (1000129 bytes)`.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
    }
}

/// Whether `name` may name a job or an alert sink: names end up in file names and log fields,
/// so they are kept simple (letters, digits, `-`, `_` and `.`, at most 64, not starting with
/// `.`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
    }
}
