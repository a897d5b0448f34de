//! A rendered answer in pieces. Most of a scrape's 2.5 MB (1,000 jobs) is the jobs' kept text
//! (`job_text.rs`), which does not change between most scrapes: an [`Answer`] shares those
//! pieces with the metrics instead of copying them into one string, and the HTTP server writes
//! them to the socket vectored, so the text is copied once, by the kernel (docs/metrics.md,
//! "Cost"). The textfile writer joins them ([`Answer::text`]).

use std::ops::Range;
use std::sync::Arc;

/// A piece of an answer: a range of a shared text.
#[derive(Debug, Clone)]
struct Piece {
    /// The text the piece is part of.
    text: Arc<String>,
    /// Where in `text`.
    range: Range<usize>,
}

/// A rendered answer: its text as pieces, in order.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The pieces, none empty.
    pieces: Vec<Piece>,
    /// Their length together, in bytes.
    len: usize,
}

impl Answer {
    /// No text yet, with room for `pieces` pieces.
    pub fn with_capacity(pieces: usize) -> Self {
        Answer {
            pieces: Vec::with_capacity(pieces),
            len: 0,
        }
    }

    /// Appends `range` of `text`, shared (not copied); an empty range adds nothing.
    pub fn push(&mut self, text: &Arc<String>, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.len += range.len();
        self.pieces.push(Piece {
            text: Arc::clone(text),
            range,
        });
    }

    /// Appends all of `text`.
    pub fn push_text(&mut self, text: String) {
        let range = 0..text.len();
        self.push(&Arc::new(text), range);
    }

    /// The length of the whole text, in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces' bytes, in order (what a vectored write takes).
    pub fn parts(&self) -> Vec<&[u8]> {
        self.pieces
            .iter()
            .map(|p| p.text[p.range.clone()].as_bytes())
            .collect()
    }

    /// The whole text, joined.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.len);
        for p in &self.pieces {
            text.push_str(&p.text[p.range.clone()]);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pieces_join_in_order_and_empty_ones_are_left_out() {
        let shared = Arc::new("# HELP x\nx 1\n".to_string());
        let mut answer = Answer::with_capacity(4);
        answer.push(&shared, 9..13);
        answer.push(&shared, 0..0);
        answer.push_text("y 2\n".into());
        answer.push(&shared, 0..9);
        assert_eq!(answer.text(), "x 1\ny 2\n# HELP x\n");
        assert_eq!(answer.len(), answer.text().len());
        assert_eq!(answer.parts().len(), 3);
        assert!(Answer::default().is_empty() && !answer.is_empty());
    }
}
