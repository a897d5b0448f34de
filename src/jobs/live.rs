//! The live figures a running job publishes for `opsd status` (a continuous job has no "last
//! run" worth showing while it runs). The job type owns what the figures are and renders them
//! to labelled values; the scheduler only carries them, never reads them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};

/// What a running job says about itself now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// When the job published these figures.
    pub updated: DateTime<Utc>,
    /// One short line for the row of the `opsd status` table.
    pub summary: String,
    /// Every figure as (label, value), in the order `opsd status NAME` prints them.
    pub fields: Vec<(String, String)>,
    /// The figures that are numbers, for the metrics (`opsd_<type>_<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<LiveCount>,
}

/// One figure of a running job as a number: the metrics show it as `opsd_<type>_<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCount {
    /// Its name in base units (`lines_read`, `files_followed`).
    pub name: String,
    /// True for a count that only grows while the run goes (a counter), false for a level.
    pub counter: bool,
    /// A label telling this series from others of the same name (`("rule", "child_crash")`).
    #[serde(default)]
    pub label: Option<(String, String)>,
    /// The value.
    pub value: u64,
}

/// Where a run publishes its [`LiveStatus`]; cheap to clone, shared by the run and whoever
/// shows it. Empty until the run publishes, and emptied when the run ends.
#[derive(Debug, Clone, Default)]
pub struct LiveSlot(Arc<Mutex<Option<LiveStatus>>>);

impl LiveSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<LiveStatus>> {
        // Only a snapshot lives here: a panic while it was written leaves a usable one.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the published figures with `status`.
    pub fn publish(&self, status: LiveStatus) {
        *self.lock() = Some(status);
    }

    /// The figures published last, if the run published any.
    pub fn get(&self) -> Option<LiveStatus> {
        self.lock().clone()
    }

    /// Forgets the figures (the run that published them has ended).
    pub fn clear(&self) {
        *self.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_what_one_publishes_until_it_is_cleared() {
        let slot = LiveSlot::default();
        let shown = slot.clone();
        assert_eq!(shown.get(), None);
        let status = LiveStatus {
            counts: Vec::new(),
            updated: Utc::now(),
            summary: "2 files".into(),
            fields: vec![("files".into(), "a, b".into())],
        };
        slot.publish(status.clone());
        assert_eq!(shown.get(), Some(status));
        slot.clear();
        assert_eq!(shown.get(), None);
    }
}
