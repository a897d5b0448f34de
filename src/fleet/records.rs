//! What the fleet's keys hold (see `keys.rs` for where): the records of a claim, of a run
//! going, and of a run's result, as JSON. A leaf: it imports nothing of ours.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `slots/JOB/SLOT` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The host that won the slot.
    pub host: String,
    /// A random id of this claim, to recognise our own after a retried call.
    pub nonce: String,
}

/// What `running/JOB/SLOT` and `open/JOB/SLOT` hold.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunningRecord {
    /// The host running the slot.
    pub host: String,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// Whether this run is the one retry of a lost run (`on_lost = "retry"`).
    #[serde(default)]
    pub retried: bool,
}

/// What `results/JOB/SLOT` and `last/JOB` hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResultRecord {
    /// The job.
    pub job: String,
    /// The slot.
    pub slot: DateTime<Utc>,
    /// The host that ran it.
    pub host: String,
    /// How it ended (`success`, `failed`, ..., or `lost`).
    pub outcome: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Its one-line explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The last lines it printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
    /// The claim's fencing token.
    pub token: u64,
    /// This host and a random id, the same in every try of one write: a try whose answer was
    /// lost but that committed is recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// `value` as JSON bytes (our own records, which always serialise).
pub fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
