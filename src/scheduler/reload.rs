//! What a reload changes, decided from the two job lists alone before anything is touched: a
//! job whose definition is equal (the file it sits in aside) is kept with its timer and runs,
//! one whose definition differs is replaced, and the rest are added or removed. A replaced job
//! keeps what it remembers (its last run) only while its type stays the same.

use crate::config::JobConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// Jobs that are new.
    pub added: Vec<String>,
    /// Jobs whose definition changed.
    pub changed: Vec<String>,
    /// Jobs that are gone.
    pub removed: Vec<String>,
    /// How many jobs are exactly as before.
    pub unchanged: usize,
}

impl ReloadSummary {
    /// What replacing the jobs `old` by `new` changes; each list is in name order.
    pub fn between(
        old: &BTreeMap<String, Arc<JobConfig>>,
        new: &BTreeMap<String, Arc<JobConfig>>,
    ) -> Self {
        let mut summary = ReloadSummary {
            removed: old
                .keys()
                .filter(|name| !new.contains_key(*name))
                .cloned()
                .collect(),
            ..ReloadSummary::default()
        };
        for (name, job) in new {
            match old.get(name) {
                Some(before) if before == job => summary.unchanged += 1,
                Some(_) => summary.changed.push(name.clone()),
                None => summary.added.push(name.clone()),
            }
        }
        summary
    }
}

/// Whether a job replaced from `old` to `new` keeps its live state (its last run): a job given
/// another type starts afresh, as a new one would.
pub fn keeps_state(old: &JobConfig, new: &JobConfig) -> bool {
    old.spec.type_name() == new.spec.type_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The jobs of a job file holding `text`.
    fn jobs(text: &str) -> BTreeMap<String, Arc<JobConfig>> {
        crate::config::parse(Path::new("/etc/opsd/jobs.toml"), text)
            .unwrap_or_else(|e| panic!("the test's job file is valid: {e}\n{text}"))
            .jobs
    }

    /// A `command` job named `name` running `command` daily.
    fn job(name: &str, command: &str) -> String {
        format!("[jobs.{name}]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = {command:?}\n")
    }

    #[test]
    fn jobs_are_kept_replaced_added_and_removed_by_name_and_definition() {
        let old = jobs(&[job("a", "true"), job("b", "true"), job("c", "true")].concat());
        let new = jobs(&[job("b", "true"), job("c", "false"), job("d", "true")].concat());
        assert_eq!(
            ReloadSummary::between(&old, &new),
            ReloadSummary {
                added: vec!["d".into()],
                changed: vec!["c".into()],
                removed: vec!["a".into()],
                unchanged: 1,
            }
        );
    }

    #[test]
    fn the_same_jobs_change_nothing_and_every_list_is_in_name_order() {
        let old = jobs(&[job("m", "true"), job("z", "true")].concat());
        assert_eq!(
            ReloadSummary::between(&old, &old),
            ReloadSummary {
                unchanged: 2,
                ..ReloadSummary::default()
            }
        );
        let none = BTreeMap::new();
        let gone = ReloadSummary::between(&old, &none);
        assert_eq!(
            (gone.removed, gone.unchanged),
            (vec!["m".into(), "z".into()], 0)
        );
        let back = ReloadSummary::between(&none, &old);
        assert_eq!(back.added, ["m", "z"]);
    }

    #[test]
    fn any_key_of_a_definition_changes_it() {
        let old = jobs(&job("a", "true"));
        for extra in [
            "timeout = \"1h\"",
            "enabled = false",
            "overlap = \"queue\"",
            "jitter = \"1s\"",
            "catch_up = \"once\"",
            "kill_grace = \"3s\"",
        ] {
            let new = jobs(&format!("{}{extra}\n", job("a", "true")));
            let summary = ReloadSummary::between(&old, &new);
            assert_eq!(summary.changed, ["a"], "{extra}");
        }
        let moved = crate::config::parse(Path::new("/etc/opsd/jobs.d/a.toml"), &job("a", "true"))
            .expect("valid")
            .jobs;
        assert_eq!(ReloadSummary::between(&old, &moved).unchanged, 1);
    }

    #[test]
    fn a_replaced_job_keeps_its_state_only_while_its_type_stays() {
        let before = jobs(&job("a", "true"));
        let edited = jobs(&job("a", "false"));
        assert!(keeps_state(&before["a"], &edited["a"]));
        let retyped = jobs(
            "[jobs.a]\ntype = \"apache_log\"\npaths = [\"/var/log/apache2/error.log\"]\napache_bin = \"/bin/false\"\n",
        );
        assert!(!keeps_state(&before["a"], &retyped["a"]));
    }
}
