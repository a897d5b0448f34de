//! The `jobs.toml` schema and its validation, with the `jobs.d/*.toml` drop-ins read after it.
//! Every problem is reported with the file, line, column and key at fault, unknown keys with a
//! "did you mean" where one is close, and all problems of all files at once.
//!
//! `schema` is what a valid configuration is; `files` reads the job file and its drop-ins,
//! `defaults` the `[defaults]` section, `metrics` the `[metrics]` one and `job` one `[jobs.NAME]` table, whose type-specific
//! keys the type reads itself through [`crate::jobs::REGISTRY`]; the `[alerts]` sinks are read by
//! [`crate::alert::sink`], and `fleet` reads `[fleet]`. Nothing here names a job or sink type.

mod defaults;
mod drop_in;
mod duplicate;
mod error;
mod files;
mod fleet;
mod job;
mod metrics;
pub mod needs;
pub mod sandbox;
mod schema;

pub use drop_in::{drop_in_dir, skipped, DROP_IN_DIR};
pub use error::{ConfigError, Located};

pub use defaults::system_timezone;
pub use files::{load, parse, parse_bytes, parse_files};
pub use metrics::MetricsConfig;
pub use schema::{CatchUp, Config, Defaults, FleetSettings, JobConfig, OnLost, Overlap, Scope};

/// The default location of the job file.
pub const DEFAULT_PATH: &str = "/etc/opsd/jobs.toml";

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
