//! Lists the keys a serde struct accepts, so unknown keys can be reported with suggestions.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Returns the field names that `T`'s derived `Deserialize` accepts.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The probe always errors after recording the fields; the result is not needed.
    let _ = T::deserialize(FieldProbe {
        fields: &mut fields,
    });
    fields
}

/// A deserializer that records the field list of the struct asked for, then stops.
struct FieldProbe<'a> {
    fields: &'a mut &'static [&'static str],
}

/// The error the probe stops with.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.fields = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A struct whose keys are listed; its fields are only deserialised, never read.
    #[derive(serde::Deserialize)]
    #[expect(dead_code)]
    struct Sample {
        alpha: u32,
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn lists_renamed_fields() {
        assert_eq!(struct_fields::<Sample>(), &["alpha", "type"]);
    }
}
