//! Find, then decide: turn what DescribeInstances returned into the instances to act on and
//! those to leave alone (with the reason), and the requested ids that do not exist.

use super::spec::Action;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName};
use std::collections::BTreeMap;
use std::fmt;

/// The tag that keeps opsd's hands off an instance when its value is `true`.
pub const SKIP_TAG: &str = "opsd:skip";
/// The tag AWS puts on members of an Auto Scaling group.
pub const ASG_TAG: &str = "aws:autoscaling:groupName";

/// One instance as found, with what the decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `i-...`.
    pub id: String,
    /// The `Name` tag, or empty.
    pub name: String,
    /// The lifecycle state when described.
    pub state: InstanceStateName,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

impl Found {
    /// Extracts what matters from an SDK instance; `None` when it has no id.
    pub fn from_instance(i: &Instance) -> Option<Self> {
        let id = i.instance_id()?.to_string();
        let tags: BTreeMap<String, String> = i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect();
        Some(Found {
            id,
            name: tags.get("Name").cloned().unwrap_or_default(),
            state: i
                .state()
                .and_then(|s| s.name())
                .cloned()
                .unwrap_or_else(|| InstanceStateName::from("unknown")),
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
    /// Tagged `opsd:skip = "true"`.
    OptedOut,
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
    /// True for reasons worth a warning rather than a note (the instance is in flux or gone).
    pub fn is_notable(&self) -> bool {
        matches!(self, SkipReason::WrongState(_) | SkipReason::TagsDiffer)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OptedOut => write!(f, "tagged {SKIP_TAG} = \"true\""),
            SkipReason::AutoScaling(g) => write!(
                f,
                "member of Auto Scaling group {g:?} (set include_autoscaling = true to act on it)"
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
    /// How many instances count against `max_instances`: every match that is not gone
    /// and not opted out, whatever its current state.
    pub fn size(&self) -> usize {
        self.act.len()
            + self
                .skip
                .iter()
                .filter(|(f, r)| {
                    !gone(&f.state) && !matches!(r, SkipReason::OptedOut | SkipReason::TagsDiffer)
                })
                .count()
    }
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
        let reason = if f
            .tags
            .get(SKIP_TAG)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            Some(SkipReason::OptedOut)
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
