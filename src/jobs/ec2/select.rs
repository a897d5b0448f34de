//! Find, then decide: turn what DescribeInstances returned into the instances to act on and
//! those to leave alone (with the reason), and the requested ids that do not exist.
//!
//! Everything here that came from EC2 and ends up in a message (ids, the `Name` tag, tag keys
//! and values) is escaped with [`crate::escape::control`] before it is shown, so a tag written
//! by anyone with `ec2:CreateTags` cannot forge a log line. The opt-out tag fails safe: its key
//! is read case- and separator-insensitively and any value that is not clearly false opts out.

use super::spec::Action;
use crate::escape;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName};
use std::collections::BTreeMap;
use std::fmt;

/// The tag that keeps opsd's hands off an instance when its value is `true` (also written
/// `OPSD:SKIP`, `opsd-skip`, `opsd_skip`, ... with any value but a clearly false one).
pub const SKIP_TAG: &str = "opsd:skip";
/// Values of the opt-out tag that clearly mean "do not skip" (compared trimmed, ignoring case).
const CLEARLY_FALSE: &[&str] = &["false", "no", "0", "off", ""];
/// The tag AWS puts on members of an Auto Scaling group.
pub const ASG_TAG: &str = "aws:autoscaling:groupName";

/// One instance as found, with what the decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `i-...`, escaped (a real id has nothing to escape, so it is still the id to call with).
    pub id: String,
    /// The `Name` tag escaped for log lines, or empty.
    pub name: String,
    /// The lifecycle state when described.
    pub state: InstanceStateName,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

impl Found {
    /// Extracts what matters from an SDK instance; `None` when it has no id.
    pub fn from_instance(i: &Instance) -> Option<Self> {
        let id = escape::control(i.instance_id()?).into_owned();
        let tags: BTreeMap<String, String> = i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect();
        Some(Found {
            id,
            name: tags
                .get("Name")
                .map(|n| escape::control(n).into_owned())
                .unwrap_or_default(),
            // A state EC2 does not define keeps its text, so it is escaped too.
            state: i.state().and_then(|s| s.name()).map_or_else(
                || InstanceStateName::from("unknown"),
                |s| InstanceStateName::from(escape::control(s.as_str()).as_ref()),
            ),
            tags,
        })
    }

    /// `i-... (Name)` for summaries.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.id, self.name)
        }
    }
}

/// Why an instance is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Tagged with the opt-out tag: its key and value as written on the instance.
    OptedOut {
        /// The tag key, e.g. `opsd:skip` or `OPSD-Skip`.
        key: String,
        /// The tag value, e.g. `true` or `yes`.
        value: String,
    },
    /// A member of this Auto Scaling group, and the job did not opt in.
    AutoScaling(String),
    /// Requested by id but its tags do not match the job's `tags`.
    TagsDiffer,
    /// Already in (or on its way to) the target state.
    AlreadyThere(InstanceStateName),
    /// In a state the action does not apply to (pending, stopping, terminated...).
    WrongState(InstanceStateName),
}

impl SkipReason {
    /// True for reasons worth a warning rather than a note: the instance is in flux or gone,
    /// or its opt-out tag is written in a way other than `opsd:skip = "true"`.
    pub fn is_notable(&self) -> bool {
        match self {
            SkipReason::WrongState(_) | SkipReason::TagsDiffer => true,
            SkipReason::OptedOut { key, value } => !canonical_opt_out(key, value),
            SkipReason::AutoScaling(_) | SkipReason::AlreadyThere(_) => false,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OptedOut { key, value } if canonical_opt_out(key, value) => {
                write!(f, "tagged {SKIP_TAG} = \"true\"")
            }
            SkipReason::OptedOut { key, value } => write!(
                f,
                "tagged \"{}\" = \"{}\", read as {SKIP_TAG} = \"true\" (only \"false\", \"no\", \"0\", \"off\" \
                 or \"\" opt back in; write {SKIP_TAG} = \"true\" to say it plainly)",
                escape::control(key),
                escape::control(value)
            ),
            SkipReason::AutoScaling(g) => write!(
                f,
                "member of Auto Scaling group \"{}\" (set include_autoscaling = true to act on it)",
                escape::control(g)
            ),
            SkipReason::TagsDiffer => f.write_str("its tags do not match the job's `tags`"),
            SkipReason::AlreadyThere(s) => write!(f, "already {}", s.as_str()),
            SkipReason::WrongState(s) => write!(f, "is {}; not acted on", s.as_str()),
        }
    }
}

/// The decision for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Instances to act on.
    pub act: Vec<Found>,
    /// Instances left alone and why.
    pub skip: Vec<(Found, SkipReason)>,
    /// Requested ids that EC2 did not return.
    pub missing: Vec<String>,
}

impl Selection {
    /// True when the selection matched nothing at all: no instance found, no id missing.
    pub fn is_empty(&self) -> bool {
        self.act.is_empty() && self.skip.is_empty() && self.missing.is_empty()
    }

    /// How many instances count against `max_instances`: every match that is not gone
    /// and not opted out, whatever its current state.
    pub fn size(&self) -> usize {
        self.act.len()
            + self
                .skip
                .iter()
                .filter(|(f, r)| {
                    !gone(&f.state)
                        && !matches!(r, SkipReason::OptedOut { .. } | SkipReason::TagsDiffer)
                })
                .count()
    }
}

/// True for a tag key that is the opt-out tag however it is written: case, `:`, `-`, `_`,
/// `.` and spaces do not matter (`opsd:skip`, `OPSD:SKIP`, `opsd-skip`, `Opsd_Skip`).
pub fn is_skip_key(key: &str) -> bool {
    let mut letters = key
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '_' | '.') && !c.is_whitespace())
        .flat_map(char::to_lowercase);
    "opsdskip".chars().all(|want| letters.next() == Some(want)) && letters.next().is_none()
}

/// True for an opt-out value that keeps the instance in the selection.
fn clearly_false(value: &str) -> bool {
    let v = value.trim();
    CLEARLY_FALSE.iter().any(|f| v.eq_ignore_ascii_case(f))
}

/// True for the documented spelling, `opsd:skip = "true"` (any case of `true`).
fn canonical_opt_out(key: &str, value: &str) -> bool {
    key == SKIP_TAG && value.trim().eq_ignore_ascii_case("true")
}

/// Why `tags` opt out of every job, if they do: the first opt-out tag whose value is not clearly false.
fn opt_out(tags: &BTreeMap<String, String>) -> Option<SkipReason> {
    tags.iter()
        .find(|(k, v)| is_skip_key(k) && !clearly_false(v))
        .map(|(k, v)| SkipReason::OptedOut {
            key: k.clone(),
            value: v.clone(),
        })
}

/// True for instances that are terminated or on their way.
fn gone(state: &InstanceStateName) -> bool {
    matches!(
        state,
        InstanceStateName::Terminated | InstanceStateName::ShuttingDown
    )
}

/// The DescribeInstances filters for a selection: by id when ids are given (ids that do not
/// exist then just do not come back, instead of failing the whole call), else by tag.
pub fn filters(ids: &[String], tags: &BTreeMap<String, String>) -> Vec<Filter> {
    if !ids.is_empty() {
        return vec![Filter::builder()
            .name("instance-id")
            .set_values(Some(ids.to_vec()))
            .build()];
    }
    tags.iter()
        .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
        .collect()
}

/// Decides what to do with each instance found for `action`.
pub fn decide(
    action: Action,
    ids: &[String],
    tags: &BTreeMap<String, String>,
    include_autoscaling: bool,
    found: Vec<Found>,
) -> Selection {
    let mut sel = Selection {
        missing: ids
            .iter()
            .filter(|id| !found.iter().any(|f| &f.id == *id))
            .cloned()
            .collect(),
        ..Selection::default()
    };
    for f in found {
        // Filters match by prefix and wildcard; the tags must match exactly.
        let tags_match = tags.iter().all(|(k, v)| f.tags.get(k) == Some(v));
        let reason = if let Some(opted_out) = opt_out(&f.tags) {
            Some(opted_out)
        } else if !tags_match {
            if ids.contains(&f.id) {
                Some(SkipReason::TagsDiffer)
            } else {
                // Not part of the selection at all (a wildcard match of the filter).
                continue;
            }
        } else if let Some(group) = f.tags.get(ASG_TAG).filter(|_| !include_autoscaling) {
            Some(SkipReason::AutoScaling(group.clone()))
        } else {
            state_reason(action, &f.state)
        };
        match reason {
            Some(r) => sel.skip.push((f, r)),
            None => sel.act.push(f),
        }
    }
    sel
}

/// Whether `action` applies to an instance in `state`; `None` when it does.
fn state_reason(action: Action, state: &InstanceStateName) -> Option<SkipReason> {
    use InstanceStateName as S;
    match (action, state) {
        (Action::Start, S::Stopped) => None,
        (Action::Stop | Action::Hibernate, S::Running) => None,
        (Action::Start, S::Running) | (Action::Stop | Action::Hibernate, S::Stopped) => {
            Some(SkipReason::AlreadyThere(state.clone()))
        }
        _ => Some(SkipReason::WrongState(state.clone())),
    }
}
