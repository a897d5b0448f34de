//! What a validated configuration is: the [`Config`] the scheduler runs, its [`Defaults`], and
//! each [`JobConfig`] with its run policies ([`Overlap`], [`CatchUp`]).

use crate::alert::sink::SinkConfig;
use crate::jobs::JobType;
use crate::schedule::Schedule;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A validated configuration, ready to be scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The job file it was read from (`--config`).
    pub path: PathBuf,
    /// Every file read, in order: the job file, then each `jobs.d/*.toml` by name.
    pub files: Vec<PathBuf>,
    /// The entries of `jobs.d` that were not read, with why ([`skipped`](super::skipped)).
    pub skipped: Vec<(PathBuf, &'static str)>,
    /// Daemon-wide settings.
    pub defaults: Defaults,
    /// The jobs by name, shared with the scheduler's entries rather than copied.
    pub jobs: BTreeMap<String, Arc<JobConfig>>,
    /// The alert sinks by name (`[alerts.NAME]`).
    pub alerts: BTreeMap<String, SinkConfig>,
    /// Where the metrics are published (`[metrics]`).
    pub metrics: super::MetricsConfig,
    /// Where the fleet's etcd is (`[fleet]`), when this host is part of one.
    pub fleet: Option<FleetSettings>,
}

/// The `[fleet]` section: the etcd cluster that fleet jobs claim their slots in.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// The etcd client URLs, tried in turn.
    pub endpoints: Vec<url::Url>,
    /// The CA that signs the etcd servers' certificates (system roots when unset).
    pub ca_file: Option<PathBuf>,
    /// The client certificate presented to etcd, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key.
    pub key_file: Option<PathBuf>,
    /// This host's name in the fleet (default: the host name).
    pub host: String,
    /// The key prefix every fleet key is under, without a trailing `/`.
    pub prefix: String,
    /// The bound on one etcd call, every endpoint tried included.
    pub timeout: Duration,
    /// The largest offset between this host's clock and etcd's at which it still claims slots.
    pub max_clock_offset: Duration,
}

/// Which hosts run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every host runs it (as without a fleet).
    #[default]
    Host,
    /// One host of the fleet runs each slot: the one whose claim in etcd wins.
    Fleet,
}

/// What happens to a fleet job's slot whose host vanished while running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// Report it as lost (log at error, alert); do not run it again.
    #[default]
    Alert,
    /// Report it, and run it once more on another host (for idempotent jobs).
    Retry,
}

/// Daemon-wide settings from `[defaults]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The zone for jobs that do not name one.
    pub timezone: Tz,
    /// How long shutdown waits for running jobs before stopping them.
    pub shutdown_timeout: Duration,
    /// A group allowed to use the control socket (mode 0660); root only when unset.
    pub control_group: Option<String>,
}

/// When a job that is still running is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Do not start another run; log a warning.
    #[default]
    Skip,
    /// Run again as soon as the current run ends (at most one waits).
    Queue,
    /// Start another run alongside.
    Allow,
}

/// What to do about slots missed while the daemon was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Forget them.
    #[default]
    Skip,
    /// Run once at start if any slot was missed (like systemd's `Persistent=`).
    Once,
}

/// One job: when it runs, its run policies, and what it does. Two are equal when they run the
/// same way, wherever they are defined ([`JobConfig::file`] is left out), so a job moved
/// unchanged from the job file into a drop-in is not "changed" by a reload.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The job's name (the key under `[jobs]`).
    pub name: String,
    /// The file the job is defined in (the job file or one in `jobs.d`), which the spans of
    /// its keys point into.
    pub file: Arc<Path>,
    /// When it fires; `None` for continuous job types.
    pub schedule: Option<Schedule>,
    /// Disabled jobs are validated but never scheduled.
    pub enabled: bool,
    /// What to do when a run is due while one is still running.
    pub overlap: Overlap,
    /// Stop a run that takes longer than this.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
    /// A random delay of up to this much before each run.
    pub jitter: Duration,
    /// Whether a slot missed during downtime runs once at start.
    pub catch_up: CatchUp,
    /// The alert sinks failed runs (and the job's own alerts) go to.
    pub alert: Vec<String>,
    /// Whether every host runs it or one host of the fleet per slot.
    pub scope: Scope,
    /// What a fleet job does about a lost run.
    pub on_lost: OnLost,
    /// The type-specific part.
    pub spec: JobType,
}

impl PartialEq for JobConfig {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let JobConfig {
            name,
            file: _,
            schedule,
            enabled,
            overlap,
            timeout,
            kill_grace,
            jitter,
            catch_up,
            alert,
            scope,
            on_lost,
            spec,
        } = self;
        *name == other.name
            && *schedule == other.schedule
            && *enabled == other.enabled
            && *overlap == other.overlap
            && *timeout == other.timeout
            && *kill_grace == other.kill_grace
            && *jitter == other.jitter
            && *catch_up == other.catch_up
            && *alert == other.alert
            && *scope == other.scope
            && *on_lost == other.on_lost
            && *spec == other.spec
    }
}
