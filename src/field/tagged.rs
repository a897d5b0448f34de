//! The one parser of tables tagged by `type = "..."` (a job, an alert sink): it checks the value
//! is a table, catches a misspelt `type`, reads the type, refuses an unknown one with a "did you
//! mean" and the known list, and reports the keys the type does not have. What each type then
//! reads from its table is the type's own business.

use super::{de, did_you_mean_hint, misspelt_keys, misspelt_type, unknown_key, FieldError};
use toml::de::DeValue;
use toml::Spanned;

/// The keys read before a type is known, which name the type.
pub trait Head: Sized {
    /// Reads the head from a table, adding what is wrong to `errors`; `None` when the type
    /// cannot be told.
    fn read(
        value: &Spanned<DeValue<'_>>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self>;

    /// The `type = "..."` value, as written.
    fn tag(&self) -> &Spanned<String>;
}

/// A head of the `type` key alone, for families with no keys common to every type.
#[derive(Debug, serde::Deserialize)]
pub struct TypeOnly {
    /// The `type = "..."` value.
    #[serde(rename = "type")]
    kind: Spanned<String>,
}

impl Head for TypeOnly {
    /// The `type` key alone; the first problem with it is reported.
    fn read(
        value: &Spanned<DeValue<'_>>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        de(value, prefix).map_err(|e| errors.push(e)).ok()
    }

    fn tag(&self) -> &Spanned<String> {
        &self.kind
    }
}

/// A family of tagged tables: what they are called, and each type's name and keys.
#[derive(Debug, Clone, Copy)]
pub struct Tagged<'a> {
    /// The family's name in "unknown {noun} type" (`job`, `alert sink`).
    pub noun: &'a str,
    /// Its name after a type in "unknown key for a {type} {member}" (`job`, `sink`).
    pub member: &'a str,
    /// The message for a value that is not a table.
    pub not_a_table: &'a str,
    /// The keys every type has, listed before each type's own.
    pub common: &'a [&'static str],
    /// Each type's `type = "..."` name and its own keys, in the order the known list names them.
    pub types: &'a [(&'static str, &'static [&'static str])],
}

/// A tagged table whose type is known.
#[derive(Debug)]
pub struct TaggedTable<H> {
    /// What was read before the type was known.
    pub head: H,
    /// The type's index in [`Tagged::types`].
    pub index: usize,
    /// The known keys that unknown keys of the table look like misspellings of (so a missing
    /// key is not reported twice).
    pub misspelt: Vec<&'static str>,
}

/// Why a tagged table was not read.
#[derive(Debug)]
pub enum NotTagged {
    /// The value is not a table; the error has not been added to the caller's list.
    NotATable(FieldError),
    /// What is wrong has been added to the caller's list.
    Reported,
}

impl Tagged<'_> {
    /// Reads the head and type of the table at `value` (key `prefix`), adding to `errors` each
    /// key the type does not have. Keys that are fine are not read here.
    pub fn parse<H: Head>(
        &self,
        value: &Spanned<DeValue<'_>>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Result<TaggedTable<H>, NotTagged> {
        let Some(table) = value.get_ref().as_table() else {
            return Err(NotTagged::NotATable(FieldError::new(
                value.span(),
                prefix,
                self.not_a_table,
            )));
        };
        let any_type: Vec<&str> = self
            .types
            .iter()
            .flat_map(|(_, fields)| fields.iter())
            .chain(self.common)
            .copied()
            .collect();
        if let Some(e) = misspelt_type(table, prefix, &any_type) {
            errors.push(e);
            return Err(NotTagged::Reported);
        }
        // Unknown keys are checked once the type is known, so a missing `type` is always
        // reported.
        let head = H::read(value, prefix, errors).ok_or(NotTagged::Reported)?;
        let kind = head.tag().get_ref().as_str();
        let Some(index) = self.types.iter().position(|(name, _)| *name == kind) else {
            let names: Vec<&str> = self.types.iter().map(|(name, _)| *name).collect();
            let hint = did_you_mean_hint(kind, names.iter().copied()).unwrap_or_default();
            errors.push(FieldError::new(
                head.tag().span(),
                format!("{prefix}.type"),
                format!(
                    "unknown {} type {kind:?}{hint} (known: {})",
                    self.noun,
                    names.join(", ")
                ),
            ));
            return Err(NotTagged::Reported);
        };
        let known: Vec<&'static str> = self
            .common
            .iter()
            .chain(self.types[index].1)
            .copied()
            .collect();
        let context = format!(" for {} {kind} {}", article(kind), self.member);
        for key in table.keys() {
            let k = key.get_ref().as_ref();
            if !known.contains(&k) {
                errors.push(unknown_key(key.span(), k, prefix, &known, &context));
            }
        }
        let misspelt = misspelt_keys(table, &known);
        Ok(TaggedTable {
            head,
            index,
            misspelt,
        })
    }
}

/// "an" before a name that starts with a vowel (`an ec2 job`), else "a".
pub fn article(name: &str) -> &'static str {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::DeTable;

    const FAMILY: Tagged<'static> = Tagged {
        noun: "probe",
        member: "probe",
        not_a_table: "a probe must be a table",
        common: &["type"],
        types: &[("icmp", &["host"]), ("tcp", &["host", "port"])],
    };

    fn parse(text: &str) -> (Result<TaggedTable<TypeOnly>, NotTagged>, Vec<String>) {
        let root = DeTable::parse(text).expect("toml");
        let value = root.get_ref().get("p").expect("p");
        let mut errors = Vec::new();
        let parsed = FAMILY.parse::<TypeOnly>(value, "p", &mut errors);
        let errors = errors
            .into_iter()
            .map(|e| format!("{}: {}", e.key, e.message))
            .collect();
        (parsed, errors)
    }

    #[test]
    fn a_known_type_has_its_unknown_keys_reported_with_the_right_article() {
        let (parsed, errors) = parse("[p]\ntype = \"icmp\"\nhots = \"a\"\nport = 1\n");
        let parsed = parsed.expect("typed");
        assert_eq!((parsed.index, parsed.misspelt), (0, vec!["host"]));
        assert_eq!(
            errors,
            [
                "p.hots: unknown key for an icmp probe; did you mean `host`?",
                "p.port: unknown key for an icmp probe",
            ]
        );
        let (parsed, errors) = parse("[p]\ntype = \"tcp\"\nhost = \"a\"\n");
        assert_eq!(parsed.expect("typed").index, 1);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn an_unknown_or_misspelt_type_or_a_non_table_is_refused() {
        let (parsed, errors) = parse("[p]\ntype = \"tcpp\"\n");
        assert!(matches!(parsed, Err(NotTagged::Reported)));
        assert_eq!(
            errors,
            ["p.type: unknown probe type \"tcpp\"; did you mean \"tcp\"? (known: icmp, tcp)"]
        );
        let (parsed, errors) = parse("[p]\ntpye = \"tcp\"\n");
        assert!(matches!(parsed, Err(NotTagged::Reported)));
        assert_eq!(errors, ["p.tpye: unknown key; did you mean `type`?"]);
        let (parsed, errors) = parse("p = 1\n");
        let Err(NotTagged::NotATable(e)) = parsed else {
            panic!("a number is not a table");
        };
        assert_eq!(e.message, "a probe must be a table");
        assert!(errors.is_empty(), "{errors:?}");
    }
}
