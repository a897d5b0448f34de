//! "Did you mean": the closest known name to a mistyped one, and the one way it is written in a
//! message.

/// Words longer than this get no "did you mean": none of the names suggested is this long, and
/// comparing a huge value with every candidate would cost time quadratic in its length.
const MAX_SUGGESTED: usize = 64;

/// Suggests the closest candidate to `word`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.len() > MAX_SUGGESTED {
        return None;
    }
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The hint appended to a message about an unknown value, `; did you mean "closest"?`, when a
/// candidate is close to `word` ([`did_you_mean`]).
pub fn did_you_mean_hint<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|s| format!("; did you mean {s:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["timeout", "timezone", "schedule"];
        assert_eq!(did_you_mean("timout", keys), Some("timeout"));
        assert_eq!(did_you_mean("shedule", keys), Some("schedule"));
        assert_eq!(did_you_mean("xyz", keys), None);
    }

    #[test]
    fn the_hint_quotes_the_suggestion() {
        let zones = ["Europe/Paris", "Asia/Seoul"];
        assert_eq!(
            did_you_mean_hint("Europe/Pari", zones).as_deref(),
            Some("; did you mean \"Europe/Paris\"?")
        );
        assert_eq!(did_you_mean_hint("Mars/Olympus", zones), None);
    }
}
