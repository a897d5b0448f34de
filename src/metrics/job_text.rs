//! One job's series as Prometheus text, written once per change and kept between scrapes.
//! Why: a scrape of 1,000 jobs is about 34,000 series, and formatting them all anew each time
//! cost 11-19 ms of CPU; most jobs have not changed since the last scrape, so a scrape now
//! re-writes only the jobs whose figures changed and otherwise concatenates kept text
//! (docs/metrics.md, "Cost"), sharing the kept text with the answer (`answer.rs`). A line's name, labels and bucket bound do not change with the
//! figures: the parts every job shares are made once, the job's labels once per job, so
//! writing a changed job is copying those and formatting its 34 numbers. The text is byte for
//! byte what prometheus-client's 0.0.4 encoder writes for the same series (a test in
//! `registry.rs` compares the two), with the same number formatters (`itoa`, `dtoa`).

use super::answer::Answer;
use crate::jobs::{LiveStatus, Outcome};
use crate::scheduler::{Figures, JobName};
use chrono::{DateTime, Utc};
use std::sync::Arc;

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
    /// The inputs of a job with `figures` and histograms of `generation`.
    fn of(figures: &Figures, generation: u64) -> Self {
        Inputs {
            runs: OUTCOMES.map(|o| figures.runs.of(o)),
            overlap: figures.runs.overlap_skipped,
            last_run: figures.last_started.map_or(0.0, seconds),
            last_success: figures.last_success.map_or(0.0, seconds),
            next: figures.next.map_or(0.0, seconds),
            running: figures.running,
            observed: generation,
        }
    }
}

/// How many series lines each family of [`FAMILIES`] has per job.
const LINES: [usize; FAMILIES.len()] = [
    OUTCOMES.len(),
    1,
    1,
    1,
    1,
    1,
    DURATION_BUCKETS.len() + 3,
    LATENESS_BUCKETS.len() + 3,
];

/// How many series lines a job has.
const SERIES: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < LINES.len() {
        n += LINES[i];
        i += 1;
    }
    n
};

/// One series line of a job around the job's labels: what comes before them (the series'
/// name and `{job="`) and after (the rest of the label set, closed, and a space), the same
/// for every job.
#[derive(Debug)]
struct Line {
    /// Up to the job's labels.
    head: String,
    /// From the job's labels to the value.
    tail: String,
}

/// Every line of a job's text but the labels and the value, in the order written, made once.
static LINE_PARTS: std::sync::LazyLock<Vec<Line>> = std::sync::LazyLock::new(line_parts);

/// The lines of [`LINE_PARTS`].
fn line_parts() -> Vec<Line> {
    let mut lines = Vec::with_capacity(SERIES);
    let mut add = |name: &str, suffix: &str, tail: String| {
        lines.push(Line {
            head: format!("{name}{suffix}{{job=\""),
            tail,
        });
    };
    let [runs, overlap, last_run, last_success, next, running, durations, lateness] =
        FAMILIES.map(|f| f.0);
    for outcome in OUTCOMES {
        add(runs, "", format!("\",outcome=\"{}\"}} ", outcome.as_str()));
    }
    for name in [overlap, last_run, last_success, next, running] {
        add(name, "", "\"} ".into());
    }
    for (name, bounds) in [
        (durations, &DURATION_BUCKETS[..]),
        (lateness, &LATENESS_BUCKETS[..]),
    ] {
        for bound in bounds.iter().map(|b| le(*b)).chain(["+Inf".into()]) {
            add(name, "_bucket", format!("\",le=\"{bound}\"}} "));
        }
        add(name, "_sum", "\"} ".into());
        add(name, "_count", "\"} ".into());
    }
    lines
}

/// A series' value, as prometheus-client writes it for its kind.
#[derive(Debug, Clone, Copy)]
enum Value {
    /// A counter or a bucket: an integer.
    Uint(u64),
    /// A gauge or a sum: a float (`0.0`, `1.5`).
    Float(f64),
}

/// Every value of a job's series from `inputs` and its histograms `observed` (none: empty
/// ones), in the order written.
fn values(inputs: &Inputs, observed: Option<&Observed>) -> [Value; SERIES] {
    let mut values = [Value::Uint(0); SERIES];
    let mut i = 0;
    let mut put = |v: Value| {
        values[i] = v;
        i += 1;
    };
    for n in inputs.runs {
        put(Value::Uint(n));
    }
    put(Value::Uint(inputs.overlap));
    let running = inputs.running as f64;
    for v in [inputs.last_run, inputs.last_success, inputs.next, running] {
        put(Value::Float(v));
    }
    let histograms = [
        (DURATION_BUCKETS.len(), observed.map(|o| &o.durations)),
        (LATENESS_BUCKETS.len(), observed.map(|o| &o.lateness)),
    ];
    for (bounds, buckets) in histograms {
        match buckets {
            Some(buckets) => {
                let mut cumulative = 0;
                for n in &buckets.counts {
                    cumulative += n;
                    put(Value::Uint(cumulative));
                }
                put(Value::Float(buckets.sum));
                put(Value::Uint(buckets.count));
            }
            None => {
                for _ in 0..=bounds {
                    put(Value::Uint(0));
                }
                put(Value::Float(0.0));
                put(Value::Uint(0));
            }
        }
    }
    values
}

/// A job's kept text: one piece per family of [`FAMILIES`], and what it was written from.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The job's name.
    pub name: String,
    /// Its type (a job redefined as another type is kept anew).
    pub job_type: String,
    /// What the run going now published, as last given.
    pub live: Option<LiveStatus>,
    /// The job's figures as last given; `None` before any was (nothing is written then).
    figures: Option<Figures>,
    /// The job's label set, escaped, without its closing quote: `job="…",type="…`.
    labels: String,
    /// What `text` was written from; `None` before it was written.
    inputs: Option<Inputs>,
    /// The series of every family, one after the other; shared with the answers rendered
    /// from it (a write while one is still being sent writes a copy).
    text: Arc<String>,
    /// Where each family's piece of `text` ends.
    ends: [usize; FAMILIES.len()],
}

impl Kept {
    /// Nothing written yet for `job`.
    pub fn new(job: JobName) -> Self {
        let mut labels = String::with_capacity(job.name.len() + job.job_type.len() + 8);
        escape(&mut labels, &job.name);
        labels.push_str("\",type=\"");
        escape(&mut labels, &job.job_type);
        Kept {
            name: job.name,
            job_type: job.job_type,
            live: None,
            figures: None,
            labels,
            inputs: None,
            text: Arc::default(),
            ends: [0; FAMILIES.len()],
        }
    }

    /// Takes the job's figures and live status as the loop gave them.
    pub fn set(&mut self, figures: Figures, live: Option<LiveStatus>) {
        self.figures = Some(figures);
        self.live = live;
    }

    /// Writes the text again if the figures or the histograms `observed` changed since it
    /// was last written; true if it did.
    pub fn update(&mut self, observed: Option<&Observed>) -> bool {
        let Some(figures) = &self.figures else {
            return false;
        };
        let inputs = Inputs::of(figures, observed.map_or(0, |o| o.generation));
        if self.inputs == Some(inputs) {
            return false;
        }
        self.inputs = Some(inputs);
        self.write(&inputs, observed);
        true
    }

    /// Appends the series of family `i` of [`FAMILIES`] to `answer` (shared, not copied).
    pub fn add_family(&self, i: usize, answer: &mut Answer) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        answer.push(&self.text, start..self.ends[i]);
    }

    /// Writes every family's series from `inputs` and `observed`: each line its constant
    /// parts around the job's labels, and its value.
    fn write(&mut self, inputs: &Inputs, observed: Option<&Observed>) {
        let values = values(inputs, observed);
        let lines: &[Line] = &LINE_PARTS;
        let t = Arc::make_mut(&mut self.text);
        t.clear();
        let mut series = lines.iter().zip(values);
        for (family, n) in LINES.iter().enumerate() {
            for (line, value) in series.by_ref().take(*n) {
                t.push_str(&line.head);
                t.push_str(&self.labels);
                t.push_str(&line.tail);
                match value {
                    Value::Uint(v) => t.push_str(itoa::Buffer::new().format(v)),
                    Value::Float(v) => float(t, v),
                }
                t.push('\n');
            }
            self.ends[family] = t.len();
        }
    }
}

/// Writes a float value as prometheus-client writes one (`0.0`, `1.5`).
fn float(t: &mut String, v: f64) {
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
}

/// A bucket bound as Go's `strconv.FormatFloat(v, 'g', -1, 64)` (and prometheus-client)
/// writes it, for the bounds used here, all within [1e-4, 1e6).
fn le(bound: f64) -> String {
    if bound.fract() == 0.0 {
        itoa::Buffer::new().format(bound as i64).to_string()
    } else {
        bound.to_string()
    }
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
