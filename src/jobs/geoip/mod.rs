//! The `geoip` job type: for each configured GeoLite2 edition, ask MaxMind (HEAD) whether a new
//! release is out, download and check it, build the legacy files with a pluggable builder,
//! install them safely, and run `after` when something changed.
//!
//! How the files fit: `spec.rs` holds the job's keys and their checks (sizes parsed by
//! `byte_size.rs`); `run.rs` drives one run over the editions, each passing through
//! `edition.rs` (HEAD, download, check, build, install, state record); `builder.rs` is the
//! format step a run plugs in; [`preflight`] is what `opsd check` can tell before a first
//! run. The format work itself lives in [`crate::geoip`].

mod builder;
mod byte_size;
pub mod check;
mod edition;
mod kind;
pub mod preflight;
mod run;
mod spec;

pub use builder::{BuiltFile, GeoipBuilder, LegacyBuilder};
pub use byte_size::ByteSize;
pub use kind::KIND;
pub use run::{run, run_with};
pub use spec::{GeoipSpec, RunSettings};

#[cfg(test)]
mod tests;
