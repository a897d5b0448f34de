//! The per-job snapshot `opsd status` prints, like `systemctl list-timers`, and [`Changes`]:
//! the same snapshots of only the jobs changed since a [`generation`](crate::generation),
//! which is what a metrics scrape asks for.

use super::job_state::RunCounts;
use super::{JobState, LastRun};
use crate::config::JobConfig;
use crate::jobs::LiveStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One job as `opsd status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its `type`.
    pub job_type: String,
    /// Its schedule expression, `None` for continuous jobs.
    pub schedule: Option<String>,
    /// The IANA zone its schedule is evaluated in.
    pub timezone: Option<String>,
    /// False when `enabled = false`.
    pub enabled: bool,
    /// When it fires next.
    pub next: Option<DateTime<Utc>>,
    /// Its last finished run.
    pub last: Option<LastRun>,
    /// When its last successful run started.
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
    /// How many runs ended each way since the daemon started (or the job was redefined).
    #[serde(default)]
    pub runs: RunCounts,
    /// How many runs are going now.
    pub running: usize,
    /// Why the job's timer stopped, when it did: the job does not fire until it is changed.
    #[serde(default)]
    pub broken: Option<String>,
    /// What the run going now says about itself (continuous jobs), when it published anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStatus>,
}

impl JobStatus {
    /// Builds the snapshot of one job.
    pub fn new(config: &JobConfig, state: &JobState) -> Self {
        JobStatus {
            name: config.name.clone(),
            job_type: config.spec.type_name().to_string(),
            schedule: config.schedule.as_ref().map(ToString::to_string),
            timezone: config
                .schedule
                .as_ref()
                .map(|s| s.timezone().name().to_string()),
            enabled: config.enabled,
            next: state.next(),
            last: state.last(),
            last_success: state.last_success(),
            runs: state.counts(),
            running: state.running(),
            broken: state.broken(),
            live: state.live().get(),
        }
    }
}

/// The jobs changed since a generation: what a metrics scrape asks of the daemon's loop, so
/// that it copies out only those (the same [`JobStatus`] `opsd status` gets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The generation this answer is current to: the next ask gives it as its `since`.
    pub generation: u64,
    /// Every job's name, in `opsd status`'s order: a job not named is gone.
    pub names: Vec<String>,
    /// The jobs changed since the generation asked, in the same order as `names`.
    pub changed: Vec<JobStatus>,
}

impl Changes {
    /// The changes of `jobs` since generation `since`: each job as its configuration, its
    /// state and the generation its configuration was put in force (a job added or redefined
    /// by a reload counts as changed then). `since` 0 gives every job.
    pub fn since<'a>(
        since: u64,
        jobs: impl ExactSizeIterator<Item = (&'a JobConfig, &'a JobState, u64)>,
    ) -> Self {
        // Taken before any job is read: a change stamped after it is read again next time.
        let generation = crate::generation::current();
        let mut names = Vec::with_capacity(jobs.len());
        let mut changed = Vec::new();
        for (config, state, armed) in jobs {
            names.push(config.name.clone());
            if armed.max(state.changed()) > since {
                changed.push(JobStatus::new(config, state));
            }
        }
        Changes {
            generation,
            names,
            changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overlap;
    use std::sync::Arc;

    /// Command jobs named `names`, each with a fresh state armed at generation `armed`.
    fn jobs(names: &[&str], armed: u64) -> Vec<(Arc<JobConfig>, JobState, u64)> {
        let text: String = names
            .iter()
            .map(|n| {
                format!(
                    "[jobs.{n}]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\n"
                )
            })
            .collect();
        let cfg = crate::config::parse(std::path::Path::new("jobs.toml"), &text).expect("valid");
        cfg.jobs
            .values()
            .map(|j| (Arc::clone(j), JobState::default(), armed))
            .collect()
    }

    /// The changes of `set` since `since`.
    fn since(since: u64, set: &[(Arc<JobConfig>, JobState, u64)]) -> Changes {
        Changes::since(since, set.iter().map(|(c, s, a)| (&**c, s, *a)))
    }

    /// The names of the jobs `changes` gives as changed.
    fn changed(changes: &Changes) -> Vec<&str> {
        changes.changed.iter().map(|j| j.name.as_str()).collect()
    }

    #[test]
    fn only_the_jobs_changed_since_the_last_answer_are_copied_and_every_name_is_given() {
        let set = jobs(&["a", "b", "c"], crate::generation::next());
        let first = since(0, &set);
        assert_eq!(first.names, ["a", "b", "c"]);
        assert_eq!(
            changed(&first),
            ["a", "b", "c"],
            "the first ask gets every job"
        );
        let quiet = since(first.generation, &set);
        assert_eq!(quiet.names, ["a", "b", "c"]);
        assert!(quiet.changed.is_empty(), "{quiet:?}");
        assert!(quiet.generation >= first.generation);

        assert_eq!(
            set[1].1.admit(Overlap::Skip),
            super::super::job_state::Admission::Start
        );
        set[2].1.set_next(Some(Utc::now()));
        let after = since(quiet.generation, &set);
        assert_eq!(changed(&after), ["b", "c"]);
        assert_eq!(after.changed[0], JobStatus::new(&set[1].0, &set[1].1));
        assert_eq!(after.changed[0].running, 1);
        assert!(since(after.generation, &set).changed.is_empty());
    }

    #[test]
    fn every_change_status_shows_takes_a_generation_and_nothing_else_does() {
        let state = JobState::default();
        let mut was = state.changed();
        let mut changes = |what: &str, change: &dyn Fn(&JobState), shown: bool| {
            change(&state);
            let now = state.changed();
            assert_eq!(now > was, shown, "{what}: {was} -> {now}");
            assert!(now >= was, "{what}: generations only grow");
            was = now;
        };
        let next = Some(Utc::now());
        changes(
            "admit",
            &|s| {
                let _ = s.admit(Overlap::Queue);
            },
            true,
        );
        changes(
            "queue behind it",
            &|s| {
                let _ = s.admit(Overlap::Queue);
            },
            false,
        );
        changes(
            "skip a slot",
            &|s| {
                let _ = s.admit(Overlap::Skip);
            },
            true,
        );
        changes("next", &|s| s.set_next(next), true);
        changes("the same next", &|s| s.set_next(next), false);
        changes("broken", &|s| s.set_broken(Some("no".into())), true);
        changes("still broken", &|s| s.set_broken(Some("no".into())), false);
        changes(
            "gate refused",
            &|s| {
                let _ = s.gate_refused();
            },
            false,
        );
        changes(
            "a read",
            &|s| {
                let _ = JobStatus::new(&jobs(&["x"], 0)[0].0, s);
            },
            false,
        );
        changes("not started", &|s| s.not_started(), true);
        changes("started", &|s| s.start_unconditionally(), true);
        changes("overlap skip", &|s| s.skipped_by_overlap(), true);
        let live = crate::jobs::LiveStatus {
            updated: Utc::now(),
            summary: "1 file".into(),
            fields: Vec::new(),
            counts: Vec::new(),
        };
        changes("live published", &|s| s.live().publish(live.clone()), true);
    }

    #[test]
    fn a_job_redefined_by_a_reload_counts_as_changed_and_a_removed_one_is_not_named() {
        let set = jobs(&["a", "b"], crate::generation::next());
        let seen = since(0, &set).generation;
        // The reload: a redefined (armed anew, its state unchanged), b removed, c added.
        let reloaded = jobs(&["a", "c"], crate::generation::next());
        let after = since(seen, &reloaded);
        assert_eq!(after.names, ["a", "c"]);
        assert_eq!(changed(&after), ["a", "c"]);
        assert!(since(after.generation, &reloaded).changed.is_empty());
    }
}
