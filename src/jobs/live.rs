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
/// shows it. Empty until the run publishes, and emptied when the run ends. Each change is
/// stamped with a [`generation`](crate::generation), so a reader keeping a copy knows
/// whether it is still current.
#[derive(Debug, Clone, Default)]
pub struct LiveSlot(Arc<Mutex<Published>>);

/// What a [`LiveSlot`] holds: the figures, and the generation of their last change.
#[derive(Debug, Default)]
struct Published {
    /// The figures published last, if any.
    status: Option<LiveStatus>,
    /// The generation of the last publish or clear (0: never changed).
    changed: u64,
}

impl LiveSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        // Only a snapshot lives here: a panic while it was written leaves a usable one.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the published figures with `status`.
    pub fn publish(&self, status: LiveStatus) {
        let mut p = self.lock();
        p.status = Some(status);
        p.changed = crate::generation::next();
    }

    /// The figures published last, if the run published any.
    pub fn get(&self) -> Option<LiveStatus> {
        self.lock().status.clone()
    }

    /// Forgets the figures (the run that published them has ended).
    pub fn clear(&self) {
        let mut p = self.lock();
        if p.status.take().is_some() {
            p.changed = crate::generation::next();
        }
    }

    /// The generation of the last change of the figures (0: none yet).
    pub fn changed(&self) -> u64 {
        self.lock().changed
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

    #[test]
    fn a_publish_and_a_clear_each_take_a_new_generation_and_nothing_else_does() {
        let slot = LiveSlot::default();
        assert_eq!(slot.changed(), 0);
        slot.clear();
        assert_eq!(slot.changed(), 0, "clearing an empty slot changes nothing");
        let before = crate::generation::current();
        slot.publish(LiveStatus {
            counts: Vec::new(),
            updated: Utc::now(),
            summary: "1 file".into(),
            fields: Vec::new(),
        });
        let published = slot.changed();
        assert!(published > before);
        assert_eq!(slot.get().map(|s| s.summary), Some("1 file".into()));
        assert_eq!(slot.changed(), published, "reading changes nothing");
        slot.clear();
        assert!(slot.changed() > published);
    }
}
