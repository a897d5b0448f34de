//! Shared helpers for reading typed fields out of TOML tables with located errors: the
//! [`FieldError`] every check returns, "did you mean" suggestions, human durations, the key list
//! of a serde struct, typed table access that reports every bad key at once, and the one parser
//! of tables tagged by `type = "..."` (jobs, alert sinks).
//!
//! A leaf: it imports nothing of this crate, so `config`, the job types and the alert sinks can
//! all build on it without reaching into one another.

mod duration;
mod error;
mod fields;
mod suggest;
mod table;
mod tagged;
mod text;

pub use duration::HumanDuration;
pub use error::FieldError;
pub use fields::struct_fields;
pub use suggest::{did_you_mean, did_you_mean_hint};
pub use table::{
    de, de_table, explain_variant, located_in_table, misspelt_keys, misspelt_type, toml_message,
    unknown_key,
};
pub use tagged::{article, Head, NotTagged, Tagged, TaggedTable, TypeOnly};
pub use text::{line_col, shown, valid_name, Cursor};
