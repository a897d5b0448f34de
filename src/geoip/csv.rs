//! A small streaming CSV reader for MaxMind's files (RFC 4180: quoted fields may hold commas,
//! doubled quotes and line breaks), with columns looked up by header name so that new columns
//! such as `is_anycast` do not matter.

use super::error::GeoipError;
use super::guard::Stop;
use std::io::{self, BufRead};

/// The longest row accepted, in bytes, quoted line breaks included. GeoLite2 rows are a few
/// hundred bytes; the cap keeps memory bounded whatever a member holds (a member of zeros
/// without a line break is refused after this much, not read whole).
pub const MAX_ROW_BYTES: usize = 64 * 1024;

/// Reads one CSV member row by row, reusing its buffers.
pub struct CsvReader<R> {
    input: R,
    member: String,
    line: u64,
    raw: Vec<u8>,
    text: String,
    spans: Vec<(usize, usize)>,
    header: Vec<String>,
}

impl<R: BufRead> CsvReader<R> {
    /// Starts reading `input` (named `member` in errors) and takes its first row as the header.
    pub fn new(input: R, member: &str) -> Result<Self, GeoipError> {
        let mut r = CsvReader {
            input,
            member: member.to_string(),
            line: 0,
            raw: Vec::with_capacity(256),
            text: String::with_capacity(256),
            spans: Vec::with_capacity(16),
            header: Vec::new(),
        };
        if !r.next_row()? {
            return Err(r.error("empty file, expected a header row"));
        }
        r.header = (0..r.spans.len()).map(|i| r.field(i).to_string()).collect();
        Ok(r)
    }

    /// The index of the column named `name`, or an error naming the columns that exist.
    pub fn column(&self, name: &str) -> Result<usize, GeoipError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            self.error(&format!(
                "no column {name:?} in the header ({})",
                self.header.join(",")
            ))
        })
    }

    /// Reads the next row; false at the end of the input.
    pub fn next_row(&mut self) -> Result<bool, GeoipError> {
        self.text.clear();
        self.spans.clear();
        let mut start = 0;
        let mut in_quotes = false;
        let mut at_field_start = true;
        let mut pending_quote = false;
        loop {
            self.raw.clear();
            if !in_quotes && self.spans.is_empty() && self.text.is_empty() {
                self.skip_blank_lines()?;
            }
            let n = self.read_line()?;
            if n == 0 {
                if in_quotes {
                    return Err(self.error("unterminated quoted field at end of file"));
                }
                if self.spans.is_empty() && self.text.is_empty() && at_field_start {
                    return Ok(false);
                }
                self.spans.push((start, self.text.len()));
                return Ok(true);
            }
            self.line += 1;
            let mut line = &self.raw[..];
            while let Some((&last, rest)) = line.split_last() {
                if last == b'\n' || last == b'\r' {
                    line = rest;
                } else {
                    break;
                }
            }
            if !in_quotes && line.is_empty() && self.spans.is_empty() && self.text.is_empty() {
                continue; // a blank line between rows
            }
            let chunk = std::str::from_utf8(line).map_err(|_| self.error("not UTF-8"))?;
            if !in_quotes && self.text.is_empty() && !chunk.contains('"') {
                // The common case, a whole row without quotes: fields lie between commas.
                self.text.push_str(chunk);
                for (i, b) in chunk.bytes().enumerate() {
                    if b == b',' {
                        self.spans.push((start, i));
                        start = i + 1;
                    }
                }
                self.spans.push((start, chunk.len()));
                return Ok(true);
            }
            for c in chunk.chars() {
                if in_quotes {
                    if pending_quote {
                        pending_quote = false;
                        if c == '"' {
                            self.text.push('"');
                            continue;
                        }
                        in_quotes = false;
                    } else if c == '"' {
                        pending_quote = true;
                        continue;
                    } else {
                        self.text.push(c);
                        continue;
                    }
                }
                match c {
                    ',' => {
                        self.spans.push((start, self.text.len()));
                        start = self.text.len();
                        at_field_start = true;
                    }
                    '"' if at_field_start => {
                        in_quotes = true;
                        at_field_start = false;
                    }
                    _ => {
                        self.text.push(c);
                        at_field_start = false;
                    }
                }
            }
            if in_quotes && pending_quote {
                // The closing quote ended the line.
                in_quotes = false;
                pending_quote = false;
            }
            if in_quotes {
                // A line break inside a quoted field belongs to the field.
                let tail = &self.raw[line.len()..];
                self.text
                    .push_str(std::str::from_utf8(tail).unwrap_or("\n"));
                continue;
            }
            self.spans.push((start, self.text.len()));
            return Ok(true);
        }
    }

    /// Reads through the next `\n` (or to the end) into `raw`; an error when the row would
    /// pass [`MAX_ROW_BYTES`]. Returns the bytes read, 0 at the end.
    fn read_line(&mut self) -> Result<usize, GeoipError> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            if buf.is_empty() {
                return Ok(self.raw.len());
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if self.text.len() + self.raw.len() + take > MAX_ROW_BYTES + 2 {
                self.line += 1;
                return Err(self.error(&format!(
                    "a row longer than {MAX_ROW_BYTES} bytes; GeoLite2 rows are a few hundred \
                     (is this member a GeoLite2 CSV?)"
                )));
            }
            self.raw.extend_from_slice(&buf[..take]);
            self.input.consume(take);
            if done {
                return Ok(self.raw.len());
            }
        }
    }

    /// Skips whole blank lines (`\n`, `\r\n`) a buffer at a time, counting them, so a
    /// member of line breaks costs what reading it costs, not a call per line.
    fn skip_blank_lines(&mut self) -> Result<(), GeoipError> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            let blank = buf
                .iter()
                .position(|&b| b != b'\n' && b != b'\r')
                .unwrap_or(buf.len());
            // Up to the last line break in the run: a `\r` before data stays with its row.
            let whole = memchr::memrchr(b'\n', &buf[..blank]).map_or(0, |i| i + 1);
            let lines = memchr::memchr_iter(b'\n', &buf[..whole]).count() as u64;
            let rest = buf.len() - whole;
            self.input.consume(whole);
            self.line += lines;
            if whole == 0 || rest > 0 {
                return Ok(());
            }
        }
    }

    /// A read error at the current line; a passed size cap or a stop keeps its own message.
    fn read_error(&self, e: io::Error) -> GeoipError {
        match e.downcast::<Stop>() {
            Ok(stop) => GeoipError::Stopped(stop),
            Err(e) => self.error(&format!("read error: {e}")),
        }
    }

    /// Field `i` of the current row ("" when the row is short).
    pub fn field(&self, i: usize) -> &str {
        match self.spans.get(i) {
            Some(&(start, end)) => &self.text[start..end],
            None => "",
        }
    }

    /// The current position, `member:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.member, self.line)
    }

    /// An error at the current line.
    pub fn error(&self, message: &str) -> GeoipError {
        GeoipError::Csv {
            member: self.member.clone(),
            line: self.line,
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        let mut r = CsvReader::new(text.as_bytes(), "t.csv").unwrap();
        let n = r.header.len();
        let mut out = vec![r.header.clone()];
        while r.next_row().unwrap() {
            out.push((0..n).map(|i| r.field(i).to_string()).collect());
        }
        out
    }

    #[test]
    fn parses_quotes_commas_and_line_breaks() {
        let got = rows("a,b,c\r\n1,\"x, \"\"y\"\"\",\n2,\"multi\nline\",Ōbu\n\n3,,\"\"\n");
        assert_eq!(
            got,
            vec![
                vec!["a", "b", "c"],
                vec!["1", "x, \"y\"", ""],
                vec!["2", "multi\nline", "Ōbu"],
                vec!["3", "", ""],
            ]
        );
    }

    #[test]
    fn finds_columns_by_name() {
        let r = CsvReader::new("network,geoname_id,is_anycast\n".as_bytes(), "t.csv").unwrap();
        assert_eq!(r.column("is_anycast").unwrap(), 2);
        let e = r.column("latitude").unwrap_err().to_string();
        assert!(e.contains("no column \"latitude\""), "{e}");
    }

    #[test]
    fn a_row_past_the_cap_is_refused_at_its_line_without_reading_it_whole() {
        let mut text = b"a,b\n1,2\n".to_vec();
        text.extend(std::iter::repeat_n(b'0', 10 * MAX_ROW_BYTES));
        let mut input = std::io::BufReader::with_capacity(4096, &text[..]);
        let mut r = CsvReader::new(&mut input, "t.csv").unwrap();
        assert!(r.next_row().unwrap());
        let e = r.next_row().unwrap_err().to_string();
        assert!(
            e.starts_with("t.csv:3: a row longer than 65536 bytes"),
            "{e}"
        );
        assert!(r.raw.capacity() < 2 * MAX_ROW_BYTES, "{}", r.raw.capacity());
        // A quoted field's line breaks count towards the row.
        let mut quoted = b"a\n\"".to_vec();
        quoted.extend(std::iter::repeat_n(b"x\n", MAX_ROW_BYTES).flatten());
        let mut r = CsvReader::new(&quoted[..], "q.csv").unwrap();
        assert!(r
            .next_row()
            .unwrap_err()
            .to_string()
            .contains("a row longer"));
        // A row of exactly the cap, with its line break, passes.
        let mut exact = b"a\n".to_vec();
        exact.extend(std::iter::repeat_n(b'y', MAX_ROW_BYTES));
        exact.extend(b"\r\n");
        let mut r = CsvReader::new(&exact[..], "e.csv").unwrap();
        assert!(r.next_row().unwrap());
        assert_eq!(r.field(0).len(), MAX_ROW_BYTES);
    }

    #[test]
    fn blank_lines_are_skipped_in_bulk_and_still_counted() {
        let mut text = b"a,b\n".to_vec();
        text.extend(std::iter::repeat_n(b"\r\n\n", 100_000).flatten());
        text.extend(b"\r1,2\n\n");
        let mut r =
            CsvReader::new(std::io::BufReader::with_capacity(1000, &text[..]), "t.csv").unwrap();
        assert!(r.next_row().unwrap());
        assert_eq!((r.field(0), r.field(1)), ("\r1", "2"));
        assert_eq!(r.line, 200_002);
        assert!(!r.next_row().unwrap());
        let e = CsvReader::new(&b"\n\n\n\n"[..], "n.csv")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "n.csv:4: empty file, expected a header row");
    }

    #[test]
    fn rejects_unterminated_quotes() {
        let mut r = CsvReader::new("a\n\"open\n".as_bytes(), "t.csv").unwrap();
        assert!(r.next_row().is_err());
    }
}
