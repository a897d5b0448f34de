//! Where the fleet keeps things in etcd, under `[fleet].prefix` (`/opsd` below): one function
//! per key, so the layout is read in one place (and documented in docs/fleet.md).
//!
//! - `/opsd/slots/JOB/SLOT`: the claim of one slot (SLOT in Unix seconds), created once by
//!   the host that won it; its create revision is the run's fencing token. On a claims lease.
//! - `/opsd/open/JOB/SLOT`: a claim whose result is not written yet. On the claims lease.
//! - `/opsd/running/JOB/SLOT`: the run going now, on its host's kept-alive lease: it vanishes
//!   when the host does, which makes an open claim without it a lost run.
//! - `/opsd/results/JOB/SLOT`: how the slot's run ended. On the claims lease.
//! - `/opsd/last/JOB`: the job's latest result, for `opsd fleet status`. No lease.
//! - `/opsd/hosts/HOST`: a host of the fleet (version, since, last seen), on its lease.

use chrono::{DateTime, Utc};

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` (no trailing `/`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The claim of `job`'s `slot`.
    pub fn slot(&self, job: &str, slot: DateTime<Utc>) -> String {
        format!("{}/slots/{job}/{}", self.prefix, slot.timestamp())
    }

    /// The open-claim marker of `job`'s `slot`.
    pub fn open(&self, job: &str, slot: DateTime<Utc>) -> String {
        format!("{}/open/{job}/{}", self.prefix, slot.timestamp())
    }

    /// Every open claim.
    pub fn open_all(&self) -> String {
        format!("{}/open/", self.prefix)
    }

    /// The running marker of `job`'s `slot`.
    pub fn running(&self, job: &str, slot: DateTime<Utc>) -> String {
        format!("{}/running/{job}/{}", self.prefix, slot.timestamp())
    }

    /// The running markers of `job`.
    pub fn running_of(&self, job: &str) -> String {
        format!("{}/running/{job}/", self.prefix)
    }

    /// Every running marker.
    pub fn running_all(&self) -> String {
        format!("{}/running/", self.prefix)
    }

    /// The result of `job`'s `slot`.
    pub fn result(&self, job: &str, slot: DateTime<Utc>) -> String {
        format!("{}/results/{job}/{}", self.prefix, slot.timestamp())
    }

    /// `job`'s latest result.
    pub fn last(&self, job: &str) -> String {
        format!("{}/last/{job}", self.prefix)
    }

    /// Every job's latest result.
    pub fn last_all(&self) -> String {
        format!("{}/last/", self.prefix)
    }

    /// The registration of `host`.
    pub fn host(&self, host: &str) -> String {
        format!("{}/hosts/{host}", self.prefix)
    }

    /// Every registered host.
    pub fn hosts(&self) -> String {
        format!("{}/hosts/", self.prefix)
    }

    /// The (job, slot) of an `open/` or `running/` key under this prefix.
    pub fn job_slot(&self, key: &str) -> Option<(String, DateTime<Utc>)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let mut parts = rest.splitn(3, '/');
        let (_, job, slot) = (parts.next()?, parts.next()?, parts.next()?);
        let slot = DateTime::from_timestamp(slot.parse().ok()?, 0)?;
        Some((job.to_string(), slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_key_names_the_job_and_the_unix_second_and_reads_back() {
        let keys = Keys::new("/opsd/");
        let slot = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            keys.slot("dev-stop", slot),
            "/opsd/slots/dev-stop/1700000000"
        );
        assert_eq!(
            keys.job_slot(&keys.open("dev-stop", slot)),
            Some(("dev-stop".to_string(), slot))
        );
        assert_eq!(keys.job_slot("/other/open/a/1"), None);
    }
}
