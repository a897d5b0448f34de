//! The job types and their contract with the scheduler: a job is handed a [`RunContext`] and
//! returns a [`RunReport`]. Job types never see the scheduler, and the scheduler sees only
//! [`JobType`], never a type's details. Each type has one row in [`REGISTRY`].

pub mod apache;
pub mod check;
pub mod command;
pub mod ec2;
pub mod geoip;
pub mod kind;
pub mod live;
pub mod needs;
pub mod tls;

pub use kind::{JobKind, JobSpec};
pub use live::{LiveCount, LiveSlot, LiveStatus};

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything one run of a job may use, handed over by whoever runs it.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The job's name in `jobs.toml`.
    pub job: Arc<str>,
    /// A short id unique to this run, also in every log line of the run.
    pub run_id: Arc<str>,
    /// Fired when the run must stop now (timeout, shutdown, job removed).
    pub cancel: CancellationToken,
    /// The daemon's state directory. A job type keeps its files in a folder of its own there,
    /// whose name never changes so files survive upgrades: `geoip/<job>/` for geoip,
    /// `apache/<job>.json` (not `apache_log/`) for apache_log; the scheduler keeps `schedule/`,
    /// `last-run/` and `runs/`.
    pub state_dir: PathBuf,
    /// Report what would change, change nothing.
    pub dry_run: bool,
    /// Copy what the job prints to opsd's own stdout and stderr as it arrives (`opsd run-job`).
    pub foreground: bool,
    /// How long a process gets between SIGTERM and SIGKILL when the run is cancelled.
    pub kill_grace: Duration,
    /// Where alerts go; job types that raise their own alerts send them here.
    pub alerts: crate::alert::Dispatcher,
    /// The job's `alert = [...]` sink names.
    pub alert_to: Arc<[String]>,
    /// Where a long run (a continuous job) publishes its live figures for `opsd status`.
    pub live: LiveSlot,
    /// The fleet claim's fencing token of a fleet job's run (`OPSD_FENCING_TOKEN`).
    pub fencing_token: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The job did what it was asked.
    Success,
    /// The job ran and reported failure.
    Failed,
    /// The job ran past its `timeout` and was stopped.
    TimedOut,
    /// The job was stopped from outside (shutdown, signal).
    Killed,
    /// The job did not run (overlap policy, dry run of a job type without one).
    Skipped,
}

impl Outcome {
    /// The lower-case name used in logs and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Killed => "killed",
            Outcome::Skipped => "skipped",
        }
    }

    /// True when the outcome needs an operator's attention.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::TimedOut | Outcome::Killed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job reports at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: Outcome,
    /// The process exit code, for job types that run a process.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// A one-line explanation, especially for failures.
    pub detail: Option<String>,
    /// The last lines the run printed (stdout and stderr as they arrived, escaped, at most 20
    /// lines / 4 KiB), for job types that run a process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

impl RunReport {
    /// A successful run with an optional one-line summary.
    pub fn success(detail: Option<String>) -> Self {
        RunReport {
            outcome: Outcome::Success,
            exit_code: None,
            signal: None,
            detail,
            output: Vec::new(),
        }
    }

    /// A failed run with its reason.
    pub fn failed(detail: impl Into<String>) -> Self {
        RunReport {
            outcome: Outcome::Failed,
            exit_code: None,
            signal: None,
            detail: Some(detail.into()),
            output: Vec::new(),
        }
    }

    /// A run stopped from outside (cancelled by a stop or reload) with what it left behind.
    pub fn killed(detail: impl Into<String>) -> Self {
        RunReport {
            outcome: Outcome::Killed,
            ..RunReport::failed(detail)
        }
    }
}

/// Every job type, in the order `unknown job type` lists them: one row per type, defined in
/// the type's folder.
pub static REGISTRY: &[&JobKind] = &[
    &command::KIND,
    &ec2::KIND,
    &geoip::KIND,
    &apache::KIND,
    &tls::KIND,
];

/// A job's type-specific definition, as validated from `jobs.toml`: one variant per type.
#[derive(Debug, Clone, PartialEq)]
pub enum JobType {
    /// Run a program or a shell line.
    Command(command::CommandSpec),
    /// Start, stop or hibernate EC2 instances.
    Ec2(ec2::Ec2Spec),
    /// Download GeoLite2 CSV editions and install the legacy GeoIP.dat family.
    Geoip(geoip::GeoipSpec),
    /// Watch Apache error logs continuously.
    ApacheLog(apache::ApacheLogSpec),
    /// Probe TLS versions and certificate expiry of sites.
    Tls(tls::TlsSpec),
}

impl JobType {
    /// The spec, as the type's [`JobSpec`]: the one place the variants are told apart.
    pub fn as_spec(&self) -> &dyn JobSpec {
        match self {
            JobType::Command(spec) => spec,
            JobType::Ec2(spec) => spec,
            JobType::Geoip(spec) => spec,
            JobType::ApacheLog(spec) => spec,
            JobType::Tls(spec) => spec,
        }
    }

    /// The `type = "..."` name of this job type.
    pub fn type_name(&self) -> &'static str {
        self.as_spec().kind().name
    }

    /// True for job types that run continuously from start instead of on a schedule.
    pub fn is_continuous(&self) -> bool {
        self.as_spec().kind().continuous
    }

    /// Checks what a run will need from outside before the first run comes due (EC2
    /// credentials, the files an Apache watch's globs match): `Ok(Some(what))` names what was
    /// checked, `Ok(None)` means there is nothing to check, and `Err` says what will make runs
    /// fail.
    pub async fn preflight(&self) -> Result<Option<String>, String> {
        self.as_spec().preflight().await
    }

    /// What `opsd check` can tell about this job's runs beyond its preflight ([`check`]).
    pub fn check(&self, ctx: &check::CheckContext) -> Vec<check::Finding> {
        self.as_spec().check(ctx)
    }

    /// Runs the job once; returns promptly after `ctx.cancel` fires.
    pub async fn run(&self, ctx: &RunContext) -> RunReport {
        // Each type's run is boxed ([`JobSpec::run`]) so a run takes the memory its own type
        // needs: unboxed, every run would be as large as the largest (an AWS SDK call, ~12 KB),
        // which is 12 MB for 1,000 command runs at once.
        self.as_spec().run(ctx).await
    }
}

#[cfg(test)]
impl RunContext {
    /// A context for unit tests of a job type's run: no sinks, no state directory, nothing live.
    pub(crate) fn for_tests(job: &str) -> Self {
        RunContext {
            job: job.into(),
            run_id: "r1".into(),
            cancel: CancellationToken::new(),
            state_dir: "/nonexistent".into(),
            dry_run: false,
            foreground: false,
            kill_grace: Duration::from_secs(1),
            alerts: crate::alert::Dispatcher::new(&Default::default(), Default::default())
                .expect("no sinks"),
            alert_to: Vec::new().into(),
            live: LiveSlot::default(),
            fencing_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_is_registered_once_and_names_its_own_row() {
        let names: std::collections::BTreeSet<&str> = REGISTRY.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), REGISTRY.len(), "a name is registered twice");
        for kind in REGISTRY {
            assert!(!(kind.fields)().is_empty(), "{} has keys", kind.name);
        }
        let text = "[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = [\"true\"]\n";
        let cfg = crate::config::parse(std::path::Path::new("jobs.toml"), text).expect("valid");
        let kind = cfg.jobs["a"].spec.as_spec().kind();
        assert!(REGISTRY.iter().any(|k| std::ptr::eq(*k, kind)));
        assert_eq!(kind.name, "command");
    }

    #[test]
    fn a_killed_report_carries_only_its_outcome_and_detail() {
        let report = RunReport::killed("cancelled before start");
        assert_eq!(report.outcome, Outcome::Killed);
        assert_eq!(report.detail.as_deref(), Some("cancelled before start"));
        assert_eq!((report.exit_code, report.signal), (None, None));
        assert!(report.output.is_empty());
    }

    #[test]
    fn a_run_takes_the_memory_of_its_own_type_not_the_largest() {
        let text =
            "[jobs.a]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = [\"/bin/true\"]\n";
        let cfg = crate::config::parse(std::path::Path::new("jobs.toml"), text).expect("valid");
        let ctx = RunContext::for_tests("a");
        let run = cfg.jobs["a"].spec.run(&ctx);
        // Unboxed, this was the size of an AWS SDK call's state (~12 KB) for every run.
        assert!(
            std::mem::size_of_val(&run) <= 64,
            "a run's future is {} bytes",
            std::mem::size_of_val(&run)
        );
    }
}
