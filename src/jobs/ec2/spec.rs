//! The `type = "ec2"` keys of a job and the checks serde cannot make: a selection that is
//! never "all instances", well-formed ids, tags, region and endpoint.

use crate::field::{FieldError, HumanDuration};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;
use toml::Spanned;

/// Largest selection a run acts on unless the job raises `max_instances`.
pub const DEFAULT_MAX_INSTANCES: u32 = 20;
/// How long `wait = true` waits for the target state unless `wait_timeout` says otherwise.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// What the job does to the instances it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// StartInstances on `stopped` instances.
    Start,
    /// StopInstances on `running` instances.
    Stop,
    /// StopInstances with `Hibernate = true` on `running` instances.
    Hibernate,
}

impl Action {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Hibernate => "hibernate",
        }
    }

    /// The IAM action the API call needs, for error messages and the docs.
    pub fn iam_action(self) -> &'static str {
        match self {
            Action::Start => "ec2:StartInstances",
            Action::Stop | Action::Hibernate => "ec2:StopInstances",
        }
    }

    /// The past tense for summaries ("started").
    pub fn done(self) -> &'static str {
        match self {
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Hibernate => "hibernated",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type = "ec2"` keys of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Ec2Spec {
    /// `start`, `stop` or `hibernate`.
    pub action: Spanned<Action>,
    /// The AWS region, e.g. `ap-northeast-2`.
    pub region: Spanned<String>,
    /// Instances to act on by id.
    #[serde(default)]
    pub instance_ids: Option<Spanned<Vec<Spanned<String>>>>,
    /// Instances to act on by tag; every listed tag must match exactly.
    #[serde(default)]
    pub tags: Option<Spanned<BTreeMap<String, String>>>,
    /// Wait until every changed instance reaches the target state.
    #[serde(default)]
    pub wait: bool,
    /// How long `wait` waits (default 10 minutes).
    pub wait_timeout: Option<HumanDuration>,
    /// Only ask EC2 whether the calls would succeed; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Refuse a run whose selection is larger than this (default 20).
    pub max_instances: Option<Spanned<i64>>,
    /// Also act on members of Auto Scaling groups (skipped by default).
    #[serde(default)]
    pub include_autoscaling: bool,
    /// A selection that matches no instance is fine (by default it fails the run).
    #[serde(default)]
    pub allow_empty: bool,
    /// A profile of the shared AWS config and credentials files.
    pub profile: Option<Spanned<String>>,
    /// Use this endpoint instead of the region's (private endpoints, tests).
    pub endpoint_url: Option<Spanned<String>>,
}

impl Ec2Spec {
    /// The action as a plain value.
    pub fn action(&self) -> Action {
        *self.action.get_ref()
    }

    /// The requested instance ids, in order, without repeats.
    pub fn ids(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.instance_ids
            .iter()
            .flat_map(|v| v.get_ref())
            .map(|s| s.get_ref().clone())
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// The tags every selected instance must carry.
    pub fn tag_filter(&self) -> BTreeMap<String, String> {
        self.tags
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default()
    }

    /// The selection limit.
    pub fn max_instances(&self) -> usize {
        self.max_instances
            .as_ref()
            .and_then(|m| usize::try_from(*m.get_ref()).ok())
            .unwrap_or(DEFAULT_MAX_INSTANCES as usize)
    }

    /// How long `wait = true` waits.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout.map_or(DEFAULT_WAIT_TIMEOUT, |d| d.0)
    }

    /// Checks what serde cannot, each problem located at its key.
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let ids = self.instance_ids.as_ref();
        let tags = self.tags.as_ref();
        let no_ids = ids.is_none_or(|v| v.get_ref().is_empty());
        let no_tags = tags.is_none_or(|t| t.get_ref().is_empty());
        if no_ids && no_tags {
            let (span, key) = match (ids, tags) {
                (Some(v), _) => (v.span(), "instance_ids"),
                (None, Some(t)) => (t.span(), "tags"),
                (None, None) => (self.action.span(), "instance_ids"),
            };
            errors.push(FieldError::new(
                span,
                format!("{prefix}.{key}"),
                "an ec2 job needs `instance_ids` and/or `tags`; opsd never acts on all instances \
                 (e.g. tags = { Schedule = \"office-hours\" })",
            ));
        }
        let mut seen = BTreeSet::new();
        for id in ids.iter().flat_map(|v| v.get_ref()) {
            let key = format!("{prefix}.instance_ids");
            if !valid_instance_id(id.get_ref()) {
                errors.push(FieldError::new(
                    id.span(),
                    key,
                    format!(
                        "{:?} is not an instance id (\"i-\" and 8 or 17 hex digits, e.g. \"i-0123456789abcdef0\")",
                        id.get_ref()
                    ),
                ));
            } else if !seen.insert(id.get_ref().as_str()) {
                errors.push(FieldError::new(
                    id.span(),
                    key,
                    format!("{:?} is listed twice", id.get_ref()),
                ));
            }
        }
        if let Some(tags) = tags {
            for (k, v) in tags.get_ref() {
                let problem = if k.trim().is_empty() {
                    Some("a tag key is empty".to_string())
                } else if k.chars().count() > 128 {
                    Some(format!("tag key {k:?} is longer than 128 characters"))
                } else if v.chars().count() > 256 {
                    Some(format!(
                        "the value of tag {k:?} is longer than 256 characters"
                    ))
                } else {
                    None
                };
                if let Some(p) = problem {
                    errors.push(FieldError::new(tags.span(), format!("{prefix}.tags"), p));
                }
            }
        }
        if !valid_region(self.region.get_ref()) {
            errors.push(FieldError::new(
                self.region.span(),
                format!("{prefix}.region"),
                format!(
                    "{:?} is not an AWS region name (e.g. \"ap-northeast-2\", \"us-east-1\")",
                    self.region.get_ref()
                ),
            ));
        }
        if let Some(m) = &self.max_instances {
            if *m.get_ref() < 1 {
                errors.push(FieldError::new(
                    m.span(),
                    format!("{prefix}.max_instances"),
                    "max_instances must be at least 1",
                ));
            }
        }
        if let Some(d) = self.wait_timeout {
            if d.0.is_zero() {
                errors.push(FieldError::new(
                    self.action.span(),
                    format!("{prefix}.wait_timeout"),
                    "wait_timeout must be longer than zero",
                ));
            }
        }
        if let Some(p) = &self.profile {
            if p.get_ref().trim().is_empty() {
                errors.push(FieldError::new(
                    p.span(),
                    format!("{prefix}.profile"),
                    "profile is empty; remove it to use the default credential chain",
                ));
            }
        }
        if let Some(e) = &self.endpoint_url {
            if let Err(why) = check_endpoint(e.get_ref()) {
                errors.push(FieldError::new(
                    e.span(),
                    format!("{prefix}.endpoint_url"),
                    why,
                ));
            }
        }
        errors
    }
}

/// `i-` followed by 8 (old) or 17 (current) lower-case hex digits.
pub fn valid_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Region names are lower-case words joined by '-', ending in a number: `us-gov-west-1`.
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// An endpoint must be an http(s) URL with a host.
fn check_endpoint(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!(
            "{} must be an http:// or https:// URL with a host",
            crate::redact::url(url)
        )),
        Err(e) => Err(format!("endpoint_url is not a URL: {e}")),
    }
}
