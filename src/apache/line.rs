//! One Apache 2.4 error-log line, parsed over raw bytes: the `[timestamp]`, `[module:level]`,
//! `[pid N:tid M]`, `[client ip:port]` fields and the `AHnnnnn:` message code.
//!
//! Lines need not be UTF-8 and may carry raw module stderr glued in front of the real line, so
//! parsing is lenient: whatever cannot be recognised is left out, and rules match the whole line.

use chrono::NaiveDateTime;

/// The longest line kept; the rest of a longer line is dropped (Apache itself cuts at 8 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// The parts of an error-log line that could be recognised. All slices borrow from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorLine<'a> {
    /// Bytes before the `[timestamp]` (raw stderr glued in front), if any.
    pub glued: &'a [u8],
    /// The timestamp as written, e.g. `Wed Nov 25 05:13:46.123456 2026`.
    pub timestamp: Option<&'a [u8]>,
    /// The module, e.g. `core`, `mpm_event`, `php`.
    pub module: Option<&'a [u8]>,
    /// The level, e.g. `notice`, `error`, `crit`.
    pub level: Option<&'a [u8]>,
    /// The process id.
    pub pid: Option<u32>,
    /// The thread id.
    pub tid: Option<u64>,
    /// The client as `ip:port`.
    pub client: Option<&'a [u8]>,
    /// The first `AHnnnnn:` code in the message, as its number.
    pub code: Option<u32>,
    /// The text after the bracketed fields.
    pub message: &'a [u8],
}

impl<'a> ErrorLine<'a> {
    /// Parses `line` (without its newline); never fails, unknown parts are `None`.
    pub fn parse(line: &'a [u8]) -> Self {
        let line = truncate(line);
        let mut out = ErrorLine {
            message: line,
            ..ErrorLine::default()
        };
        let Some(ts_start) = find_timestamp(line) else {
            out.code = find_code(line);
            return out;
        };
        out.glued = &line[..ts_start];
        let mut rest = &line[ts_start..];
        let (ts, after) = bracket(rest).unwrap_or((&[], rest));
        out.timestamp = Some(ts);
        rest = after;
        while let Some((field, after)) = bracket(rest) {
            if let Some(pid_tid) = field.strip_prefix(b"pid ") {
                let (pid, tid) = match memchr::memchr(b':', pid_tid) {
                    Some(i) => (&pid_tid[..i], pid_tid[i + 1..].strip_prefix(b"tid ")),
                    None => (pid_tid, None),
                };
                out.pid = parse_num(pid).and_then(|n| u32::try_from(n).ok());
                out.tid = tid.and_then(parse_num);
            } else if let Some(client) = field.strip_prefix(b"client ") {
                out.client = Some(client);
            } else if out.module.is_none() && out.pid.is_none() {
                match memchr::memrchr(b':', field) {
                    Some(i) => {
                        out.module = Some(&field[..i]);
                        out.level = Some(&field[i + 1..]);
                    }
                    None => out.level = Some(field),
                }
            } else {
                break;
            }
            rest = after;
        }
        out.message = rest;
        out.code = find_code(rest);
        out
    }

    /// The timestamp as a local date and time, when it is in the standard format.
    pub fn time(&self) -> Option<NaiveDateTime> {
        let ts = std::str::from_utf8(self.timestamp?).ok()?;
        NaiveDateTime::parse_from_str(ts, "%a %b %d %H:%M:%S%.f %Y").ok()
    }
}

/// Cuts `line` to at most [`MAX_LINE`] bytes.
pub fn truncate(line: &[u8]) -> &[u8] {
    &line[..line.len().min(MAX_LINE)]
}

/// Splits `[field] rest` into `field` and `rest` (leading spaces of `rest` removed).
fn bracket(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b"[")?;
    let end = memchr::memchr(b']', s)?;
    let mut rest = &s[end + 1..];
    while let Some(r) = rest.strip_prefix(b" ") {
        rest = r;
    }
    Some((&s[..end], rest))
}

/// Finds the `[Www Mmm dd hh:mm:ss...` that starts a real line, possibly after glued text.
fn find_timestamp(line: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'[', line).find(|&i| looks_like_timestamp(&line[i + 1..]))
}

/// True for `Www Mmm dd hh:mm:ss` (letters, spaces, digits and colons where expected).
fn looks_like_timestamp(s: &[u8]) -> bool {
    const SHAPE: &[u8] = b"Aaa Aaa 00 00:00:00";
    s.len() >= SHAPE.len()
        && SHAPE.iter().zip(s).all(|(&want, &b)| match want {
            b'A' => b.is_ascii_uppercase(),
            b'a' => b.is_ascii_lowercase(),
            b'0' => b.is_ascii_digit() || b == b' ',
            other => other == b,
        })
}

/// The first `AHnnnnn:` code in `s`.
fn find_code(s: &[u8]) -> Option<u32> {
    memchr::memmem::find_iter(s, b"AH").find_map(|i| {
        let digits = s.get(i + 2..i + 7)?;
        let boundary = i == 0 || !s[i - 1].is_ascii_alphanumeric();
        (boundary && digits.iter().all(u8::is_ascii_digit) && s.get(i + 7) == Some(&b':'))
            .then(|| parse_num(digits).and_then(|n| u32::try_from(n).ok()))
            .flatten()
    })
}

/// Parses an unsigned decimal number.
fn parse_num(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests;
