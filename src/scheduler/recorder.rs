//! What the scheduler tells whoever keeps figures about runs (the metrics), without knowing
//! which figures they keep: one call when a run ends. The counts `opsd status` shows are kept
//! in [`JobState`](super::JobState); a recorder adds what status does not keep (how long runs
//! took, how late they started) and learns that the figures changed.

use super::execute::{Finished, Trigger};
use crate::config::JobConfig;

/// Hears about every run the scheduler carries out.
pub trait RunRecorder: Send + Sync + std::fmt::Debug {
    /// A run of `job`, started for `trigger`, ended as `finished` says (its state is already
    /// updated).
    fn run_ended(&self, job: &JobConfig, trigger: Trigger, finished: &Finished);
}

/// The recorder of a scheduler nobody watches: it keeps nothing.
#[derive(Debug, Default)]
pub struct NoRecorder;

impl RunRecorder for NoRecorder {
    fn run_ended(&self, _: &JobConfig, _: Trigger, _: &Finished) {}
}
