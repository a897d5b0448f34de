//! The last lines a run printed, kept so that a failed run can say why (`opsd trigger`,
//! `opsd status NAME`, the `run_failed` alert), as cron mails a job's output.
//!
//! Invariant: [`Tail::lines`] returns at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes of text,
//! each escaped with [`crate::escape`] so it is safe on one log or terminal line, in the order
//! they were read. Stderr's newest lines are kept first and stdout's fill the room left: a job
//! that prints pages of progress and then one error line still shows that error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most lines kept.
pub const MAX_LINES: usize = 20;
/// Most bytes kept, over all lines.
pub const MAX_BYTES: usize = 4096;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The job's standard output.
    Stdout,
    /// The job's standard error.
    Stderr,
}

/// The newest lines of a run's stdout and stderr.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    inner: Arc<Mutex<Inner>>,
}

/// Both streams' lines behind the [`Tail`]'s lock.
#[derive(Debug, Default)]
struct Inner {
    /// How many lines were pushed so far: the order of reading across both streams.
    seq: u64,
    stdout: Lines,
    stderr: Lines,
}

/// One stream's newest lines, each with its `seq`, within the bounds on their own.
#[derive(Debug, Default)]
struct Lines {
    lines: VecDeque<(u64, String)>,
    bytes: usize,
}

impl Lines {
    fn push(&mut self, seq: u64, line: String) {
        self.bytes += line.len();
        self.lines.push_back((seq, line));
        while self.lines.len() > MAX_LINES || self.bytes > MAX_BYTES {
            match self.lines.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

impl Tail {
    /// Keeps `raw` (one line without its end) as the newest line of `stream`; a line longer
    /// than [`MAX_BYTES`] is cut at a character boundary.
    pub fn push(&self, stream: Stream, raw: &[u8]) {
        let mut line = crate::escape::bytes(raw);
        if line.len() > MAX_BYTES {
            let mut end = MAX_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.seq += 1;
        let seq = s.seq;
        match stream {
            Stream::Stdout => s.stdout.push(seq, line),
            Stream::Stderr => s.stderr.push(seq, line),
        }
    }

    /// The lines kept, in the order they were read: stderr's newest first within the bounds,
    /// then stdout's newest in the room left.
    pub fn lines(&self) -> Vec<String> {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (mut lines_left, mut bytes_left) = (MAX_LINES, MAX_BYTES);
        let mut kept: Vec<&(u64, String)> = Vec::new();
        for stream in [&s.stderr, &s.stdout] {
            for entry in stream.lines.iter().rev() {
                if lines_left == 0 || entry.1.len() > bytes_left {
                    break;
                }
                lines_left -= 1;
                bytes_left -= entry.1.len();
                kept.push(entry);
            }
        }
        kept.sort_by_key(|(seq, _)| *seq);
        kept.into_iter().map(|(_, line)| line.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_twenty_lines() {
        let tail = Tail::default();
        for i in 0..100 {
            tail.push(Stream::Stdout, format!("line {i}").as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("line 80"));
        assert_eq!(lines.last().map(String::as_str), Some("line 99"));
    }

    #[test]
    fn an_error_line_survives_pages_of_stdout_read_after_it() {
        let tail = Tail::default();
        tail.push(Stream::Stdout, b"starting");
        tail.push(Stream::Stderr, b"pg_dump: connection refused");
        for i in 0..50 {
            tail.push(Stream::Stdout, format!("progress {i}").as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], "pg_dump: connection refused");
        assert_eq!(lines[1], "progress 31");
        assert_eq!(lines[19], "progress 49");
    }

    #[test]
    fn keeps_at_most_four_kib_and_cuts_a_huge_line() {
        let tail = Tail::default();
        tail.push(Stream::Stdout, b"first");
        tail.push(Stream::Stdout, "é".repeat(3000).as_bytes());
        let lines = tail.lines();
        assert_eq!(lines.len(), 1, "the old line made room");
        assert!(lines[0].len() <= MAX_BYTES && lines[0].len() > MAX_BYTES - 2);
        tail.push(Stream::Stderr, b"x");
        assert_eq!(tail.lines(), vec!["x".to_string()]);
        assert!(tail.lines().iter().map(String::len).sum::<usize>() <= MAX_BYTES);
    }

    #[test]
    fn lines_are_escaped() {
        let tail = Tail::default();
        tail.push(Stream::Stderr, b"forged\r\x1b[2Kok\xff");
        assert_eq!(
            tail.lines(),
            vec!["forged\\r\\u{1b}[2Kok\u{fffd}".to_string()]
        );
    }
}
