//! The job file as every subcommand that reads it loads it, with a hint when it is missing.

use super::show::shown_path;
use crate::config::{self, Config, ConfigError};
use std::io::ErrorKind;
use std::path::Path;

/// Where the annotated example job file is, for the hint when there is no job file.
const EXAMPLE_HINT: &str = "an annotated example is /usr/share/doc/opsd/examples/jobs.toml \
     (installed by the package) or config/jobs.toml in the source tree";

/// Loads the job file, with [`missing_file_hint`] for a missing one.
pub(super) fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).map_err(|e| missing_file_hint(e.into(), path))
}

/// Replaces a job file's bare `No such file or directory` with a hint at `--config` and the
/// example; other errors (a `jobs.d` file that went, a dangling link there) pass unchanged.
pub(super) fn missing_file_hint(e: anyhow::Error, path: &Path) -> anyhow::Error {
    match e.downcast_ref::<ConfigError>() {
        Some(ConfigError::Read { source, path: read })
            if source.kind() == ErrorKind::NotFound && read == path =>
        {
            anyhow::anyhow!(
                "{}: no such job file; name another with --config FILE (or OPSD_CONFIG), \
                 or write this one ({EXAMPLE_HINT})",
                shown_path(path)
            )
        }
        _ => e,
    }
}
