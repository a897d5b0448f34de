//! The slot gate: what the runner asks, before a fleet job's slot starts, whether this host may
//! start it. The scheduler knows only this contract; who answers (etcd claims, `crate::fleet`)
//! is plugged in by the daemon. A gate decides once per slot: exactly one host of a fleet gets
//! [`Verdict::Start`] for a given (job, slot), the others [`Verdict::Taken`]; a gate that cannot
//! tell (its coordination store unreachable, the clock untrustworthy) answers
//! [`Verdict::Refused`], and the slot does not run here: the gate fails closed.

use super::execute::Finished;
use crate::config::JobConfig;
use crate::jobs::kind::BoxFuture;
use chrono::{DateTime, Utc};

/// Decides which host of a fleet starts each slot of a fleet job.
pub trait SlotGate: Send + Sync + std::fmt::Debug {
    /// Whether this host may start `job`'s run for `slot` (the instant it is scheduled for,
    /// the same on every host); called once per slot, off the precise alarm.
    fn claim<'a>(&'a self, job: &'a JobConfig, slot: DateTime<Utc>) -> BoxFuture<'a, Verdict>;
}

/// A gate's answer for one slot.
pub enum Verdict {
    /// This host won the slot: run it, with the claim's fencing token, and report its end.
    Start(Box<dyn Claimed>),
    /// Another host won it (named here); nothing to do, nothing failed.
    Taken(String),
    /// The job's previous run is still going on the host named here, and its overlap policy
    /// (`skip`) holds fleet-wide: the slot does not run anywhere.
    Busy(String),
    /// The gate cannot decide (why): the slot does not run on this host, which is an error.
    Refused(String),
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Start(c) => write!(f, "Start(token {})", c.fencing_token()),
            Verdict::Taken(host) => write!(f, "Taken({host})"),
            Verdict::Busy(host) => write!(f, "Busy({host})"),
            Verdict::Refused(why) => write!(f, "Refused({why})"),
        }
    }
}

/// A slot this host won, held while its run goes.
pub trait Claimed: Send {
    /// A number that grows with every claim of the fleet: given to the run as
    /// `OPSD_FENCING_TOKEN`, so what it changes can refuse a writer with an older token.
    fn fencing_token(&self) -> u64;

    /// Records how the run ended (for the fleet's status), ending the claim's running marker.
    fn finish<'a>(self: Box<Self>, run: &'a Finished) -> BoxFuture<'a, ()>;
}
