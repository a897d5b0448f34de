//! The scheduler: arms one timer per job, applies overlap, timeout, jitter and catch-up
//! policies, reloads configuration without losing running jobs, and shuts down cleanly.

pub mod execute;

pub use execute::{execute, Finished, Trigger};
