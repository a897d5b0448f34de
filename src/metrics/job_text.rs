//! One job's series as Prometheus text, written once per change and kept between scrapes.
//! Why: a scrape of 1,000 jobs is about 34,000 series, and formatting them all anew each time
//! cost 11-19 ms of CPU; most jobs have not changed since the last scrape, so a scrape now
//! re-writes only the jobs whose figures changed and otherwise concatenates kept text
//! (docs/metrics.md, "Cost"). The text is byte for byte what prometheus-client's 0.0.4
//! encoder writes for the same series (a test in `registry.rs` compares the two), with the same
//! number formatters (`itoa`, `dtoa`).

use crate::jobs::Outcome;
use crate::scheduler::JobStatus;
use chrono::{DateTime, Utc};

/// Upper bounds of the run duration buckets, in seconds: a tenth of a second to half a day.
pub const DURATION_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0,
];

/// Upper bounds of the start lateness buckets, in seconds: a millisecond to five minutes.
pub const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 60.0, 300.0];

/// Every outcome, in the order the series are rendered.
const OUTCOMES: [Outcome; 5] = [
    Outcome::Success,
    Outcome::Failed,
    Outcome::TimedOut,
    Outcome::Killed,
    Outcome::Skipped,
];

/// The per-job families, in the order they are rendered: name, help, type.
pub const FAMILIES: [(&str, &str, &str); 8] = [
    (
        "opsd_job_runs_total",
        "Runs of the job by outcome; skipped counts slots the overlap policy skipped too.",
        "counter",
    ),
    (
        "opsd_job_overlap_skipped_total",
        "Slots skipped because the previous run was still going (overlap policy).",
        "counter",
    ),
    (
        "opsd_job_last_run_timestamp_seconds",
        "When the job's last finished run started, in seconds since the epoch; 0 if it never ran.",
        "gauge",
    ),
    (
        "opsd_job_last_success_timestamp_seconds",
        "When the job's last successful run started, in seconds since the epoch; 0 if none did.",
        "gauge",
    ),
    (
        "opsd_job_next_run_timestamp_seconds",
        "When the job fires next, in seconds since the epoch; 0 if it is not scheduled.",
        "gauge",
    ),
    (
        "opsd_job_running",
        "How many runs of the job are going now.",
        "gauge",
    ),
    (
        "opsd_job_duration_seconds",
        "How long the job's runs took.",
        "histogram",
    ),
    (
        "opsd_job_start_lateness_seconds",
        "How long after its slot each scheduled run started (jitter included).",
        "histogram",
    ),
];

/// One histogram's figures, as prometheus-client's `Histogram` keeps them.
#[derive(Debug, Clone)]
pub struct Buckets {
    /// The upper bounds, `+Inf` not included.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), the last one `+Inf`'s.
    counts: Vec<u64>,
    /// The sum of the observations.
    sum: f64,
    /// How many there were.
    count: u64,
}

impl Buckets {
    /// An empty histogram with `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts `v` in the first bucket whose bound is at least `v`.
    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| *b >= v)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

/// A job's histograms, and a number that changes with each observation.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The job's type when they were observed (a redefined job starts again).
    pub job_type: String,
    /// Its runs' durations.
    pub durations: Buckets,
    /// Its scheduled starts' lateness.
    pub lateness: Buckets,
    /// Set anew (never to an earlier value) at each observation.
    pub generation: u64,
}

impl Observed {
    /// No observation yet, for a job of `job_type`.
    pub fn new(job_type: &str) -> Self {
        Observed {
            job_type: job_type.to_string(),
            durations: Buckets::new(&DURATION_BUCKETS),
            lateness: Buckets::new(&LATENESS_BUCKETS),
            generation: 0,
        }
    }
}

/// Everything a job's text is written from: the text is written again when this changes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Inputs {
    /// Runs by outcome, in [`OUTCOMES`]' order.
    runs: [u64; 5],
    /// Slots skipped by the overlap policy.
    overlap: u64,
    /// Last run, last success and next run, in seconds since the epoch (0: none).
    last_run: f64,
    /// See `last_run`.
    last_success: f64,
    /// See `last_run`.
    next: f64,
    /// Runs going now.
    running: usize,
    /// The histograms' generation (0: none observed).
    observed: u64,
}

impl Inputs {
    /// The inputs of `job` with histograms of `generation`.
    fn of(job: &JobStatus, generation: u64) -> Self {
        Inputs {
            runs: OUTCOMES.map(|o| job.runs.of(o)),
            overlap: job.runs.overlap_skipped,
            last_run: job.last.as_ref().map_or(0.0, |l| seconds(l.started)),
            last_success: job.last_success.map_or(0.0, seconds),
            next: job.next.map_or(0.0, seconds),
            running: job.running,
            observed: generation,
        }
    }
}

/// A job's kept text: one piece per family of [`FAMILIES`].
#[derive(Debug, Clone)]
pub struct Kept {
    /// The job's name.
    pub name: String,
    /// Its type.
    job_type: String,
    /// What `text` was written from; `None` before it was written.
    inputs: Option<Inputs>,
    /// The series of every family, one after the other.
    text: String,
    /// Where each family's piece of `text` ends.
    ends: [usize; FAMILIES.len()],
}

impl Kept {
    /// Nothing written yet for `job`.
    pub fn new(job: &JobStatus) -> Self {
        Kept {
            name: job.name.clone(),
            job_type: job.job_type.clone(),
            inputs: None,
            text: String::new(),
            ends: [0; FAMILIES.len()],
        }
    }

    /// Writes the text again if `job` or its histograms `observed` changed since it was last
    /// written; true if it did.
    pub fn update(&mut self, job: &JobStatus, observed: Option<&Observed>) -> bool {
        let inputs = Inputs::of(job, observed.map_or(0, |o| o.generation));
        if self.inputs == Some(inputs) && self.job_type == job.job_type {
            return false;
        }
        self.job_type.clone_from(&job.job_type);
        self.inputs = Some(inputs);
        self.write(&inputs, observed);
        true
    }

    /// The series of family `i` of [`FAMILIES`].
    pub fn family(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// Writes every family's series from `inputs` and `observed`.
    fn write(&mut self, inputs: &Inputs, observed: Option<&Observed>) {
        let mut labels = String::with_capacity(self.name.len() + self.job_type.len() + 16);
        labels.push_str("{job=\"");
        escape(&mut labels, &self.name);
        labels.push_str("\",type=\"");
        escape(&mut labels, &self.job_type);
        labels.push('"');
        let t = &mut self.text;
        t.clear();
        let mut f = 0;
        for (outcome, n) in OUTCOMES.iter().zip(inputs.runs) {
            line(
                t,
                FAMILIES[f].0,
                "",
                &labels,
                ",outcome=\"",
                outcome.as_str(),
            );
            uint(t, n);
        }
        self.ends[f] = t.len();
        f += 1;
        line(t, FAMILIES[f].0, "", &labels, "", "");
        uint(t, inputs.overlap);
        self.ends[f] = t.len();
        f += 1;
        let running = inputs.running as f64;
        for v in [inputs.last_run, inputs.last_success, inputs.next, running] {
            line(t, FAMILIES[f].0, "", &labels, "", "");
            float(t, v);
            self.ends[f] = t.len();
            f += 1;
        }
        let empty = (
            Buckets::new(&DURATION_BUCKETS),
            Buckets::new(&LATENESS_BUCKETS),
        );
        let (durations, lateness) = match observed {
            Some(o) => (&o.durations, &o.lateness),
            None => (&empty.0, &empty.1),
        };
        for buckets in [durations, lateness] {
            histogram(t, FAMILIES[f].0, &labels, buckets);
            self.ends[f] = t.len();
            f += 1;
        }
    }
}

/// Writes `buckets` as family `name`'s `_bucket`, `_sum` and `_count` series.
fn histogram(t: &mut String, name: &str, labels: &str, buckets: &Buckets) {
    let mut cumulative = 0;
    for (i, n) in buckets.counts.iter().enumerate() {
        cumulative += n;
        match buckets.bounds.get(i) {
            Some(bound) => {
                line(t, name, "_bucket", labels, ",le=\"", "");
                le(t, *bound);
            }
            None => line(t, name, "_bucket", labels, ",le=\"", "+Inf"),
        }
        uint(t, cumulative);
    }
    line(t, name, "_sum", labels, "", "");
    float(t, buckets.sum);
    line(t, name, "_count", labels, "", "");
    uint(t, buckets.count);
}

/// Starts a series line: `name` `suffix`, the job's `labels`, and `extra` + `value` + `"`
/// when `extra` is given and `value` is not empty (an `le` bound is written by [`le`]).
fn line(t: &mut String, name: &str, suffix: &str, labels: &str, extra: &str, value: &str) {
    t.push_str(name);
    t.push_str(suffix);
    t.push_str(labels);
    t.push_str(extra);
    if !value.is_empty() {
        t.push_str(value);
        t.push('"');
    }
    if extra.is_empty() || !value.is_empty() {
        t.push('}');
    }
}

/// Ends a line with an integer value.
fn uint(t: &mut String, v: u64) {
    t.push(' ');
    t.push_str(itoa::Buffer::new().format(v));
    t.push('\n');
}

/// Ends a line with a float value, as prometheus-client writes one (`0.0`, `1.5`).
fn float(t: &mut String, v: f64) {
    t.push(' ');
    if v.is_finite() {
        t.push_str(dtoa::Buffer::new().format_finite(v));
    } else {
        t.push_str(if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
    }
    t.push('\n');
}

/// Writes a bucket bound and closes the label set, as Go's `strconv.FormatFloat(v, 'g', -1,
/// 64)` (and prometheus-client) does for the bounds used here, all within [1e-4, 1e6).
fn le(t: &mut String, bound: f64) {
    use std::fmt::Write;
    if bound.fract() == 0.0 {
        t.push_str(itoa::Buffer::new().format(bound as i64));
    } else {
        // Writing to a String cannot fail.
        let _ = write!(t, "{bound}");
    }
    t.push_str("\"}");
}

/// Appends `value` escaped as a label value: backslash, double quote and newline.
fn escape(t: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => t.push_str("\\\\"),
            '"' => t.push_str("\\\""),
            '\n' => t.push_str("\\n"),
            c => t.push(c),
        }
    }
}

/// `at` in seconds since the epoch, as Prometheus timestamps are.
pub fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}
