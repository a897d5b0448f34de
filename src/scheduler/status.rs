//! The per-job snapshot `opsd status` prints, like `systemctl list-timers`, and [`Changes`]:
//! the figures of the same job states, of only the jobs changed since a
//! [`generation`](crate::generation), which is what a metrics scrape asks for.

use super::job_state::{Figures, RunCounts};
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

/// A job of the set as a scrape names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobName {
    /// The job's name.
    pub name: String,
    /// Its `type`.
    pub job_type: String,
}

/// What the metrics show of one changed job: the figures of its [`JobStatus`] that are
/// numbers and times, read from the same state, and where it stands in the job order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFigures {
    /// Its place in `opsd status`'s order: in [`Changes::jobs`] when given, else in the jobs
    /// of the answer before (the set has not changed since).
    pub index: usize,
    /// Its run counts, last run, last success, next run and runs going now.
    pub figures: Figures,
    /// What the run going now says about itself (continuous jobs), when it published anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStatus>,
}

/// The jobs changed since a generation: what a metrics scrape asks of the daemon's loop, so
/// that it copies out only those, and only their figures (read from the same job states as
/// `opsd status`'s [`JobStatus`]). The jobs' names are given only when the set of jobs changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The generation this answer is current to: the next ask gives it as its `since`.
    pub generation: u64,
    /// Every job's name and type, in `opsd status`'s order (a job not named is gone), when
    /// the set of jobs changed since the generation asked (a reload added, removed or
    /// redefined one; always for generation 0); `None`: the same jobs as then, in that order.
    pub jobs: Option<Vec<JobName>>,
    /// The jobs changed since the generation asked, in the jobs' order.
    pub changed: Vec<JobFigures>,
}

impl Changes {
    /// The changes of `jobs` since generation `since`: each job as its configuration, its
    /// state and the generation its configuration was put in force (a job added or redefined
    /// by a reload counts as changed then); `set_changed` is the generation of the last change
    /// of the set (a job armed or removed). `since` 0 gives every job.
    pub fn since<'a>(
        since: u64,
        set_changed: u64,
        jobs: impl ExactSizeIterator<Item = (&'a JobConfig, &'a JobState, u64)>,
    ) -> Self {
        // Taken before any job is read: a change stamped after it is read again next time.
        let generation = crate::generation::current();
        let mut names = (since == 0 || set_changed > since).then(|| Vec::with_capacity(jobs.len()));
        let mut changed = Vec::new();
        for (index, (config, state, armed)) in jobs.enumerate() {
            if let Some(names) = &mut names {
                names.push(JobName {
                    name: config.name.clone(),
                    job_type: config.spec.type_name().to_string(),
                });
            }
            if armed.max(state.changed()) > since {
                changed.push(JobFigures {
                    index,
                    figures: state.figures(),
                    live: state.live().get(),
                });
            }
        }
        Changes {
            generation,
            jobs: names,
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

    /// The changes of `set` since `since`, the set last changed at `set_changed`.
    fn since(since: u64, set_changed: u64, set: &[(Arc<JobConfig>, JobState, u64)]) -> Changes {
        Changes::since(
            since,
            set_changed,
            set.iter().map(|(c, s, a)| (&**c, s, *a)),
        )
    }

    /// The names of the jobs `changes` names, if it names them (the set changed).
    fn names(changes: &Changes) -> Option<Vec<&str>> {
        let jobs = changes.jobs.as_ref()?;
        Some(jobs.iter().map(|j| j.name.as_str()).collect())
    }

    /// The places of the jobs `changes` gives as changed.
    fn changed(changes: &Changes) -> Vec<usize> {
        changes.changed.iter().map(|j| j.index).collect()
    }

    /// Asserts that `job`'s figures are what `opsd status` shows of the same state.
    fn agree(job: &JobFigures, config: &JobConfig, state: &JobState) {
        let status = JobStatus::new(config, state);
        let f = &job.figures;
        assert_eq!(f.runs, status.runs);
        assert_eq!(f.last_started, status.last.as_ref().map(|l| l.started));
        assert_eq!(f.last_success, status.last_success);
        assert_eq!(f.next, status.next);
        assert_eq!(f.running, status.running);
        assert_eq!(job.live, status.live);
    }

    #[test]
    fn only_the_jobs_changed_since_the_last_answer_are_copied_and_the_names_once() {
        let armed = crate::generation::next();
        let set = jobs(&["a", "b", "c"], armed);
        let first = since(0, armed, &set);
        assert_eq!(names(&first), Some(vec!["a", "b", "c"]));
        assert_eq!(first.jobs.as_ref().unwrap()[0].job_type, "command");
        assert_eq!(changed(&first), [0, 1, 2], "the first ask gets every job");
        let quiet = since(first.generation, armed, &set);
        assert_eq!(quiet.jobs, None, "the same jobs are not named again");
        assert!(quiet.changed.is_empty(), "{quiet:?}");
        assert!(quiet.generation >= first.generation);

        assert_eq!(
            set[1].1.admit(Overlap::Skip),
            super::super::job_state::Admission::Start
        );
        set[2].1.set_next(Some(Utc::now()));
        let after = since(quiet.generation, armed, &set);
        assert_eq!(after.jobs, None);
        assert_eq!(changed(&after), [1, 2]);
        agree(&after.changed[0], &set[1].0, &set[1].1);
        agree(&after.changed[1], &set[2].0, &set[2].1);
        assert_eq!(after.changed[0].figures.running, 1);
        assert!(since(after.generation, armed, &set).changed.is_empty());
    }

    #[test]
    fn the_figures_are_what_status_shows_of_the_same_state() {
        let set = jobs(&["a"], crate::generation::next());
        let (config, state, _) = &set[0];
        let figures = |s: &JobState| JobFigures {
            index: 0,
            figures: s.figures(),
            live: s.live().get(),
        };
        agree(&figures(state), config, state);
        assert_eq!(
            state.admit(Overlap::Skip),
            super::super::job_state::Admission::Start
        );
        let started = Utc::now();
        state.set_next(Some(started + chrono::TimeDelta::seconds(60)));
        state.live().publish(crate::jobs::LiveStatus {
            updated: started,
            summary: "1 file".into(),
            fields: Vec::new(),
            counts: Vec::new(),
        });
        agree(&figures(state), config, state);
        state.finish(&super::super::Finished {
            run_id: "1".into(),
            started,
            duration: std::time::Duration::from_millis(5),
            report: crate::jobs::RunReport {
                outcome: crate::jobs::Outcome::Success,
                exit_code: Some(0),
                signal: None,
                detail: Some("done".into()),
                output: vec!["done".into()],
            },
        });
        let after = figures(state);
        agree(&after, config, state);
        assert_eq!(after.figures.last_started, Some(started));
        assert_eq!(after.figures.last_success, Some(started));
        assert_eq!(after.figures.runs.success, 1);
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
                let _ = s.figures();
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
    fn a_reload_names_the_jobs_again_and_its_redefined_jobs_count_as_changed() {
        let armed = crate::generation::next();
        let set = jobs(&["a", "b"], armed);
        let seen = since(0, armed, &set).generation;
        // The reload: a redefined (armed anew, its state unchanged), b removed, c added.
        let rearmed = crate::generation::next();
        let reloaded = jobs(&["a", "c"], rearmed);
        let after = since(seen, rearmed, &reloaded);
        assert_eq!(names(&after), Some(vec!["a", "c"]));
        assert_eq!(changed(&after), [0, 1]);
        let quiet = since(after.generation, rearmed, &reloaded);
        assert!(
            quiet.changed.is_empty() && quiet.jobs.is_none(),
            "{quiet:?}"
        );
        // A reload that only removes a job changes no job, but the set: named again.
        let removed = crate::generation::next();
        let after = since(quiet.generation, removed, &reloaded[1..]);
        assert_eq!(names(&after), Some(vec!["c"]));
        assert!(after.changed.is_empty(), "{after:?}");
    }
}
