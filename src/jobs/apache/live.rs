//! What a running `apache_log` watch shows in `opsd status`: the files it follows now, the
//! lines it read, the alerts it raised, held back (cooldown) and dropped, and the last alert.
//! Kept here, rendered to labelled values for the job-agnostic [`LiveSlot`].

use crate::alert::SinkStats;
use crate::apache::rules::{LogEvent, Rule};
use crate::jobs::{LiveCount, LiveSlot, LiveStatus};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// The figures of one watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFigures {
    /// The paths followed now (rotated-away files still being read are not counted).
    pub following: Vec<String>,
    /// Complete lines read since the watch started.
    pub lines: u64,
    /// Events raised as alerts (logged, and queued for the job's sinks when it names any).
    pub alerts: u64,
    /// Of `alerts`, how many each rule raised.
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Matches a rule's cooldown held back (each reported in the next alert of its rule).
    pub suppressed: u64,
    /// Of `suppressed`, how many each rule held back.
    pub suppressed_by_rule: BTreeMap<String, u64>,
    /// Events dropped because they came faster than they could be logged and sent.
    pub dropped: u64,
    /// When the last alert was raised, and by which rule.
    pub last_alert: Option<(DateTime<Utc>, String)>,
    /// How many sinks the job's alerts go to (0: they are only logged).
    pub sinks: usize,
    /// The counters of the job's sinks (shared with the other jobs that use them).
    pub sink_stats: Vec<(String, SinkStats)>,
}

impl WatchFigures {
    /// The figures as `opsd status` shows them: a short summary and every labelled value.
    pub fn render(&self, updated: DateTime<Utc>) -> LiveStatus {
        let mut summary = format!(
            "{}, {}, {}",
            counted(self.following.len() as u64, "file"),
            counted(self.lines, "line"),
            counted(self.alerts, "alert")
        );
        if self.suppressed > 0 {
            summary.push_str(&format!(", {} held back", self.suppressed));
        }
        if self.dropped > 0 {
            summary.push_str(&format!(", {} DROPPED", self.dropped));
        }
        let following = if self.following.is_empty() {
            "no file (the globs match none now; a file that appears is followed within a second)"
                .to_string()
        } else {
            self.following.join(", ")
        };
        let alerts = if self.sinks == 0 {
            format!("{} (logged only: the job names no alert sink)", self.alerts)
        } else {
            self.alerts.to_string()
        };
        let last_alert = match &self.last_alert {
            Some((at, rule)) => format!("{} ({rule})", at.format("%Y-%m-%d %H:%M:%S UTC")),
            None => "none yet".to_string(),
        };
        let sinks = self
            .sink_stats
            .iter()
            .map(|(name, s)| {
                format!(
                    "{name}: {} delivered, {} failed, {} dropped, {} queued",
                    s.delivered, s.failed, s.dropped, s.queued
                )
            })
            .collect::<Vec<_>>();
        let mut fields = vec![
            ("following", following),
            ("lines read", self.lines.to_string()),
            ("alerts sent", alerts),
            ("held back by cooldown", self.suppressed.to_string()),
            ("alerts dropped", self.dropped.to_string()),
            ("last alert", last_alert),
        ];
        if !sinks.is_empty() {
            fields.push(("sinks (all jobs)", sinks.join("; ")));
        }
        LiveStatus {
            updated,
            counts: self.counts(),
            summary,
            fields: fields
                .into_iter()
                .map(|(label, value)| (label.to_string(), value))
                .collect(),
        }
    }
}

impl WatchFigures {
    /// The figures that are numbers, for the metrics.
    fn counts(&self) -> Vec<LiveCount> {
        let count = |name: &str, counter, label: Option<(&str, &str)>, value| LiveCount {
            name: name.into(),
            counter,
            label: label.map(|(k, v)| (k.into(), v.into())),
            value,
        };
        let mut counts = vec![
            count("lines_read", true, None, self.lines),
            count("files_followed", false, None, self.following.len() as u64),
            count("alerts_dropped", true, None, self.dropped),
        ];
        for (rule, n) in &self.alerts_by_rule {
            counts.push(count("alerts_sent", true, Some(("rule", rule)), *n));
        }
        for (rule, n) in &self.suppressed_by_rule {
            counts.push(count("alerts_suppressed", true, Some(("rule", rule)), *n));
        }
        counts
    }
}

/// `1 line`, `2 lines`.
fn counted(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Keeps a watch's figures and publishes them to its slot whenever they change.
#[derive(Debug)]
pub struct Publisher {
    figures: Mutex<WatchFigures>,
    slot: LiveSlot,
}

impl Publisher {
    /// A publisher to `slot` for a job whose alerts go to `sinks` sinks, publishing at once
    /// zero alerts sent and suppressed for each of `rules` (so that every rule's series exist
    /// from the job's start).
    pub fn new(slot: LiveSlot, sinks: usize, rules: &[String]) -> Self {
        let zeros = || {
            rules
                .iter()
                .map(|r| (r.clone(), 0))
                .collect::<BTreeMap<_, _>>()
        };
        let figures = WatchFigures {
            sinks,
            alerts_by_rule: zeros(),
            suppressed_by_rule: zeros(),
            ..WatchFigures::default()
        };
        slot.publish(figures.render(Utc::now()));
        Publisher {
            figures: Mutex::new(figures),
            slot,
        }
    }

    /// Applies `change` to the figures and publishes them when it changed anything.
    fn update(&self, change: impl FnOnce(&mut WatchFigures)) {
        let mut figures = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        let before = figures.clone();
        change(&mut figures);
        if *figures != before || self.slot.get().is_none() {
            self.slot.publish(figures.render(Utc::now()));
        }
    }

    /// Notes where the watch is after one pass (with how many matches each of `rules` held
    /// back, in `rules`' order), and how the job's sinks are doing.
    pub fn pass(
        &self,
        following: Vec<String>,
        stats: &crate::apache::watch::WatchStats,
        suppressed_by_rule: (&[Rule], &[u64]),
        sink_stats: Vec<(String, SinkStats)>,
    ) {
        self.update(|f| {
            f.following = following;
            f.lines = stats.lines;
            f.suppressed = stats.suppressed;
            let (rules, held) = suppressed_by_rule;
            f.suppressed_by_rule.values_mut().for_each(|n| *n = 0);
            for (rule, n) in rules.iter().zip(held) {
                *f.suppressed_by_rule.entry(rule.id.clone()).or_default() += n;
            }
            f.dropped = stats.dropped;
            f.sink_stats = sink_stats;
        });
    }

    /// Notes an event raised as an alert.
    pub fn alert(&self, ev: &LogEvent) {
        self.update(|f| {
            f.alerts += 1;
            *f.alerts_by_rule.entry(ev.rule.clone()).or_default() += 1;
            f.last_alert = Some((Utc::now(), ev.rule.clone()));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_short_and_every_figure_is_labelled() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:02:03Z")
            .unwrap()
            .with_timezone(&Utc);
        let figures = WatchFigures {
            following: vec!["/var/log/apache2/error.log".into()],
            lines: 1234,
            alerts: 3,
            alerts_by_rule: [("child_crash".to_string(), 3)].into(),
            suppressed: 7,
            suppressed_by_rule: [("child_crash".to_string(), 7)].into(),
            dropped: 0,
            last_alert: Some((at, "child_crash".into())),
            sinks: 1,
            sink_stats: vec![(
                "hook".into(),
                SinkStats {
                    delivered: 2,
                    failed: 1,
                    ..SinkStats::default()
                },
            )],
        };
        let live = figures.render(at);
        assert_eq!(live.summary, "1 file, 1234 lines, 3 alerts, 7 held back");
        let count = |name: &str| live.counts.iter().find(|c| c.name == name).unwrap();
        assert_eq!(count("lines_read").value, 1234);
        assert_eq!(count("files_followed").value, 1);
        assert!(!count("files_followed").counter);
        let sent = count("alerts_sent");
        assert_eq!(sent.label, Some(("rule".into(), "child_crash".into())));
        assert_eq!(sent.value, 3);
        let held = count("alerts_suppressed");
        assert_eq!(held.label, Some(("rule".into(), "child_crash".into())));
        assert_eq!(held.value, 7);
        let get = |label: &str| {
            live.fields
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {label:?} in {:?}", live.fields))
        };
        assert_eq!(get("following"), "/var/log/apache2/error.log");
        assert_eq!(get("lines read"), "1234");
        assert_eq!(get("alerts sent"), "3");
        assert_eq!(get("held back by cooldown"), "7");
        assert_eq!(get("alerts dropped"), "0");
        assert_eq!(get("last alert"), "2026-12-01 10:02:03 UTC (child_crash)");
        assert_eq!(
            get("sinks (all jobs)"),
            "hook: 2 delivered, 1 failed, 0 dropped, 0 queued"
        );
    }

    #[test]
    fn every_rule_is_published_at_zero_from_the_start() {
        let slot = LiveSlot::default();
        let _publisher = Publisher::new(slot.clone(), 0, &["a".into(), "b".into()]);
        let live = slot.get().expect("published at once");
        let mut zeros: Vec<_> = live
            .counts
            .iter()
            .filter_map(|c| Some((c.name.as_str(), c.label.as_ref()?.1.as_str(), c.value)))
            .collect();
        zeros.sort_unstable();
        assert_eq!(
            zeros,
            [
                ("alerts_sent", "a", 0),
                ("alerts_sent", "b", 0),
                ("alerts_suppressed", "a", 0),
                ("alerts_suppressed", "b", 0)
            ]
        );
    }

    #[test]
    fn no_sink_and_no_file_are_said_rather_than_shown_as_zero() {
        let live = WatchFigures::default().render(Utc::now());
        assert_eq!(live.summary, "0 files, 0 lines, 0 alerts");
        assert!(live.fields[0].1.starts_with("no file"), "{:?}", live.fields);
        assert!(
            live.fields[2].1.contains("logged only"),
            "{:?}",
            live.fields
        );
        assert_eq!(live.fields[5].1, "none yet");
    }
}
