//! Explaining the TOML parser's "duplicate key": which job, sink or key it is, and the line it
//! was first defined on.

use crate::field::{line_col, FieldError};
use toml::de::{DeTable, DeValue};

/// Explains a duplicate key from the TOML parser: which job, sink or key it is, and the line it
/// was first defined on.
pub(super) fn duplicate(text: &str, span: std::ops::Range<usize>) -> FieldError {
    let line_start = text
        .get(..span.start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let before = text.get(..line_start).unwrap_or_default();
    let line = text
        .get(line_start..)
        .and_then(|t| t.lines().next())
        .unwrap_or_default();
    let path = if line.trim_start().starts_with('[') {
        key_path(line)
    } else {
        // `key = value`, under the nearest table header above it.
        let header = before
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('['))
            .map_or(Some(Vec::new()), key_path);
        let key = line
            .split_once('=')
            .and_then(|(k, _)| key_path(&format!("{k} = 0")));
        header.zip(key).map(|(h, k)| [h, k].concat())
    };
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return FieldError::new(span, "", "duplicate key");
    };
    let first = first_definition(before, &path)
        .map(|at| format!(" (first defined at line {})", line_col(text, at).0))
        .unwrap_or_default();
    let message = match path.as_slice() {
        [section, name] if section == "jobs" => format!("duplicate job `{name}`{first}"),
        [section, name] if section == "alerts" => format!("duplicate alert sink `{name}`{first}"),
        _ => format!("duplicate key{first}"),
    };
    FieldError::new(span, path.join("."), message)
}

/// The dotted key path a lone table header or `key = value` line defines.
fn key_path(snippet: &str) -> Option<Vec<String>> {
    let root = DeTable::parse(snippet).ok()?;
    let mut path = Vec::new();
    let mut table = root.get_ref();
    while let Some((key, value)) = table.iter().next() {
        path.push(key.get_ref().to_string());
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    Some(path)
}

/// The byte offset of the key at `path` in `text`, if `text` defines it.
fn first_definition(text: &str, path: &[String]) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let (last, parents) = path.split_last()?;
    let mut table = root.get_ref();
    for key in parents {
        table = table.get(key.as_str())?.get_ref().as_table()?;
    }
    table
        .get_key_value(last.as_str())
        .map(|(key, _)| key.span().start)
}
