//! The process-wide change counter: every change of what a job shows (`opsd status`, the
//! metrics) takes the next generation and records it beside the change, so whoever keeps a
//! copy of the jobs (the metrics scrape) asks only for those changed since the generation it
//! last saw, instead of copying every job again (docs/metrics.md, "Cost").
//!
//! The contract: a change is made first, then stamped with [`next`] under the same lock; a
//! reader takes [`current`] before it reads the jobs. Then every job whose stamp is not above
//! the generation a reader saw last was read by it as changed, and any later change has a
//! higher stamp. Generations only grow; 0 is "before any change".

use std::sync::atomic::{AtomicU64, Ordering};

/// The newest generation taken.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Takes the next generation, the stamp of a change just made.
pub fn next() -> u64 {
    GENERATION.fetch_add(1, Ordering::SeqCst) + 1
}

/// The newest generation taken so far: every change stamped up to it is visible to a reader
/// that took it.
pub fn current() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_change_takes_a_generation_above_every_one_seen_before() {
        let seen = super::current();
        let a = super::next();
        let b = super::next();
        assert!(seen < a && a < b, "{seen} {a} {b}");
        assert!(super::current() >= b);
    }
}
