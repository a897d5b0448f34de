//! The five time fields of a cron line and the expression opsd is given for them, written so
//! that croner (opsd's cron evaluator) picks the same days as cron: cron ANDs day of month and
//! day of week when either field starts with `*`, and ORs them otherwise; croner ORs them
//! unless a field is exactly `*`, and ANDs them when the day-of-week field starts with `+`.

use super::cron_field::{Field, FieldError, Which};

/// When a cron line fires: its five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// 0-59.
    pub minute: Field,
    /// 0-23.
    pub hour: Field,
    /// 1-31.
    pub dom: Field,
    /// 1-12.
    pub month: Field,
    /// 0-6, Sunday 0.
    pub dow: Field,
}

/// The nicknames Debian's cron knows (other than `@reboot`) and the fields they stand for.
const NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Why a line's times were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimesError {
    /// A field cron would refuse.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A nickname cron does not know.
    #[error("unknown nickname {0:?} (Debian's cron knows @reboot, @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)")]
    Nickname(String),
}

impl Times {
    /// The times of a `@nickname` (not `@reboot`).
    pub fn nickname(nick: &str) -> Result<Times, TimesError> {
        let fields = NICKNAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(nick))
            .map(|(_, f)| *f)
            .ok_or_else(|| TimesError::Nickname(nick.to_string()))?;
        let f: Vec<&str> = fields.split(' ').collect();
        Times::parse([f[0], f[1], f[2], f[3], f[4]])
    }

    /// Parses the five fields of a cron line.
    pub fn parse(f: [&str; 5]) -> Result<Times, TimesError> {
        Ok(Times {
            minute: Field::parse(f[0], Which::Minute)?,
            hour: Field::parse(f[1], Which::Hour)?,
            dom: Field::parse(f[2], Which::DayOfMonth)?,
            month: Field::parse(f[3], Which::Month)?,
            dow: Field::parse(f[4], Which::DayOfWeek)?,
        })
    }

    /// True when cron ANDs the two day fields (either starts with `*`), false when it ORs them.
    pub fn days_and(&self) -> bool {
        self.dom.star || self.dow.star
    }

    /// The 5-field expression opsd is given: croner then fires on exactly the minutes cron
    /// does (see the module doc for the day rule).
    pub fn expression(&self) -> String {
        let (dom, dow) = if self.days_and() {
            // cron ANDs. A full field is `*` to croner (matching every day, so the AND is the
            // other field); two restricted fields need croner's `+` AND.
            match (self.dom.is_full(), self.dow.is_full()) {
                (true, _) => ("*".to_string(), self.dow.to_string()),
                (false, true) => (self.dom.to_string(), "*".to_string()),
                (false, false) => (self.dom.to_string(), format!("+{}", self.dow)),
            }
        } else {
            // cron ORs; neither field is starred, so croner writes neither as `*` and ORs too.
            (self.dom.to_string(), self.dow.to_string())
        };
        format!(
            "{} {} {} {} {}",
            self.minute, self.hour, dom, self.month, dow
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(fields: &str) -> String {
        let f: Vec<&str> = fields.split(' ').collect();
        Times::parse([f[0], f[1], f[2], f[3], f[4]])
            .expect(fields)
            .expression()
    }

    #[test]
    fn the_day_rule_is_written_the_way_croner_reads_it() {
        // Both restricted, neither starred: cron ORs, croner ORs.
        assert_eq!(expr("0 0 1,15 * 5"), "0 0 1,15 * 5");
        // A starred step is restricted but starred: cron ANDs, so croner is told `+`.
        assert_eq!(expr("0 0 */2 * 1"), "0 0 */2 * +1");
        // A full day of month written as a range is not starred: cron ORs (every day).
        assert_eq!(expr("0 0 1-31 * 1"), "0 0 1-31 * 1");
        assert_eq!(expr("0 0 * * 0-4"), "0 0 * * 0-4");
        assert_eq!(expr("0 0 1 * *"), "0 0 1 * *");
        assert_eq!(expr("0 0 * * */2"), "0 0 * * */2");
        assert_eq!(expr("30 09 * * 7"), "30 9 * * 0");
    }

    #[test]
    fn nicknames_are_their_fields() {
        let t = Times::nickname("@WEEKLY").expect("known");
        assert_eq!(t.expression(), "0 0 * * 0");
        assert!(Times::nickname("@fortnightly").is_err());
    }
}
