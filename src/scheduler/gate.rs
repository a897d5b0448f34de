//! The slot gate: what the runner asks, before a fleet job's slot starts, whether this host may
//! start it. The scheduler knows only this contract; who answers (etcd claims, `crate::fleet`)
//! is plugged in by the daemon. A gate decides once per slot: exactly one host of a fleet gets
//! [`Verdict::Start`] for a given (job, slot), the others [`Verdict::Taken`]; a gate that cannot
//! tell (its coordination store unreachable, the clock untrustworthy) answers
//! [`Verdict::Refused`], and the slot does not run here: the gate fails closed.
//!
//! The gate may also hand the scheduler a slot whose claim it already holds (a [`Takeover`]:
//! the retry of a run lost on another host), which the scheduler runs as any scheduled run of
//! that job; for that it learns the fleet jobs of the configuration in force.

use super::execute::Finished;
use crate::config::JobConfig;
use crate::jobs::kind::BoxFuture;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Decides which host of a fleet starts each slot of a fleet job.
pub trait SlotGate: Send + Sync + std::fmt::Debug {
    /// Whether this host may start `job`'s run for `slot` (the instant it is scheduled for,
    /// the same on every host); called once per slot, off the precise alarm.
    fn claim<'a>(&'a self, job: &'a JobConfig, slot: DateTime<Utc>) -> BoxFuture<'a, Verdict>;

    /// The fleet jobs of the configuration in force, given when the gate is put in force and
    /// after every reload.
    fn set_jobs(&self, jobs: Vec<Arc<JobConfig>>);

    /// Where to send the slots this host takes over, for the scheduler to run.
    fn offer_takeovers(&self, to: Takeovers);
}

/// A slot of `job` whose claim this host already holds, to run as a scheduled run of `slot`.
pub struct Takeover {
    /// The job's name.
    pub job: String,
    /// The slot.
    pub slot: DateTime<Utc>,
    /// The claim held, which the run's end is reported to.
    pub claim: Box<dyn Claimed>,
}

/// Where a gate sends its [`Takeover`]s.
pub type Takeovers = tokio::sync::mpsc::UnboundedSender<Takeover>;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Dispatcher, DispatcherOptions};
    use crate::scheduler::Scheduler;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A gate that takes `delay` to answer, starting every slot, and notes the slots asked.
    #[derive(Debug, Default)]
    struct SlowGate {
        delay: Duration,
        asked: Mutex<Vec<i64>>,
    }

    /// A won slot that records nothing.
    struct Won;

    impl Claimed for Won {
        fn fencing_token(&self) -> u64 {
            1
        }
        fn finish<'a>(self: Box<Self>, _run: &'a Finished) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
    }

    impl SlotGate for SlowGate {
        fn claim<'a>(&'a self, _job: &'a JobConfig, slot: DateTime<Utc>) -> BoxFuture<'a, Verdict> {
            Box::pin(async move {
                self.asked.lock().unwrap().push(slot.timestamp());
                tokio::time::sleep(self.delay).await;
                Verdict::Start(Box::new(Won))
            })
        }
        fn set_jobs(&self, _jobs: Vec<Arc<JobConfig>>) {}
        fn offer_takeovers(&self, _to: Takeovers) {}
    }

    /// A claim slower than the job's period (etcd electing a leader) must not make this host
    /// skip the next slot locally: every slot is put to the gate, which decides fleet-wide.
    /// (Before, the slot in flight counted as a run going, and `overlap = "skip"` dropped the
    /// next one on every host at once: a slot lost without a word at error.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_claim_does_not_make_this_host_skip_the_next_slot() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = "[fleet]\netcd = [\"http://127.0.0.1:9\"]\n[jobs.f]\ntype = \"command\"\n\
                    schedule = \"@every 1s\"\nscope = \"fleet\"\ncommand = \"true\"\n";
        let config = crate::config::parse(&dir.path().join("jobs.toml"), jobs).unwrap();
        let alerts = Dispatcher::new(&config.alerts, DispatcherOptions::default()).unwrap();
        let sched = Scheduler::start(
            config,
            dir.path().join("state"),
            alerts,
            Arc::new(super::super::NoRecorder),
        )
        .unwrap();
        let gate = Arc::new(SlowGate {
            delay: Duration::from_millis(1500),
            ..SlowGate::default()
        });
        sched.set_gate(Some(gate.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while gate.asked.lock().unwrap().len() < 5 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let asked = gate.asked.lock().unwrap().clone();
        assert!(asked.len() >= 5, "slots asked: {asked:?}");
        assert!(
            asked.windows(2).all(|w| w[1] - w[0] == 1),
            "slots skipped before the gate was asked: {asked:?}"
        );
        sched.shutdown(Duration::from_secs(5)).await;
    }
}
