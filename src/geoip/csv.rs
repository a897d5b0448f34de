//! A small streaming CSV reader for MaxMind's files (RFC 4180: quoted fields may hold commas,
//! doubled quotes and line breaks), with columns looked up by header name so that new columns
//! such as `is_anycast` do not matter.

use super::error::GeoipError;
use std::io::BufRead;

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
            let n = self
                .input
                .read_until(b'\n', &mut self.raw)
                .map_err(|e| self.error(&format!("read error: {e}")))?;
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
    fn rejects_unterminated_quotes() {
        let mut r = CsvReader::new("a\n\"open\n".as_bytes(), "t.csv").unwrap();
        assert!(r.next_row().is_err());
    }
}
