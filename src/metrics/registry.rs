//! The metric families and their rendering. What `opsd status` shows (runs by outcome, last
//! run, last success, next run, running now) is rendered from the job states of a
//! [`Snapshot`], never counted twice; durations, lateness and reloads are kept here. Each
//! render first gives every job of the snapshot its histograms (so a job that never ran shows
//! zeros) and drops those of jobs a reload removed, so the series follow the configuration.

use crate::alert::SinkStats;
use crate::config::JobConfig;
use crate::jobs::Outcome;
use crate::scheduler::{Finished, JobStatus, RunRecorder, Trigger};
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// Upper bounds of the run duration buckets, in seconds: a second to half a day.
const DURATION_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0,
];

/// Upper bounds of the start lateness buckets, in seconds: a millisecond to five minutes.
const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 60.0, 300.0];

/// Every outcome, in the order the series are rendered.
const OUTCOMES: [Outcome; 5] = [
    Outcome::Success,
    Outcome::Failed,
    Outcome::TimedOut,
    Outcome::Killed,
    Outcome::Skipped,
];

/// What a render shows besides what the metrics keep themselves.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every job, as `opsd status` shows it.
    pub jobs: Vec<JobStatus>,
    /// The alert sinks' counters by sink name.
    pub sinks: BTreeMap<String, SinkStats>,
}

/// The labels of a job's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct JobLabels {
    /// The job's name.
    job: String,
    /// Its type.
    r#type: String,
}

/// The label of a reload's counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `ok` or `rejected`.
    result: &'static str,
}

/// A histogram family's constructor.
type NewHistogram = fn() -> Histogram;

/// Every metric family, the registry that renders them, and the snapshot being rendered.
#[derive(Debug)]
pub struct Metrics {
    /// Renders everything below, in registration order.
    registry: Registry,
    /// How long runs took, per job.
    durations: Family<JobLabels, Histogram, NewHistogram>,
    /// How late scheduled runs started after their slot, per job.
    lateness: Family<JobLabels, Histogram, NewHistogram>,
    /// Configuration reloads by result.
    reloads: Family<ReloadLabels, Counter>,
    /// When the configuration in force was loaded (start or reload).
    last_reload: Gauge<f64, AtomicU64>,
    /// The jobs whose histograms exist now.
    known: Mutex<BTreeSet<JobLabels>>,
    /// The snapshot the registry's collector renders.
    snapshot: Arc<Mutex<Snapshot>>,
    /// Held for a whole render: one at a time, so each renders its own snapshot.
    rendering: Mutex<()>,
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
        let durations: Family<JobLabels, Histogram, NewHistogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register(
            "opsd_job_duration_seconds",
            "How long the job's runs took",
            durations.clone(),
        );
        let lateness: Family<JobLabels, Histogram, NewHistogram> =
            Family::new_with_constructor(|| Histogram::new(LATENESS_BUCKETS));
        registry.register(
            "opsd_job_start_lateness_seconds",
            "How long after its slot each scheduled run started (jitter included)",
            lateness.clone(),
        );
        Metrics {
            registry,
            durations,
            lateness,
            reloads,
            last_reload,
            known: Mutex::default(),
            snapshot,
            rendering: Mutex::new(()),
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

    /// Every metric in the Prometheus text format (0.0.4), the jobs and sinks as `snapshot`
    /// has them.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let _one_at_a_time = lock(&self.rendering);
        self.follow_jobs(&snapshot.jobs);
        *lock(&self.snapshot) = snapshot;
        let mut out = String::with_capacity(64 * 1024);
        // Writing to a String cannot fail, nor can the encoders on their own.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        *lock(&self.snapshot) = Snapshot::default();
        out
    }

    /// Gives every job of `jobs` its histograms, and drops those of jobs that are gone.
    fn follow_jobs(&self, jobs: &[JobStatus]) {
        let now: BTreeSet<JobLabels> = jobs.iter().map(labels).collect();
        let mut known = lock(&self.known);
        for gone in known.difference(&now) {
            self.durations.remove(gone);
            self.lateness.remove(gone);
        }
        for job in now.difference(&known) {
            drop(self.durations.get_or_create(job));
            drop(self.lateness.get_or_create(job));
        }
        *known = now;
    }
}

impl RunRecorder for Metrics {
    fn run_ended(&self, job: &JobConfig, trigger: Trigger, finished: &Finished) {
        let labels = JobLabels {
            job: job.name.clone(),
            r#type: job.spec.type_name().to_string(),
        };
        self.durations
            .get_or_create(&labels)
            .observe(finished.duration.as_secs_f64());
        if let Trigger::Schedule(slot) = trigger {
            let late = (finished.started - slot).num_microseconds().unwrap_or(0);
            self.lateness
                .get_or_create(&labels)
                .observe(late.max(0) as f64 / 1e6);
        }
        self.changed.notify_one();
    }
}

/// The labels of `job`'s series.
fn labels(job: &JobStatus) -> JobLabels {
    JobLabels {
        job: job.name.clone(),
        r#type: job.job_type.clone(),
    }
}

/// `mutex`'s content; a panic while it was held left only figures behind, still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `at` in seconds since the epoch, as Prometheus timestamps are.
fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

/// The series rendered from the snapshot being rendered.
#[derive(Debug)]
struct FromSnapshot(Arc<Mutex<Snapshot>>);

impl Collector for FromSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = lock(&self.0);
        encode_jobs(&snapshot.jobs, &mut encoder)?;
        encode_live(&snapshot.jobs, &mut encoder)?;
        encode_sinks(&snapshot.sinks, &mut encoder)
    }
}

/// The per-job series taken from `opsd status`'s job states.
fn encode_jobs(jobs: &[JobStatus], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "opsd_job_runs",
        "Runs of the job by outcome; skipped counts slots the overlap policy skipped too.",
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for job in jobs {
        for outcome in OUTCOMES {
            let labels = [
                ("job", job.name.as_str()),
                ("type", job.job_type.as_str()),
                ("outcome", outcome.as_str()),
            ];
            ConstCounter::new(job.runs.of(outcome)).encode(family.encode_family(&labels)?)?;
        }
    }
    job_counter(
        encoder,
        jobs,
        "opsd_job_overlap_skipped",
        "Slots skipped because the previous run was still going (overlap policy).",
        |j| j.runs.overlap_skipped,
    )?;
    job_gauge(
        encoder,
        jobs,
        "opsd_job_last_run_timestamp_seconds",
        "When the job's last finished run started, in seconds since the epoch; 0 if it never ran.",
        |j| j.last.as_ref().map_or(0.0, |l| seconds(l.started)),
    )?;
    job_gauge(
        encoder,
        jobs,
        "opsd_job_last_success_timestamp_seconds",
        "When the job's last successful run started, in seconds since the epoch; 0 if none did.",
        |j| j.last_success.map_or(0.0, seconds),
    )?;
    job_gauge(
        encoder,
        jobs,
        "opsd_job_next_run_timestamp_seconds",
        "When the job fires next, in seconds since the epoch; 0 if it is not scheduled.",
        |j| j.next.map_or(0.0, seconds),
    )?;
    job_gauge(
        encoder,
        jobs,
        "opsd_job_running",
        "How many runs of the job are going now.",
        |j| j.running as f64,
    )
}

/// What running jobs publish as numbers ([`crate::jobs::LiveCount`]), as
/// `opsd_<type>_<name>`: an `apache_log` watch's lines read, files followed, alerts per rule.
fn encode_live(jobs: &[JobStatus], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    type Series<'a> = Vec<(&'a JobStatus, Option<(&'a str, &'a str)>, u64)>;
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

/// A counter family with one series per job, valued by `value`.
fn job_counter(
    encoder: &mut DescriptorEncoder,
    jobs: &[JobStatus],
    name: &str,
    help: &str,
    value: impl Fn(&JobStatus) -> u64,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for job in jobs {
        let labels = [("job", job.name.as_str()), ("type", job.job_type.as_str())];
        ConstCounter::new(value(job)).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family with one series per job, valued by `value`.
fn job_gauge(
    encoder: &mut DescriptorEncoder,
    jobs: &[JobStatus],
    name: &str,
    help: &str,
    value: impl Fn(&JobStatus) -> f64,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for job in jobs {
        let labels = [("job", job.name.as_str()), ("type", job.job_type.as_str())];
        ConstGauge::new(value(job)).encode(family.encode_family(&labels)?)?;
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
    use super::*;

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

    /// A snapshot of `jobs` and no sink.
    fn of(jobs: &[&str]) -> Snapshot {
        Snapshot {
            jobs: jobs.iter().map(|j| job(j)).collect(),
            sinks: BTreeMap::new(),
        }
    }

    #[test]
    fn every_job_has_its_series_at_zero_and_a_gone_job_has_none() {
        let metrics = Metrics::new(Utc::now());
        let text = metrics.render(of(&["a", "b"]));
        for series in [
            r#"opsd_job_duration_seconds_count{job="a",type="command"} 0"#,
            r#"opsd_job_start_lateness_seconds_count{job="b",type="command"} 0"#,
            r#"opsd_job_runs_total{job="b",type="command",outcome="failed"} 0"#,
            r#"opsd_job_last_success_timestamp_seconds{job="a",type="command"} 0.0"#,
        ] {
            assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
        }
        let text = metrics.render(of(&["b"]));
        assert!(!text.contains(r#"job="a""#), "{text}");
        assert!(text.contains(r#"opsd_job_duration_seconds_count{job="b",type="command"} 0"#));
    }
}
