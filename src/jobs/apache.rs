//! The `apache_log` job type: watch Apache error logs continuously and report alert-worthy
//! events (child segfaults, worker exhaustion, PHP fatals, ...) from the built-in rules and the
//! job's own. The reading and matching live in [`crate::apache`]; this is the job's face.

use super::{Outcome, RunContext, RunReport};
use crate::alert::Alert;
use crate::apache::doctor::{diagnose, Diagnosis, DoctorError, DoctorOptions, Verdict};
use crate::apache::rules::{builtin_rules, Dedup, LogEvent, Rule, Severity, BUILTIN_IDS};
use crate::apache::watch::{watch_reporting, WatchConfig, Watcher};
use crate::field::{did_you_mean_hint, FieldError, HumanDuration};
use crate::logging::CRITICAL_TARGET;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;
use toml::Spanned;
use tracing::{info, warn};

mod kind;
mod live;

pub use kind::KIND;
pub use live::WatchFigures;

/// Default time between two passes over the files.
const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// Files named per glob by `opsd check`.
const LISTED_FILES: usize = 10;
/// Default window and cooldown of custom rules.
const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// How long the doctor may take at job start, all three Apache calls together.
pub const DOCTOR_TIMEOUT: Duration = Duration::from_secs(20);
/// The compiled size a custom rule's regex may take: ample for any log pattern, and it bounds
/// the time and memory a reload spends compiling a job file's rules.
const RULE_REGEX_LIMIT: usize = 1 << 20;
/// The built-in rule whose alerts carry advice from the doctor's verdict.
const CHILD_CRASH: &str = "child_crash";

/// The `type = "apache_log"` keys of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApacheLogSpec {
    /// Glob patterns of the error logs to follow (absolute; re-scanned every second).
    pub paths: Spanned<Vec<String>>,
    /// Read files seen for the first time from their beginning instead of their end.
    #[serde(default)]
    pub from_beginning: bool,
    /// Custom rules, matched beside the built-in ones.
    #[serde(default)]
    pub rules: Vec<CustomRuleSpec>,
    /// Ids of built-in rules to turn off.
    #[serde(default)]
    pub disable_rules: Vec<Spanned<String>>,
    /// Names of the alert sinks events go to.
    #[serde(default)]
    pub alert: Vec<String>,
    /// Time between two passes over the files (default 200 ms).
    pub poll_interval: Option<Spanned<HumanDuration>>,
    /// The Apache program `opsd apache doctor` runs at job start (default: its own lookup).
    pub apache_bin: Option<PathBuf>,
}

/// One custom rule, `[[jobs.NAME.rules]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRuleSpec {
    /// A short stable name for alerts.
    pub id: Spanned<String>,
    /// The regex, matched anywhere in the line.
    pub regex: Spanned<String>,
    /// How urgent a match is (default `warning`).
    #[serde(default)]
    pub severity: Severity,
    /// Matches within `window` needed for an event (default 1).
    pub count: Option<Spanned<u32>>,
    /// The span matches are counted in (default 10 minutes).
    pub window: Option<HumanDuration>,
    /// Quiet time after an event for the same key (default: the window).
    pub cooldown: Option<HumanDuration>,
    /// Groups matches by this template of the regex's captures (`"$1"`, `"${vhost}"`).
    pub dedup: Option<String>,
    /// What a match means and what to do, for the alert text.
    pub summary: Option<String>,
}

impl ApacheLogSpec {
    /// Checks what serde cannot: absolute, valid globs; compiling, unique rules; known rule ids.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let paths_err =
            |msg: String| FieldError::new(self.paths.span(), format!("{prefix}.paths"), msg);
        if self.paths.get_ref().is_empty() {
            errors.push(paths_err(
                "give at least one path, e.g. [\"/var/log/apache2/*error.log\"]".to_string(),
            ));
        }
        for p in self.paths.get_ref() {
            if !p.starts_with('/') {
                errors.push(paths_err(format!("{p:?} must be an absolute path")));
            } else if let Err(e) = glob::Pattern::new(p) {
                errors.push(paths_err(format!("{p:?} is not a valid glob: {e}")));
            }
        }
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        for rule in &self.rules {
            let id = rule.id.get_ref().as_str();
            let key = format!("{prefix}.rules.{id}");
            if id.is_empty() || BUILTIN_IDS.contains(&id) || !ids.insert(id) {
                errors.push(FieldError::new(
                    rule.id.span(),
                    format!("{key}.id"),
                    "rule ids must be non-empty, unique, and not those of built-in rules",
                ));
            }
            match regex::bytes::RegexBuilder::new(rule.regex.get_ref())
                .size_limit(RULE_REGEX_LIMIT)
                .build()
            {
                Ok(re) if re.is_match(b"") => errors.push(FieldError::new(
                    rule.regex.span(),
                    format!("{key}.regex"),
                    "this regex matches an empty line, so it would match every line",
                )),
                Ok(_) => {}
                Err(regex::Error::CompiledTooBig(_)) => errors.push(FieldError::new(
                    rule.regex.span(),
                    format!("{key}.regex"),
                    format!(
                        "this regex is too big once compiled (over {} MiB): write fewer or \
                         smaller repetitions, or ASCII classes ([0-9A-Za-z_] rather than \\w)",
                        RULE_REGEX_LIMIT >> 20
                    ),
                )),
                Err(e) => errors.push(FieldError::new(
                    rule.regex.span(),
                    format!("{key}.regex"),
                    format!("invalid regex: {e}"),
                )),
            }
            if let Some(c) = &rule.count {
                if *c.get_ref() == 0 {
                    errors.push(FieldError::new(
                        c.span(),
                        format!("{key}.count"),
                        "count must be at least 1",
                    ));
                }
            }
        }
        for d in &self.disable_rules {
            if !BUILTIN_IDS.contains(&d.get_ref().as_str()) {
                let hint =
                    did_you_mean_hint(d.get_ref(), BUILTIN_IDS.iter().copied()).unwrap_or_default();
                errors.push(FieldError::new(
                    d.span(),
                    format!("{prefix}.disable_rules"),
                    format!(
                        "no built-in rule {:?}{hint} (known: {})",
                        d.get_ref(),
                        BUILTIN_IDS.join(", ")
                    ),
                ));
            }
        }
        if let Some(p) = &self.poll_interval {
            let d = p.get_ref().0;
            if d < Duration::from_millis(10) || d > Duration::from_secs(60) {
                errors.push(FieldError::new(
                    p.span(),
                    format!("{prefix}.poll_interval"),
                    "poll_interval must be between 10ms and 60s",
                ));
            }
        }
        errors
    }

    /// The built-in rules not disabled, then the custom ones.
    pub fn rules(&self) -> Vec<Rule> {
        let disabled: BTreeSet<&str> = self
            .disable_rules
            .iter()
            .map(|d| d.get_ref().as_str())
            .collect();
        let mut rules: Vec<Rule> = builtin_rules()
            .into_iter()
            .filter(|r| !disabled.contains(r.id.as_str()))
            .collect();
        rules.extend(self.rules.iter().map(|c| {
            let window = c.window.map_or(DEFAULT_WINDOW, |w| w.0);
            Rule {
                id: c.id.get_ref().clone(),
                summary: c
                    .summary
                    .clone()
                    .unwrap_or_else(|| format!("custom rule {}", c.id.get_ref())),
                pattern: c.regex.get_ref().clone(),
                severity: c.severity,
                count: c.count.as_ref().map_or(1, |n| *n.get_ref()),
                window,
                cooldown: c.cooldown.map_or(window, |d| d.0),
                dedup: c.dedup.clone().map_or(Dedup::Rule, Dedup::Template),
                escalate: None,
            }
        }));
        rules
    }

    /// Which files each glob of `paths` matches now, for `opsd check`: one `PATTERN: FILE, ...`
    /// part per glob (at most [`LISTED_FILES`] names each), or that it matches no file today.
    pub fn files_today(&self) -> String {
        let parts: Vec<String> = self
            .paths
            .get_ref()
            .iter()
            .map(|pattern| {
                let mut files: Vec<PathBuf> = glob::glob(pattern)
                    .map(|paths| paths.flatten().filter(|p| p.is_file()).collect())
                    .unwrap_or_default();
                files.sort();
                let shown = crate::escape::control(pattern).into_owned();
                if files.is_empty() {
                    return format!(
                        "{shown} matches no file today (a file that appears is followed within a second)"
                    );
                }
                let mut names: Vec<String> = files
                    .iter()
                    .take(LISTED_FILES)
                    .map(|f| crate::escape::control(&f.display().to_string()).into_owned())
                    .collect();
                if files.len() > LISTED_FILES {
                    names.push(format!("and {} more", files.len() - LISTED_FILES));
                }
                format!("{shown} matches {} file(s): {}", files.len(), names.join(", "))
            })
            .collect();
        format!("follows today: {}", parts.join("; "))
    }

    /// The watcher's configuration for job `job`.
    pub fn watch_config(&self, job: &str) -> WatchConfig {
        let mut cfg = WatchConfig::new(job, self.paths.get_ref().clone(), self.rules());
        cfg.from_beginning = self.from_beginning;
        cfg.poll_interval = self
            .poll_interval
            .as_ref()
            .map_or(DEFAULT_POLL, |p| p.get_ref().0);
        cfg
    }
}

/// Where job `job` keeps its checkpoint: `state_dir/apache/<job>.json`.
pub fn checkpoint_path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("apache").join(format!("{job}.json"))
}

/// Logs a watch event at a tracing level (and target), with the standard fields.
macro_rules! log_event_at {
    ($level:ident, $job:expr, $ev:expr) => {
        log_event_at!($level, module_path!(), $job, $ev)
    };
    ($level:ident, $target:expr, $job:expr, $ev:expr) => {
        tracing::$level!(
            target: $target,
            job = %$job,
            rule = %$ev.rule,
            severity = %$ev.severity,
            count = $ev.count,
            file = %$crate::escape::control(&$ev.file),
            line = %$crate::escape::control(&$ev.last_line),
            first_line = %$crate::escape::control(&$ev.first_line),
            dedup_key = $ev
                .dedup_key
                .as_deref()
                .map(|k| tracing::field::display($crate::escape::control(k))),
            suppressed = $ev.suppressed,
            "{}: {}{}", $job, $ev.summary,
            $ev.suppressed_note().map(|n| format!(" ({n})")).unwrap_or_default()
        )
    };
}

/// Logs one event at the level its severity calls for (critical: journald priority crit).
pub fn log_event(job: &str, ev: &LogEvent) {
    match ev.severity {
        Severity::Critical => log_event_at!(error, CRITICAL_TARGET, job, ev),
        Severity::High => log_event_at!(error, job, ev),
        Severity::Warning | Severity::Info => log_event_at!(warn, job, ev),
    }
}

/// Watches until `ctx.cancel` fires, logging every event; events go to `on_event` too, and
/// the watch's figures to `ctx.live` after every pass and every event.
pub async fn run_with(
    spec: &ApacheLogSpec,
    ctx: &RunContext,
    mut on_event: impl FnMut(&LogEvent),
) -> RunReport {
    if ctx.dry_run {
        return RunReport {
            outcome: Outcome::Skipped,
            exit_code: None,
            signal: None,
            detail: Some(format!(
                "apache_log has no dry run; `opsd apache test-rules LOG --job {}` shows what its rules would match in a log",
                ctx.job
            )),
            output: Vec::new(),
        };
    }
    let cfg = spec.watch_config(&ctx.job);
    let path = checkpoint_path(&ctx.state_dir, &ctx.job);
    let watcher = match tokio::task::spawn_blocking(move || Watcher::new(cfg, path)).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return RunReport::failed(e.to_string()),
        Err(e) => return RunReport::failed(format!("the log reader task failed: {e}")),
    };
    info!(job = %ctx.job, rules = watcher.rules().len(), "{}: watching Apache error logs", ctx.job);
    let figures = Arc::new(live::Publisher::new(ctx.live.clone(), ctx.alert_to.len()));
    let on_pass = {
        let figures = Arc::clone(&figures);
        let (alerts, sinks) = (ctx.alerts.clone(), Arc::clone(&ctx.alert_to));
        move |w: &Watcher, stats: &crate::apache::watch::WatchStats| {
            let following = w
                .followed()
                .map(|p| crate::escape::control(&p.display().to_string()).into_owned())
                .collect();
            let all = alerts.stats();
            let sink_stats = sinks
                .iter()
                .filter_map(|name| Some((name.clone(), *all.get(name)?)))
                .collect();
            figures.pass(following, stats, sink_stats);
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let task = tokio::spawn(watch_reporting(watcher, ctx.cancel.clone(), tx, on_pass));
    while let Some(ev) = rx.recv().await {
        log_event(&ctx.job, &ev);
        on_event(&ev);
        figures.alert(&ev);
    }
    match task.await {
        Ok(Ok(stats)) => RunReport::success(Some(format!(
            "stopped after {} lines, {} events ({} dropped while the consumer was behind), {} matches held back by cooldowns, {} failed checkpoint saves",
            stats.lines, stats.events, stats.dropped, stats.suppressed, stats.failed_saves
        ))),
        Ok(Err(e)) => RunReport::failed(e.to_string()),
        Err(e) => RunReport::failed(format!("the watcher task failed: {e}")),
    }
}

/// Watches until `ctx.cancel` fires, logging every event and sending it to the job's sinks;
/// child-crash alerts carry advice that follows the doctor's verdict once it has answered.
pub async fn run(spec: &ApacheLogSpec, ctx: &RunContext) -> RunReport {
    let diagnosis = Arc::new(OnceLock::new());
    if !ctx.dry_run {
        let slot = Arc::clone(&diagnosis);
        let bin = spec.apache_bin.clone();
        let job = Arc::clone(&ctx.job);
        tokio::spawn(async move {
            if let Some(d) = run_doctor(&job, bin).await {
                let _ = slot.set(d);
            }
        });
    }
    run_with(spec, ctx, |ev| {
        let alert = alert_for(&ctx.job, ev, diagnosis.get());
        ctx.alerts.deliver(alert, &ctx.alert_to);
    })
    .await
}

/// Why the doctor gave no diagnosis at job start.
#[derive(Debug, thiserror::Error)]
pub enum StartDoctorError {
    /// Apache could not be examined.
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    /// All the calls together took longer than [`DOCTOR_TIMEOUT`].
    #[error("the doctor did not finish within {}s", DOCTOR_TIMEOUT.as_secs())]
    Timeout,
    /// The blocking thread or its runtime could not be set up.
    #[error("cannot run the doctor: {0}")]
    Thread(String),
}

/// Runs `opsd apache doctor` on `bin` (or its default lookup) on a blocking thread with its own
/// runtime, for at most `timeout`.
pub async fn diagnose_in_background(
    bin: Option<PathBuf>,
    timeout: Duration,
) -> Result<Diagnosis, StartDoctorError> {
    let task = tokio::task::spawn_blocking(move || {
        let opts = DoctorOptions::new(bin, Vec::new())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartDoctorError::Thread(e.to_string()))?;
        rt.block_on(async {
            tokio::time::timeout(timeout, diagnose(&opts))
                .await
                .map_err(|_| StartDoctorError::Timeout)?
                .map_err(StartDoctorError::from)
        })
    });
    task.await
        .map_err(|e| StartDoctorError::Thread(e.to_string()))?
}

/// The doctor's diagnosis for job `job`, logged; `None` (with a warning) when it cannot run.
async fn run_doctor(job: &str, bin: Option<PathBuf>) -> Option<Diagnosis> {
    match diagnose_in_background(bin, DOCTOR_TIMEOUT).await {
        Ok(d) => {
            info!(
                job = %job,
                verdict = ?d.verdict,
                "{}: apache doctor: {}", job, d.summary()
            );
            Some(d)
        }
        Err(e) => {
            warn!(job = %job, error = %e, "{}: apache doctor could not examine the server; child-crash alerts will not carry its verdict", job);
            None
        }
    }
}

/// The alert record for one event; a child crash carries advice (in `extra`) that follows
/// the doctor's verdict for this server.
pub fn alert_for(job: &str, ev: &LogEvent, diagnosis: Option<&Diagnosis>) -> Alert {
    let summary = match ev.suppressed_note() {
        Some(note) => format!("{} ({note})", ev.summary),
        None => ev.summary.clone(),
    };
    let alert = Alert::new(job, &ev.rule, alert_severity(ev.severity), summary)
        .with_count(u64::from(ev.count))
        .with_lines(ev.first_line.clone(), Some(ev.last_line.clone()))
        .with_source(ev.file.clone(), ev.dedup_key.clone());
    if ev.rule == CHILD_CRASH {
        alert.with_extra(crash_advice(ev, diagnosis))
    } else {
        alert
    }
}

/// `possible coredump in DIR`, as `AH00051` names where the crashed child's core went.
static CORE_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"AH00051: .*possible coredump in (\S+)").expect("constant regex compiles")
});

/// How to find the cause of a child crash that is not the known recipe.
pub const CORE_ADVICE: &str = "to find the cause, let the next crash leave a core: set \
    `CoreDumpDirectory /var/crash/apache2` (a directory the Apache user can write) and \
    `LimitCORE=infinity` in its unit; the crash line then reads `AH00051: ... possible coredump \
    in DIR`: open the core with `gdb /usr/sbin/apache2 DIR/core`";

/// The advice of a child-crash alert: the doctor's verdict for this server when it has one
/// (the php-fpm fix only when the server matches the recipe), then where the core is when the
/// crash line names one (`AH00051`), or else how to get one when the recipe is not the cause.
pub fn crash_advice(ev: &LogEvent, diagnosis: Option<&Diagnosis>) -> String {
    let core = CORE_PATH.captures(&ev.last_line).map(|c| {
        format!(
            "the child left a core in {dir} (AH00051): open it with `gdb /usr/sbin/apache2 {dir}/core`",
            dir = crate::escape::control(&c[1])
        )
    });
    let (verdict, known) = match diagnosis {
        Some(d) => (d.crash_advice(), d.verdict != Verdict::NoRecipe),
        None => (
            "the doctor has no verdict for this server: run `opsd apache doctor` to check for \
             the known mod_php + HTTP/2 recipe"
                .to_string(),
            false,
        ),
    };
    match core {
        Some(core) => format!("{verdict}; {core}"),
        None if known => verdict,
        None => format!("{verdict}; {CORE_ADVICE}"),
    }
}

/// Maps a rule's severity onto the alert record's.
fn alert_severity(s: Severity) -> crate::alert::Severity {
    match s {
        Severity::Critical => crate::alert::Severity::Critical,
        Severity::High => crate::alert::Severity::High,
        Severity::Warning => crate::alert::Severity::Warning,
        Severity::Info => crate::alert::Severity::Info,
    }
}

#[cfg(test)]
mod tests;
