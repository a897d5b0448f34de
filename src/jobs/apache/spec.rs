//! The `apache_log` job's keys (`ApacheLogSpec`, its custom rules), their checks beyond serde,
//! and what they give the watcher: the rule set and its configuration.

use crate::apache::rules::{builtin_rules, Dedup, Rule, BUILTIN_IDS};
use crate::apache::watch::WatchConfig;
use crate::field::{did_you_mean_hint, FieldError, HumanDuration};
use crate::severity::Severity;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Default time between two passes over the files.
const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// Files named per glob by `opsd check`.
const LISTED_FILES: usize = 10;
/// Default window and cooldown of custom rules.
const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// The compiled size a custom rule's regex may take: ample for any log pattern, and it bounds
/// the time and memory a reload spends compiling a job file's rules.
const RULE_REGEX_LIMIT: usize = 1 << 20;

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
    /// part per glob (at most `LISTED_FILES` names each), or that it matches no file today.
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
