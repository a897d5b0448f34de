//! One field of a cron line (minute, hour, day of month, month, day of week) read the way
//! Debian's cron (Vixie cron) reads it: lists of `*`, `N`, `N-M`, each with an optional `/STEP`
//! after `*` or a range, month and weekday names, `7` as Sunday. Anything cron would refuse, or
//! that crons disagree on, is an error saying why, so the line is reported instead of guessed.

use std::fmt;

/// Which field of the line, with the values it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// 0-59.
    Minute,
    /// 0-23.
    Hour,
    /// 1-31.
    DayOfMonth,
    /// 1-12 or jan-dec.
    Month,
    /// 0-7 (0 and 7 are Sunday) or sun-sat.
    DayOfWeek,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Which {
    /// The field's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Which::Minute => "minute",
            Which::Hour => "hour",
            Which::DayOfMonth => "day-of-month",
            Which::Month => "month",
            Which::DayOfWeek => "day-of-week",
        }
    }

    /// The lowest and highest value cron accepts (day of week up to 7, folded to 0 later).
    fn bounds(self) -> (u8, u8) {
        match self {
            Which::Minute => (0, 59),
            Which::Hour => (0, 23),
            Which::DayOfMonth => (1, 31),
            Which::Month => (1, 12),
            Which::DayOfWeek => (0, 7),
        }
    }

    /// The highest value once parsed (day of week: 6, since 7 is folded into 0).
    pub fn max(self) -> u8 {
        match self {
            Which::DayOfWeek => 6,
            other => other.bounds().1,
        }
    }

    /// The lowest value.
    pub fn min(self) -> u8 {
        self.bounds().0
    }

    fn names(self) -> Option<(&'static [&'static str], u8)> {
        match self {
            Which::Month => Some((&MONTHS, 1)),
            Which::DayOfWeek => Some((&DAYS, 0)),
            _ => None,
        }
    }
}

/// The values a field takes, as a bit set (bit N for value N), and whether the field began
/// with `*` (cron's DOM_STAR/DOW_STAR flag, which decides the day-of-month/day-of-week rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bit N set when the field matches value N.
    pub bits: u64,
    /// True when the field's text starts with `*` (`*`, `*/2`).
    pub star: bool,
    /// Which field this is.
    pub which: Which,
}

/// Why a field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {field} field {text:?} {why}")]
pub struct FieldError {
    field: &'static str,
    text: String,
    why: String,
}

impl Field {
    /// Parses `text` as field `which`.
    pub fn parse(text: &str, which: Which) -> Result<Field, FieldError> {
        let fail = |why: String| FieldError {
            field: which.name(),
            text: text.to_string(),
            why,
        };
        if text.starts_with('/') || text.contains("//") {
            return Err(fail(
                "is not a time field; is one of the five missing before the command?".into(),
            ));
        }
        if let Some(c) = text.chars().find(|c| matches!(c, '#' | '?')) {
            return Err(fail(format!(
                "uses `{c}`, which Debian's cron does not know (a Quartz extension)"
            )));
        }
        let (lo, hi) = which.bounds();
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u8 = s.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        fail(format!("has step {s:?}; a step is a number from 1"))
                    })?;
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (first, last) = if range == "*" {
                (lo, hi)
            } else if let Some((a, b)) = range.split_once('-') {
                let a = number(a, which).map_err(&fail)?;
                let b = number(b, which).map_err(&fail)?;
                if a > b {
                    return Err(fail(format!(
                        "has the reversed range {range:?}; crons disagree on it (none, or a \
                         wrap-around): write it as two ranges"
                    )));
                }
                (a, b)
            } else {
                let n = number(range, which).map_err(&fail)?;
                if step.is_some() {
                    return Err(fail(format!(
                        "has a step after a single value ({part:?}): Debian's cron refuses it and \
                         cronie reads it as {range}-{hi}/STEP; write the range"
                    )));
                }
                (n, n)
            };
            let step = step.unwrap_or(1);
            let mut v = first;
            while v <= last {
                bits |= 1 << v;
                v = match v.checked_add(step) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        if which == Which::DayOfWeek && bits & (1 << 7) != 0 {
            bits = (bits & !(1 << 7)) | 1;
        }
        Ok(Field {
            bits,
            star: text.starts_with('*'),
            which,
        })
    }

    /// The field matching every value, written `*`.
    pub fn all(which: Which) -> Field {
        let mut bits = 0;
        for v in which.min()..=which.max() {
            bits |= 1 << v;
        }
        Field {
            bits,
            star: true,
            which,
        }
    }

    /// The field matching exactly `values` (as if written as a list, so not starred).
    pub fn of(which: Which, values: impl IntoIterator<Item = u8>) -> Field {
        Field {
            bits: values.into_iter().fold(0, |b, v| b | (1 << v)),
            star: false,
            which,
        }
    }

    /// True when the field matches every value of its range.
    pub fn is_full(&self) -> bool {
        self.bits == Field::all(self.which).bits
    }

    /// True when the field matches `v`.
    pub fn has(&self, v: u8) -> bool {
        v < 64 && self.bits & (1 << v) != 0
    }

    /// The values, ascending.
    pub fn values(&self) -> Vec<u8> {
        (0..64u8).filter(|v| self.has(*v)).collect()
    }
}

/// One value: a number in the field's bounds, or (month, day of week) a three-letter name.
fn number(text: &str, which: Which) -> Result<u8, String> {
    let (lo, hi) = which.bounds();
    if let Some((names, first)) = which.names() {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(first + i as u8);
        }
    }
    match text.parse::<u64>() {
        Ok(n) if (u64::from(lo)..=u64::from(hi)).contains(&n) => Ok(n as u8),
        Ok(_) => Err(format!("is out of range (takes {lo}-{hi})")),
        Err(_) if text.is_empty() => Err("has an empty value".to_string()),
        Err(_) if text.eq_ignore_ascii_case("L") || text.ends_with(['L', 'l', 'W', 'w']) => Err(
            format!("has {text:?}: `L` and `W` are Quartz extensions Debian's cron does not know"),
        ),
        Err(_) => Err(format!("has {text:?}, not a number or name cron knows")),
    }
}

impl fmt::Display for Field {
    /// The field as opsd writes it: `*` for a starred full field, `*/N` for a starred step
    /// from the lowest value, else ranges and values (`1-5`, `0,15,30`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (self.which.min(), self.which.max());
        if self.star && self.is_full() {
            return f.write_str("*");
        }
        if self.star {
            for step in 2..=hi {
                let expected = (lo..=hi)
                    .step_by(usize::from(step))
                    .fold(0u64, |b, v| b | (1 << v));
                if expected == self.bits {
                    return write!(f, "*/{step}");
                }
            }
        }
        let values = self.values();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < values.len() {
            let mut j = i;
            while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
                j += 1;
            }
            if j >= i + 2 {
                parts.push(format!("{}-{}", values[i], values[j]));
            } else {
                parts.extend(values[i..=j].iter().map(u8::to_string));
            }
            i = j + 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str, which: Which) -> String {
        Field::parse(text, which)
            .map(|f| f.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn fields_read_as_debian_cron_reads_them() {
        assert_eq!(shown("*", Which::Minute), "*");
        assert_eq!(shown("*/15", Which::Minute), "*/15");
        assert_eq!(shown("5-55/10", Which::Minute), "5,15,25,35,45,55");
        assert_eq!(shown("09,39", Which::Minute), "9,39");
        assert_eq!(shown("mon-fri", Which::DayOfWeek), "1-5");
        assert_eq!(shown("7", Which::DayOfWeek), "0");
        assert_eq!(shown("5-7", Which::DayOfWeek), "0,5,6");
        assert_eq!(shown("JAN,Dec", Which::Month), "1,12");
        assert_eq!(shown("*/2", Which::DayOfWeek), "*/2");
        assert!(Field::parse("*/2", Which::DayOfMonth).is_ok_and(|f| f.star && !f.is_full()));
        assert!(!Field::parse("1-31", Which::DayOfMonth).is_ok_and(|f| f.star));
    }

    #[test]
    fn what_cron_refuses_or_crons_disagree_on_is_an_error() {
        for (text, which, says) in [
            ("60", Which::Minute, "out of range"),
            ("99999999999", Which::Hour, "out of range"),
            ("0", Which::DayOfMonth, "out of range"),
            ("5-1", Which::Hour, "reversed range"),
            ("5/10", Which::Minute, "single value"),
            ("*/0", Which::Minute, "step"),
            ("L", Which::DayOfMonth, "Quartz"),
            ("1#2", Which::DayOfWeek, "Quartz"),
            ("?", Which::DayOfWeek, "Quartz"),
            ("monday", Which::DayOfWeek, "not a number"),
            ("1,,2", Which::Minute, "empty"),
            ("/usr/bin/x", Which::DayOfWeek, "missing"),
        ] {
            let e = Field::parse(text, which).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
