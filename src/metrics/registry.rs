//! The metric families and their rendering. What `opsd status` shows (runs by outcome, last
//! run, last success, next run, running now) is rendered from the job states the daemon's loop
//! reads (the same states as `opsd status`'s [`JobStatus`](crate::scheduler::JobStatus)),
//! never counted twice; durations, lateness and reloads are kept here. A copy of every job's
//! figures is kept between scrapes, and a scrape asks the loop only for the jobs changed since
//! the generation of its last answer ([`Changes`]), with every job's name when the set of jobs
//! changed since: every job named gets all its series (a job that never ran shows zeros) and a
//! job a reload removed loses them, so the series follow the configuration. A job's series are
//! written once per change and kept (`job_text.rs`): a scrape re-writes only the jobs whose
//! figures changed since the last one.

use super::answer::Answer;
use super::job_text::{seconds, Kept, Observed, FAMILIES};
use super::Source;
use crate::alert::SinkStats;
use crate::config::JobConfig;
use crate::scheduler::{Changes, Finished, RunRecorder, Trigger};
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// What a render shows besides what the metrics keep themselves.
#[derive(Debug, Default)]
struct Snapshot {
    /// Every job's figures and kept text, in `opsd status`'s order at the last scrape.
    jobs: Vec<Kept>,
    /// The alert sinks' counters by sink name.
    sinks: BTreeMap<String, SinkStats>,
}

/// The label of a reload's counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `ok` or `rejected`.
    result: &'static str,
}

/// Every metric family, the registry that renders the daemon's and the sinks', and the jobs'
/// kept text.
#[derive(Debug)]
pub struct Metrics {
    /// Renders the daemon's families and the snapshot's live and sink series.
    registry: Registry,
    /// Configuration reloads by result.
    reloads: Family<ReloadLabels, Counter>,
    /// When the configuration in force was loaded (start or reload).
    last_reload: Gauge<f64, AtomicU64>,
    /// Each job's duration and lateness histograms, by job name.
    observed: Mutex<HashMap<String, Observed>>,
    /// The last observation's generation (each observation takes the next one).
    generation: AtomicU64,
    /// Each per-job family's `# HELP` and `# TYPE` lines, in [`FAMILIES`]' order.
    headers: Vec<Arc<String>>,
    /// Every job's figures and text as the last render had them, kept for the next (which is
    /// given only the jobs changed since), and the sinks' counters; the registry's collector
    /// renders the live and sink series from it.
    snapshot: Arc<Mutex<Snapshot>>,
    /// Held for a whole render: one at a time, so each renders its own snapshot.
    rendering: Mutex<()>,
    /// The generation of the loop's last answer, held for a whole scrape: one asks at a time,
    /// so each asks for what changed since the one before rendered.
    scraping: tokio::sync::Mutex<u64>,
    /// Woken when a run ends or the configuration changes (the textfile writer waits on it).
    changed: Notify,
}

impl Metrics {
    /// The families of a daemon started at `started`, all at zero.
    pub fn new(started: DateTime<Utc>) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "opsd_build",
            "opsd's version; always 1",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "opsd_start_time_seconds",
            "When the daemon started, in seconds since the epoch",
            ConstGauge::new(seconds(started)),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        for result in ["ok", "rejected"] {
            drop(reloads.get_or_create(&ReloadLabels { result }));
        }
        registry.register(
            "opsd_config_reloads",
            "Configuration reloads by result: ok (in force) or rejected (the previous one kept)",
            reloads.clone(),
        );
        let last_reload = Gauge::<f64, AtomicU64>::default();
        last_reload.set(seconds(started));
        registry.register(
            "opsd_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded, in seconds since the epoch",
            last_reload.clone(),
        );
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(FromSnapshot(Arc::clone(&snapshot))));
        Metrics {
            registry,
            reloads,
            last_reload,
            observed: Mutex::default(),
            generation: AtomicU64::new(0),
            headers: FAMILIES
                .iter()
                .map(|(name, help, kind)| {
                    Arc::new(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"))
                })
                .collect(),
            snapshot,
            rendering: Mutex::new(()),
            scraping: tokio::sync::Mutex::new(0),
            changed: Notify::new(),
        }
    }

    /// Counts a reload, `accepted` or rejected; an accepted one is the configuration in force
    /// from now on.
    pub fn reloaded(&self, accepted: bool) {
        let result = if accepted { "ok" } else { "rejected" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
        if accepted {
            self.last_reload.set(seconds(Utc::now()));
        }
        self.changed.notify_one();
    }

    /// Waits until a run ends or the configuration changes (a change since the last wait
    /// counts, so none is missed).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// A scrape: asks `source` for the jobs changed since the last scrape and renders every
    /// metric; `None` once the daemon's loop has stopped.
    pub async fn scrape(&self, source: &Source) -> Option<Answer> {
        let mut seen = self.scraping.lock().await;
        let (changes, sinks) = source.changes(*seen).await?;
        *seen = changes.generation;
        Some(self.render(changes, sinks))
    }

    /// Every metric in the Prometheus text format (0.0.4): the jobs as the last render had
    /// them with `changes` applied (the jobs it does not name are gone), the sinks as `sinks`.
    /// The jobs' series are the kept text, shared with the answer.
    pub fn render(&self, changes: Changes, sinks: BTreeMap<String, SinkStats>) -> Answer {
        let _one_at_a_time = lock(&self.rendering);
        let mut answer;
        {
            let mut snapshot = lock(&self.snapshot);
            answer = Answer::with_capacity(FAMILIES.len() * (snapshot.jobs.len() + 1) + 1);
            self.encode_jobs(&mut snapshot.jobs, changes, &mut answer);
            snapshot.sinks = sinks;
        }
        let mut rest = String::new();
        // Writing to a String cannot fail, nor can the encoders on their own.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut rest, &self.registry);
        answer.push_text(rest);
        answer
    }

    /// Applies `changes` to the kept `jobs` (they become the jobs `changes` names when it
    /// names them, in its order; a changed job takes its new figures), re-writes the kept text
    /// of the jobs whose figures changed, forgets the histograms of the jobs that are gone,
    /// and appends the per-job families to `answer`.
    fn encode_jobs(&self, jobs: &mut Vec<Kept>, changes: Changes, answer: &mut Answer) {
        let mut observed = lock(&self.observed);
        if let Some(set) = changes.jobs {
            // The set of jobs changed (a reload): each kept copy is placed by name; a job
            // added or given another type starts anew.
            let mut was: HashMap<String, Kept> =
                jobs.drain(..).map(|k| (k.name.clone(), k)).collect();
            jobs.extend(set.into_iter().map(|j| match was.remove(&j.name) {
                Some(k) if k.job_type == j.job_type => k,
                _ => Kept::new(j),
            }));
            let now: HashMap<&str, &str> = jobs
                .iter()
                .map(|k| (k.name.as_str(), k.job_type.as_str()))
                .collect();
            observed.retain(|name, o| now.get(name.as_str()) == Some(&o.job_type.as_str()));
        }
        for job in changes.changed {
            // A place past the jobs cannot be rendered (the loop gives none): left out.
            if let Some(k) = jobs.get_mut(job.index) {
                k.set(job.figures, job.live);
            }
        }
        for k in jobs.iter_mut() {
            let of_job = observed.get(&k.name).filter(|o| o.job_type == k.job_type);
            k.update(of_job);
        }
        for (i, header) in self.headers.iter().enumerate() {
            answer.push(header, 0..header.len());
            for k in jobs.iter() {
                k.add_family(i, answer);
            }
        }
    }
}

impl RunRecorder for Metrics {
    fn run_ended(&self, job: &JobConfig, trigger: Trigger, finished: &Finished) {
        let job_type = job.spec.type_name();
        let mut observed = lock(&self.observed);
        let o = observed
            .entry(job.name.clone())
            .or_insert_with(|| Observed::new(job_type));
        if o.job_type != job_type {
            *o = Observed::new(job_type);
        }
        o.durations.observe(finished.duration.as_secs_f64());
        if let Trigger::Schedule(slot) = trigger {
            let late = (finished.started - slot).num_microseconds().unwrap_or(0);
            o.lateness.observe(late.max(0) as f64 / 1e6);
        }
        o.generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        drop(observed);
        self.changed.notify_one();
    }
}

/// `mutex`'s content; a panic while it was held left only figures behind, still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The series rendered from the snapshot being rendered, besides the per-job ones.
#[derive(Debug)]
struct FromSnapshot(Arc<Mutex<Snapshot>>);

impl Collector for FromSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = lock(&self.0);
        encode_live(&snapshot.jobs, &mut encoder)?;
        encode_sinks(&snapshot.sinks, &mut encoder)
    }
}

/// What running jobs publish as numbers ([`crate::jobs::LiveCount`]), as
/// `opsd_<type>_<name>`: an `apache_log` watch's lines read, files followed, alerts per rule.
fn encode_live(jobs: &[Kept], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    type Series<'a> = Vec<(&'a Kept, Option<(&'a str, &'a str)>, u64)>;
    let mut families: BTreeMap<(&str, &str, bool), Series<'_>> = BTreeMap::new();
    for job in jobs {
        for c in job.live.iter().flat_map(|l| &l.counts) {
            let label = c.label.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            families
                .entry((job.job_type.as_str(), c.name.as_str(), c.counter))
                .or_default()
                .push((job, label, c.value));
        }
    }
    for ((job_type, name, counter), series) in families {
        let name = format!("opsd_{job_type}_{name}");
        let kind = if counter {
            prometheus_client::metrics::MetricType::Counter
        } else {
            prometheus_client::metrics::MetricType::Gauge
        };
        let help = format!("{name} as the running {job_type} job publishes it.");
        let mut family = encoder.encode_descriptor(&name, &help, None, kind)?;
        for (job, label, value) in series {
            let mut labels = vec![("job", job.name.as_str()), ("type", job_type)];
            labels.extend(label);
            let series = family.encode_family(&labels)?;
            if counter {
                ConstCounter::new(value).encode(series)?;
            } else {
                ConstGauge::new(value as i64).encode(series)?;
            }
        }
    }
    Ok(())
}

/// The alert sinks' deliveries by result, and their queues.
fn encode_sinks(
    sinks: &BTreeMap<String, SinkStats>,
    encoder: &mut DescriptorEncoder,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "opsd_alert_deliveries",
        "Alerts per sink by result: ok (delivered), failed (given up on), dropped (queue full).",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (sink, stats) in sinks {
        for (result, n) in [
            ("ok", stats.delivered),
            ("failed", stats.failed),
            ("dropped", stats.dropped),
        ] {
            let labels = [("sink", sink.as_str()), ("result", result)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "opsd_alert_queued",
        "Alerts waiting in the sink's queue now.",
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (sink, stats) in sinks {
        ConstGauge::new(stats.queued as i64)
            .encode(family.encode_family(&[("sink", sink.as_str())])?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::job_text::{DURATION_BUCKETS, LATENESS_BUCKETS};
    use super::*;
    use crate::jobs::Outcome;
    use crate::scheduler::{Figures, JobFigures, JobName, JobStatus, LastRun};
    use chrono::TimeDelta;
    use prometheus_client::metrics::histogram::Histogram;

    /// A job named `name` that never ran.
    fn job(name: &str) -> JobStatus {
        JobStatus {
            name: name.into(),
            job_type: "command".into(),
            schedule: None,
            timezone: None,
            enabled: true,
            next: None,
            last: None,
            last_success: None,
            runs: Default::default(),
            running: 0,
            broken: None,
            live: None,
        }
    }

    /// Jobs named `jobs` that never ran.
    fn of(jobs: &[&str]) -> Vec<JobStatus> {
        jobs.iter().map(|j| job(j)).collect()
    }

    /// `jobs`, every one of them named and changed, as the loop answers a first scrape.
    fn all(jobs: Vec<JobStatus>) -> Changes {
        Changes {
            generation: 0,
            jobs: Some(jobs.iter().map(named).collect()),
            changed: jobs
                .iter()
                .enumerate()
                .map(|(i, j)| figures(i, j))
                .collect(),
        }
    }

    /// `job` as the loop names it.
    fn named(job: &JobStatus) -> JobName {
        JobName {
            name: job.name.clone(),
            job_type: job.job_type.clone(),
        }
    }

    /// What the loop gives of `job`, changed, at place `index`: the figures of its status.
    fn figures(index: usize, job: &JobStatus) -> JobFigures {
        JobFigures {
            index,
            figures: Figures {
                runs: job.runs,
                last_started: job.last.as_ref().map(|l| l.started),
                last_success: job.last_success,
                next: job.next,
                running: job.running,
            },
            live: job.live.clone(),
        }
    }

    /// What `metrics` renders of `changes`, with no sink.
    fn render(metrics: &Metrics, changes: Changes) -> String {
        metrics.render(changes, BTreeMap::new()).text()
    }

    #[test]
    fn every_job_has_its_series_at_zero_and_a_gone_job_has_none() {
        let metrics = Metrics::new(Utc::now());
        let text = render(&metrics, all(of(&["a", "b"])));
        for series in [
            r#"opsd_job_duration_seconds_count{job="a",type="command"} 0"#,
            r#"opsd_job_start_lateness_seconds_count{job="b",type="command"} 0"#,
            r#"opsd_job_runs_total{job="b",type="command",outcome="failed"} 0"#,
            r#"opsd_job_last_success_timestamp_seconds{job="a",type="command"} 0.0"#,
        ] {
            assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
        }
        let text = render(&metrics, all(of(&["b"])));
        assert!(!text.contains(r#"job="a""#), "{text}");
        assert!(text.contains(r#"opsd_job_duration_seconds_count{job="b",type="command"} 0"#));
    }

    /// A job that ran: every figure set, timestamps with microseconds.
    fn ran(name: &str, i: u64) -> JobStatus {
        let at = DateTime::from_timestamp_micros(1_764_616_463_123_456 + i as i64).unwrap();
        JobStatus {
            next: Some(at + TimeDelta::seconds(60)),
            last: Some(LastRun {
                run_id: "1".into(),
                started: at,
                duration_ms: 1234,
                outcome: Outcome::Failed,
                detail: None,
                output: vec![],
            }),
            last_success: Some(at - TimeDelta::seconds(3600)),
            runs: crate::scheduler::RunCounts {
                success: 10 + i,
                failed: 2,
                timed_out: 1,
                killed: 0,
                skipped: 4,
                overlap_skipped: 3,
            },
            running: 1,
            ..job(name)
        }
    }

    /// The labels of the reference rendering.
    #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct JobLabels {
        job: String,
        r#type: String,
    }

    /// The per-job families of `jobs` as prometheus-client itself writes them.
    #[derive(Debug)]
    struct Reference(Vec<JobStatus>);

    impl Collector for Reference {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            use prometheus_client::metrics::MetricType::{Counter, Gauge};
            let labels = |j: &JobStatus| [("job", j.name.clone()), ("type", j.job_type.clone())];
            let (name, help, _) = FAMILIES[0];
            let mut f = encoder.encode_descriptor(&name[..name.len() - 6], help, None, Counter)?;
            for j in &self.0 {
                for o in [Outcome::Success, Outcome::Failed, Outcome::TimedOut] {
                    let [a, b] = labels(j);
                    let l = [a, b, ("outcome", o.as_str().to_string())];
                    ConstCounter::new(j.runs.of(o)).encode(f.encode_family(&l)?)?;
                }
                for o in [Outcome::Killed, Outcome::Skipped] {
                    let [a, b] = labels(j);
                    let l = [a, b, ("outcome", o.as_str().to_string())];
                    ConstCounter::new(j.runs.of(o)).encode(f.encode_family(&l)?)?;
                }
            }
            let (name, help, _) = FAMILIES[1];
            let mut f = encoder.encode_descriptor(&name[..name.len() - 6], help, None, Counter)?;
            for j in &self.0 {
                ConstCounter::new(j.runs.overlap_skipped).encode(f.encode_family(&labels(j))?)?;
            }
            type Value = fn(&JobStatus) -> f64;
            let gauges: [Value; 4] = [
                |j| j.last.as_ref().map_or(0.0, |l| seconds(l.started)),
                |j| j.last_success.map_or(0.0, seconds),
                |j| j.next.map_or(0.0, seconds),
                |j| j.running as f64,
            ];
            for (i, value) in gauges.iter().enumerate() {
                let (name, help, _) = FAMILIES[2 + i];
                let mut f = encoder.encode_descriptor(name, help, None, Gauge)?;
                for j in &self.0 {
                    ConstGauge::new(value(j)).encode(f.encode_family(&labels(j))?)?;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn the_kept_text_is_what_prometheus_client_writes() {
        let jobs = vec![
            ran("backup", 1),
            job("never-ran"),
            JobStatus {
                job_type: "apache_log".into(),
                ..ran("we\"ird\\name\nx", 7)
            },
        ];
        let metrics = Metrics::new(Utc::now());
        let mut reference = Registry::default();
        reference.register_collector(Box::new(Reference(jobs.clone())));
        type Histograms = Family<JobLabels, Histogram, fn() -> Histogram>;
        let durations: Histograms =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        let lateness: Histograms =
            Family::new_with_constructor(|| Histogram::new(LATENESS_BUCKETS));
        let help = |i: usize| FAMILIES[i].1.trim_end_matches('.');
        reference.register("opsd_job_duration_seconds", help(6), durations.clone());
        reference.register("opsd_job_start_lateness_seconds", help(7), lateness.clone());
        for (j, samples) in jobs
            .iter()
            .zip([&[0.05, 1.0, 7.5, 50_000.0][..], &[], &[0.3]])
        {
            let l = JobLabels {
                job: j.name.clone(),
                r#type: j.job_type.clone(),
            };
            let (d, late) = (durations.get_or_create(&l), lateness.get_or_create(&l));
            let mut o = Observed::new(&j.job_type);
            for v in samples {
                d.observe(*v);
                o.durations.observe(*v);
                late.observe(v / 1000.0);
                o.lateness.observe(v / 1000.0);
                o.generation += 1;
            }
            lock(&metrics.observed).insert(j.name.clone(), o);
        }
        let mut expected = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut expected, &reference).unwrap();
        let mut answer = Answer::default();
        metrics.encode_jobs(&mut Vec::new(), all(jobs), &mut answer);
        let text = answer.text();
        assert_eq!(families(&text), families(&expected), "{text}");
    }

    /// `text`'s lines by family (the registry writes a family's series in hash order).
    fn families(text: &str) -> BTreeMap<&str, Vec<&str>> {
        let mut families: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut family = "";
        for line in text.lines() {
            if line.starts_with("# HELP ") {
                family = line;
            }
            families.entry(family).or_default().push(line);
        }
        for lines in families.values_mut() {
            lines.sort_unstable();
        }
        families
    }

    #[test]
    fn a_job_whose_figures_change_is_written_again_and_the_others_are_kept() {
        let metrics = Metrics::new(Utc::now());
        let mut jobs = vec![ran("a", 1), ran("b", 2)];
        let before = render(&metrics, all(jobs.clone()));
        assert_eq!(render(&metrics, all(jobs.clone())), before);
        jobs[1].runs.failed = 99;
        jobs[1].running = 0;
        let after = render(&metrics, all(jobs.clone()));
        for series in [
            r#"opsd_job_runs_total{job="b",type="command",outcome="failed"} 99"#,
            r#"opsd_job_running{job="b",type="command"} 0.0"#,
            r#"opsd_job_runs_total{job="a",type="command",outcome="failed"} 2"#,
            r#"opsd_job_running{job="a",type="command"} 1.0"#,
        ] {
            assert!(after.lines().any(|l| l == series), "{series} in\n{after}");
        }
        let mut o = Observed::new("command");
        o.durations.observe(2.0);
        o.generation = 1;
        lock(&metrics.observed).insert("a".into(), o);
        let observed = render(&metrics, all(jobs.clone()));
        assert!(observed.contains(r#"opsd_job_duration_seconds_count{job="a",type="command"} 1"#));
        // Redefined as another type, reordered, one added: new labels, histograms anew.
        jobs = vec![
            ran("c", 3),
            JobStatus {
                job_type: "geoip".into(),
                ..ran("a", 1)
            },
            ran("b", 2),
        ];
        let text = render(&metrics, all(jobs));
        assert!(!text.contains(r#"job="a",type="command""#), "{text}");
        assert!(text.contains(r#"opsd_job_duration_seconds_count{job="a",type="geoip"} 0"#));
        assert!(text.contains(r#"opsd_job_duration_seconds_count{job="c",type="command"} 0"#));
        assert!(lock(&metrics.observed).is_empty());
    }

    /// The same jobs (not named), of which only `job`, at place `index`, changed: its failed
    /// runs are now 99.
    fn failed_99(index: usize, mut job: JobStatus) -> Changes {
        job.runs.failed = 99;
        Changes {
            generation: 0,
            jobs: None,
            changed: vec![figures(index, &job)],
        }
    }

    #[test]
    fn an_answer_still_being_sent_keeps_its_text_when_its_jobs_are_written_again() {
        let metrics = Metrics::new(Utc::now());
        let held = metrics.render(all(vec![ran("a", 1), ran("b", 2)]), BTreeMap::new());
        let before = held.text();
        let after = render(&metrics, failed_99(0, ran("a", 1)));
        assert!(
            after.contains(r#"opsd_job_runs_total{job="a",type="command",outcome="failed"} 99"#)
        );
        assert_eq!(held.text(), before, "the answer held is not written over");
    }

    /// The lines of `text` about job `name`.
    fn of_job<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let label = format!("{{job=\"{name}\",");
        text.lines().filter(|l| l.contains(&label)).collect()
    }

    #[test]
    fn a_job_not_given_as_changed_keeps_its_series_from_the_copy_kept() {
        let metrics = Metrics::new(Utc::now());
        let first = render(&metrics, all(vec![ran("a", 1), ran("b", 2), job("c")]));
        let text = render(&metrics, failed_99(1, ran("b", 2)));
        assert_eq!(of_job(&text, "a"), of_job(&first, "a"));
        assert_eq!(of_job(&text, "c"), of_job(&first, "c"));
        assert!(text.contains(r#"opsd_job_runs_total{job="b",type="command",outcome="failed"} 99"#));
        assert_eq!(
            render(&metrics, Changes::default()),
            text,
            "nothing changed, nothing moves"
        );
        let named = Changes {
            changed: Vec::new(),
            ..all(of(&["a", "b", "c"]))
        };
        assert_eq!(
            render(&metrics, named),
            text,
            "the same jobs named again keep their copies"
        );
    }

    #[test]
    fn a_job_no_longer_named_loses_its_series_and_a_reload_keeps_the_others_right() {
        let metrics = Metrics::new(Utc::now());
        let first = render(&metrics, all(vec![ran("a", 1), ran("b", 2), ran("c", 3)]));
        // A reload: a redefined as a geoip job, b removed, d added; c unchanged, not sent.
        let a = JobStatus {
            job_type: "geoip".into(),
            ..job("a")
        };
        let (c, d) = (ran("c", 3), job("d"));
        let changes = Changes {
            generation: 0,
            jobs: Some(vec![named(&a), named(&c), named(&d)]),
            changed: vec![figures(0, &a), figures(2, &d)],
        };
        let text = render(&metrics, changes);
        assert!(of_job(&text, "b").is_empty(), "{text}");
        assert!(!text.contains(r#"job="a",type="command""#), "{text}");
        assert!(text.contains(r#"opsd_job_runs_total{job="a",type="geoip",outcome="success"} 0"#));
        assert_eq!(of_job(&text, "c"), of_job(&first, "c"));
        assert!(text.contains(r#"opsd_job_running{job="d",type="command"} 0.0"#));
        let order: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("opsd_job_running{"))
            .collect();
        assert_eq!(order.len(), 3);
        assert!(
            order[0].contains("\"a\"") && order[1].contains("\"c\"") && order[2].contains("\"d\"")
        );
    }

    #[test]
    fn a_change_given_a_place_past_the_jobs_is_left_out() {
        let metrics = Metrics::new(Utc::now());
        let before = render(&metrics, all(of(&["a", "b"])));
        let changes = Changes {
            generation: 0,
            jobs: None,
            changed: vec![figures(2, &ran("c", 3))],
        };
        assert_eq!(render(&metrics, changes), before);
    }

    #[tokio::test]
    async fn each_scrape_asks_for_what_changed_since_the_answer_to_the_one_before() {
        use crate::control::{Request, Response};
        let (to_loop, mut requests) = tokio::sync::mpsc::channel(4);
        let alerts = crate::alert::Dispatcher::new(&BTreeMap::new(), Default::default()).unwrap();
        let source = Source::new(to_loop, alerts);
        let answers = [
            all(vec![ran("a", 1), ran("b", 2)]),
            Changes {
                generation: 12,
                changed: Vec::new(),
                ..all(of(&["a", "b"]))
            },
        ];
        let asked = tokio::spawn(async move {
            let mut asked = Vec::new();
            for (i, mut changes) in answers.into_iter().enumerate() {
                let Some((Request::Changes { since }, reply)) = requests.recv().await else {
                    panic!("a scrape asks for changes");
                };
                asked.push(since);
                changes.generation = 7 + 5 * i as u64;
                let _ = reply.send(Response::Changes { changes });
            }
            asked
        });
        let metrics = Metrics::new(Utc::now());
        let first = metrics.scrape(&source).await.expect("an answer").text();
        let second = metrics.scrape(&source).await.expect("an answer").text();
        assert_eq!(asked.await.unwrap(), [0, 7]);
        assert_eq!(of_job(&second, "a"), of_job(&first, "a"));
        assert!(second.contains(r#"opsd_job_running{job="b",type="command"} 1.0"#));
        assert!(
            metrics.scrape(&source).await.is_none(),
            "the loop has stopped"
        );
    }
}
