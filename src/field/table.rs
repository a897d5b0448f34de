//! Typed access to a TOML table that reports every problem with its span and key: serde
//! deserialization that keeps going past the first bad key, unknown keys with a "did you mean",
//! and serde's messages rewritten in the words of the file.

use super::{did_you_mean, did_you_mean_hint, FieldError};
use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Deserializes `T` from a job or sink table, reporting every key with a bad value rather than
/// only the first: the failing key is reported, left out, and the rest tried again. A missing
/// field is not reported when an unknown key in the table is a misspelling of it (`misspelt`),
/// nor when its value was already reported. Returns `None` only when a required key is missing.
pub fn de_table<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    misspelt: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let table = value.get_ref().as_table()?;
    let mut rest = value.clone();
    let mut dropped: Vec<String> = Vec::new();
    loop {
        let e = match de::<T>(&rest, prefix) {
            Ok(t) => return Some(t),
            Err(e) => located_in_table(e, table, prefix),
        };
        let Some(key) = e.key.strip_prefix(prefix).and_then(|k| k.strip_prefix('.')) else {
            let reported = misspelt
                .iter()
                .copied()
                .chain(dropped.iter().map(String::as_str))
                .any(|k| e.message == format!("missing field `{k}`"));
            if !reported {
                errors.push(e);
            }
            return None;
        };
        let key = key.to_string();
        errors.push(e);
        let removed = match rest.get_mut() {
            DeValue::Table(t) => t.remove(key.as_str()).is_some(),
            _ => false,
        };
        if !removed {
            return None;
        }
        dropped.push(key);
    }
}

/// For a table without a `type` key, the error for a key that looks like a misspelling of it
/// (`tpye`: unknown key; did you mean `type`?), which says why the type is missing. Keys valid
/// for some type (`known`) are not taken for misspellings.
pub fn misspelt_type(table: &DeTable<'_>, prefix: &str, known: &[&str]) -> Option<FieldError> {
    if table.keys().any(|k| k.get_ref() == "type") {
        return None;
    }
    table.keys().find_map(|key| {
        let k = key.get_ref().as_ref();
        (!known.contains(&k) && did_you_mean(k, ["type"]).is_some())
            .then(|| unknown_key(key.span(), k, prefix, &["type"], ""))
    })
}

/// The known keys that unknown keys of `table` look like misspellings of.
pub fn misspelt_keys<'k>(table: &DeTable<'_>, known: &[&'k str]) -> Vec<&'k str> {
    table
        .keys()
        .map(|k| k.get_ref().as_ref())
        .filter(|k| !known.contains(k))
        .filter_map(|k| did_you_mean(k, known.iter().copied()))
        .collect()
}

/// Deserializes one subtree, keeping the location of any error.
pub fn de<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, key: &str) -> Result<T, FieldError> {
    let mut owned = value.clone();
    owned.get_mut().make_owned();
    T::deserialize(owned.into_deserializer()).map_err(|e| {
        let span = e.span().unwrap_or_else(|| value.span());
        FieldError::new(span, key, explain_variant(toml_message(&e)))
    })
}

/// Rewrites serde's "unknown variant" in the words of the file, with a "did you mean".
pub fn explain_variant(message: String) -> String {
    let Some((value, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once("`, expected "))
    else {
        return message;
    };
    let choices: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = did_you_mean_hint(value, choices.iter().copied()).unwrap_or_default();
    format!(
        "unknown value {value:?}{hint} (expected one of: {})",
        choices.join(", ")
    )
}

/// Names the key whose value an error points into, for errors raised inside a job table.
pub fn located_in_table(mut e: FieldError, table: &DeTable<'_>, prefix: &str) -> FieldError {
    if let Some((k, _)) = table.iter().find(|(k, v)| {
        (v.span().start <= e.span.start && e.span.end <= v.span().end) || k.span() == e.span
    }) {
        e.key = format!("{prefix}.{}", k.get_ref());
    }
    e
}

/// The TOML parser's message for `e`, without surrounding blank space.
pub fn toml_message(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// The error for `key` (under `prefix`) that is not one of `known`, with `context` after
/// "unknown key" (` for a command job`) and a "did you mean" when one is close.
pub fn unknown_key(
    span: std::ops::Range<usize>,
    key: &str,
    prefix: &str,
    known: &[&str],
    context: &str,
) -> FieldError {
    let full = if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    };
    let hint = did_you_mean(key, known.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    FieldError::new(span, full, format!("unknown key{context}{hint}"))
}
