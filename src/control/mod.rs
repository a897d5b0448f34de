//! The control socket (`/run/opsd/opsd.sock`): one JSON request line in, one JSON response
//! line out. `opsd status`, `opsd trigger` and `opsd reload` talk to the daemon through it.

pub mod client;
pub mod server;

use crate::scheduler::{Changes, JobStatus, ReloadSummary, TriggerReply};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The default socket path: `$RUNTIME_DIRECTORY/opsd.sock`, else `/run/opsd/opsd.sock`.
pub fn default_socket() -> PathBuf {
    std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .unwrap_or_else(|| PathBuf::from("/run/opsd"))
        .join("opsd.sock")
}

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// List jobs with their next and last runs.
    Status,
    /// Run a job now and report how it ended.
    Trigger {
        /// The job's name.
        job: String,
    },
    /// Re-read the configuration file.
    Reload,
    /// The jobs changed since a generation (what a metrics scrape asks; `since` 0: all).
    Changes {
        /// The generation of the last answer.
        since: u64,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The job list.
    Status {
        /// The file the jobs came from.
        config: String,
        /// Every job.
        jobs: Vec<JobStatus>,
    },
    /// How a triggered run went.
    Triggered {
        /// The run, or why it did not start.
        reply: TriggerReply,
    },
    /// The jobs changed since the generation asked.
    Changes {
        /// The changed jobs, every job's name and the generation now.
        changes: Changes,
    },
    /// The new configuration was accepted.
    Reloaded {
        /// What changed.
        summary: ReloadSummary,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}
