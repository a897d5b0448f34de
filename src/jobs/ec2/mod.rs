//! The `ec2` job type: start, stop or hibernate the EC2 instances a job selects by id and/or
//! tag. Find, then act: describe first, leave alone what must not be touched (`opsd:skip`,
//! Auto Scaling members, instances in the wrong state), refuse oversized selections, then call
//! EC2 one instance at a time, optionally waiting for the target state. Dry runs use EC2's own
//! DryRun check.

mod act;
pub mod check;
mod client;
mod errors;
mod kind;
mod select;
mod spec;

pub use client::{preflight, retry_config, MAX_ATTEMPTS};
pub use errors::{Call, Ec2Error, Target};
pub use kind::KIND;
pub use select::{ASG_TAG, SKIP_TAG};
pub use spec::{Action, Ec2Spec, DEFAULT_MAX_INSTANCES, DEFAULT_WAIT_TIMEOUT};

use select::Found;

use super::{Outcome, RunContext, RunReport};
use crate::escape;
use aws_sdk_ec2::Client;
use futures_util::future::join_all;

/// Most instance labels listed in a run's one-line detail.
const MAX_LISTED: usize = 10;

/// Runs the job once: resolves credentials, builds the client, then [`run_with`].
pub async fn run(spec: &Ec2Spec, ctx: &RunContext) -> RunReport {
    let connected = tokio::select! {
        c = client::connect(spec) => c,
        () = ctx.cancel.cancelled() => return cancelled("before contacting EC2"),
    };
    match connected {
        Ok((client, source)) => {
            tracing::debug!(job = %ctx.job, run_id = %ctx.run_id, credentials = %source, "{}: credentials resolved", ctx.job);
            run_with(&client, spec, ctx).await
        }
        Err(e) => {
            tracing::error!(job = %ctx.job, run_id = %ctx.run_id, error_kind = e.kind(), "{}: {e}", ctx.job);
            RunReport::failed(e.to_string())
        }
    }
}

/// What happened to each instance of a run. Every label here is escaped already.
#[derive(Debug, Default)]
struct Tally {
    /// Changed (or, in a dry run, would change).
    changed: Vec<String>,
    /// EC2 accepted the call, but the run was cancelled while waiting for the target state.
    requested: Vec<String>,
    /// May have changed without opsd knowing for sure: a call cut off by a cancel, an answer
    /// that does not list the instance, a DryRun call the endpoint carried out.
    uncertain: Vec<String>,
    /// Left alone.
    skipped: usize,
    /// Failed, with the first error.
    failed: Vec<String>,
    /// The dry run stopped because the endpoint ignored DryRun.
    dry_run_ignored: bool,
}

/// Runs the job once with a ready client (tests hand in a mocked one).
pub async fn run_with(client: &Client, spec: &Ec2Spec, ctx: &RunContext) -> RunReport {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    let action = spec.action();
    let dry_run = spec.dry_run || ctx.dry_run;
    let target = client::target(spec);
    let ids = spec.ids();
    let tags = spec.tag_filter();

    let described = tokio::select! {
        d = act::describe(client, &target, select::filters(&ids, &tags)) => d,
        () = ctx.cancel.cancelled() => return cancelled("while describing instances"),
    };
    let found = match described {
        Ok(instances) => instances.iter().filter_map(Found::from_instance).collect(),
        Err(e) => {
            tracing::error!(job, run_id, error_kind = e.kind(), "{}: {e}", job);
            return RunReport::failed(e.to_string());
        }
    };
    let sel = select::decide(action, &ids, &tags, spec.include_autoscaling, found);

    if sel.is_empty() {
        return empty_selection(ctx, spec, &target);
    }
    let limit = spec.max_instances();
    if sel.size() > limit {
        let msg = format!(
            "refusing to {action}: the selection matched {} instances, more than max_instances = {limit}; \
             narrow `tags`/`instance_ids` or raise max_instances",
            sel.size()
        );
        tracing::error!(
            job,
            run_id,
            action = action.as_str(),
            selected = sel.size(),
            max_instances = limit,
            "{}: {msg}",
            job
        );
        return RunReport::failed(msg);
    }

    let mut tally = Tally::default();
    log_unacted(ctx, action, &target, &sel, &mut tally);
    let run = Act {
        client,
        target: &target,
        ctx,
        action,
    };
    let to_wait = if dry_run {
        run.check_all(&sel.act, &mut tally).await;
        Vec::new()
    } else {
        run.apply_all(&sel.act, spec.wait, &mut tally).await
    };
    if !to_wait.is_empty() {
        run.wait_all(&to_wait, spec.wait_timeout(), &mut tally)
            .await;
    }
    let interrupted = ctx
        .cancel
        .is_cancelled()
        .then_some("cancelled before every instance was handled");
    finish(ctx, action, dry_run, tally, interrupted)
}

/// The report of a run whose selection matched nothing: a failure (a misspelt region or tag
/// would otherwise silently never act again) unless the job sets `allow_empty = true`.
fn empty_selection(ctx: &RunContext, spec: &Ec2Spec, target: &Target) -> RunReport {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    let action = spec.action();
    let tags = spec.tag_filter();
    let by = if tags.is_empty() {
        "`instance_ids`".to_string()
    } else {
        let list: Vec<String> = tags
            .iter()
            .map(|(k, v)| format!("{} = \"{}\"", escape::control(k), escape::control(v)))
            .collect();
        format!("tags {{ {} }}", list.join(", "))
    };
    if spec.allow_empty {
        let detail = format!("{action}: no instance matched the selection (allow_empty = true)");
        tracing::info!(
            job,
            run_id,
            action = action.as_str(),
            outcome = "success",
            changed = 0,
            skipped = 0,
            failed = 0,
            "{}: ec2 {action}: {detail}",
            job
        );
        return RunReport::success(Some(detail));
    }
    let msg = format!(
        "{action}: no instance in {target} matched {by}; check `region` and `tags` for a typo, \
         or set allow_empty = true if an empty match is expected"
    );
    tracing::error!(
        job,
        run_id,
        action = action.as_str(),
        error_kind = "empty_selection",
        "{}: ec2 {action}: {msg}",
        job
    );
    RunReport::failed(msg)
}

/// Logs the requested ids that do not exist (failures) and the instances left alone.
fn log_unacted(
    ctx: &RunContext,
    action: Action,
    target: &Target,
    sel: &select::Selection,
    tally: &mut Tally,
) {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    for id in &sel.missing {
        let e = Ec2Error::NotFound {
            id: id.clone(),
            region: target.region.clone(),
        };
        tracing::error!(job, run_id, instance_id = %id, action = action.as_str(), outcome = "not_found", "{}: {e}", job);
        tally.failed.push(format!("{id}: not found"));
    }
    for (f, reason) in &sel.skip {
        let state = f.state.as_str();
        if reason.is_notable() {
            tracing::warn!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                previous_state = state, new_state = state, outcome = "skipped", reason = %reason,
                "{}: {}: skipped, {reason}", job, f.label());
        } else {
            tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                previous_state = state, new_state = state, outcome = "skipped", reason = %reason,
                "{}: {}: skipped, {reason}", job, f.label());
        }
        tally.skipped += 1;
    }
}

/// The acting phase of one run: what it needs to call EC2 and log.
struct Act<'a> {
    client: &'a Client,
    target: &'a Target,
    ctx: &'a RunContext,
    action: Action,
}

impl Act<'_> {
    /// Dry run: asks EC2 whether each call would succeed; stops early on cancel, and at the
    /// first answer showing that the endpoint ignored DryRun (that instance may have changed).
    async fn check_all(&self, instances: &[Found], tally: &mut Tally) {
        let (job, run_id, action) = (&*self.ctx.job, &*self.ctx.run_id, self.action);
        for f in instances {
            let checked = tokio::select! {
                r = act::dry_run(self.client, self.target, action, &f.id) => r,
                () = self.ctx.cancel.cancelled() => return,
            };
            let state = f.state.as_str();
            match checked {
                Ok(()) => {
                    tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = state, new_state = state, outcome = "would_change", dry_run = true,
                        "{}: {}: would {action} (dry run: EC2 says the call would succeed)", job, f.label());
                    tally.changed.push(f.label());
                }
                Err(e @ Ec2Error::DryRunIgnored { .. }) => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = state, outcome = "may_have_changed", dry_run = true, error_kind = e.kind(),
                        "{}: {}: {e}", job, f.label());
                    tally.uncertain.push(f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                    tally.dry_run_ignored = true;
                    return;
                }
                Err(e) => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = state, outcome = "failed", dry_run = true, error_kind = e.kind(),
                        "{}: {}: {e}", job, f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                }
            }
        }
    }

    /// Calls EC2 for each instance; returns those to wait for when `wait` is set. A call cut
    /// off by a cancel may still have reached EC2: that instance is counted as uncertain.
    async fn apply_all<'f>(
        &self,
        instances: &'f [Found],
        wait: bool,
        tally: &mut Tally,
    ) -> Vec<(&'f Found, act::Transition)> {
        let (job, run_id, action) = (&*self.ctx.job, &*self.ctx.run_id, self.action);
        let mut to_wait = Vec::new();
        for f in instances {
            if self.ctx.cancel.is_cancelled() {
                break;
            }
            let applied = tokio::select! {
                r = act::apply(self.client, self.target, action, &f.id) => r,
                () = self.ctx.cancel.cancelled() => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = f.state.as_str(), outcome = "may_have_changed",
                        "{}: {}: cancelled while asking EC2 to {action}; the call may have reached EC2", job, f.label());
                    tally.uncertain.push(f.label());
                    break;
                }
            };
            match applied {
                Ok(t) if wait => to_wait.push((f, t)),
                Ok(t) => {
                    tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %t.current, outcome = "changed",
                        "{}: {}: {} -> {}", job, f.label(), t.previous, t.current);
                    tally.changed.push(f.label());
                }
                Err(e) => {
                    let outcome = if matches!(e, Ec2Error::NotInAnswer { .. }) {
                        tally.uncertain.push(f.label());
                        "may_have_changed"
                    } else {
                        "failed"
                    };
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = f.state.as_str(), outcome, error_kind = e.kind(),
                        "{}: {}: {e}", job, f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                }
            }
        }
        to_wait
    }

    /// Waits for every changed instance at once, each bounded by `timeout`.
    async fn wait_all(
        &self,
        to_wait: &[(&Found, act::Transition)],
        timeout: std::time::Duration,
        tally: &mut Tally,
    ) {
        let (job, run_id, action) = (&*self.ctx.job, &*self.ctx.run_id, self.action);
        let waits = join_all(
            to_wait
                .iter()
                .map(|(f, _)| act::wait(self.client, self.target, action, &f.id, timeout)),
        );
        let results = tokio::select! {
            r = waits => r,
            () = self.ctx.cancel.cancelled() => {
                for (f, t) in to_wait {
                    tracing::warn!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %t.current, outcome = "requested",
                        "{}: {}: EC2 accepted the {action} ({} -> {}); cancelled while waiting", job, f.label(), t.previous, t.current);
                    tally.requested.push(f.label());
                }
                return;
            }
        };
        for ((f, t), result) in to_wait.iter().zip(results) {
            match result {
                Ok(state) => {
                    tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %state, outcome = "changed", waited = true,
                        "{}: {}: {} -> {state}", job, f.label(), t.previous);
                    tally.changed.push(f.label());
                }
                Err(e) => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %t.current, outcome = "failed", error_kind = e.kind(),
                        "{}: {}: asked to {action}, but {e}", job, f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                }
            }
        }
    }
}

/// `labels` as `a, b, c and N more`, at most [`MAX_LISTED`] named.
fn listed(labels: &[String]) -> String {
    let mut shown: Vec<&str> = labels.iter().take(MAX_LISTED).map(String::as_str).collect();
    let more = labels.len().saturating_sub(MAX_LISTED);
    let extra = format!("and {more} more");
    if more > 0 {
        shown.push(&extra);
    }
    shown.join(", ")
}

/// Logs the job's one summary event and builds the report. A dry run says "nothing changed"
/// only when every call was answered as a dry run and none was cut off.
fn finish(
    ctx: &RunContext,
    action: Action,
    dry_run: bool,
    tally: Tally,
    interrupted: Option<&str>,
) -> RunReport {
    let job = &*ctx.job;
    let run_id = &*ctx.run_id;
    let changed = tally.changed.len();
    let failed = tally.failed.len();
    let skipped = tally.skipped;
    let certain = tally.uncertain.is_empty() && interrupted.is_none();
    let mut detail = if tally.dry_run_ignored {
        format!(
            "dry run ABORTED, the endpoint ignored DryRun and may really have {} instances: would {action} {changed}",
            action.done()
        )
    } else if dry_run && certain {
        format!("dry run, nothing changed: would {action} {changed}")
    } else if dry_run {
        format!("dry run: would {action} {changed}")
    } else {
        format!("{action}: {changed} {}", action.done())
    };
    if changed > 0 {
        detail.push_str(&format!(" ({})", listed(&tally.changed)));
    }
    detail.push_str(&format!(", {skipped} skipped, {failed} failed"));
    if !tally.requested.is_empty() {
        detail.push_str(&format!(
            "; {action} accepted by EC2, not waited for: {}",
            listed(&tally.requested)
        ));
    }
    if !tally.uncertain.is_empty() {
        detail.push_str(&format!(
            "; MAY HAVE CHANGED (check them): {}",
            listed(&tally.uncertain)
        ));
    }
    if let Some(first) = tally.failed.first() {
        detail.push_str(&format!("; {first}"));
        if failed > 1 {
            detail.push_str(&format!(" (+{} more, see the log)", failed - 1));
        }
    }
    if let Some(why) = interrupted {
        detail.push_str(&format!("; {why}"));
    }
    let outcome = if interrupted.is_some() {
        Outcome::Killed
    } else if failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    if outcome == Outcome::Success {
        tracing::info!(
            job,
            run_id,
            action = action.as_str(),
            dry_run,
            changed,
            skipped,
            failed,
            "{}: ec2 {action}: {detail}",
            job
        );
    } else {
        tracing::error!(
            job,
            run_id,
            action = action.as_str(),
            dry_run,
            changed,
            skipped,
            failed,
            requested = tally.requested.len(),
            uncertain = tally.uncertain.len(),
            "{}: ec2 {action}: {detail}",
            job
        );
    }
    RunReport {
        outcome,
        exit_code: None,
        signal: None,
        detail: Some(detail),
        output: Vec::new(),
    }
}

/// The report of a run stopped from outside before it acted.
fn cancelled(when: &str) -> RunReport {
    RunReport::killed(format!("cancelled {when}; nothing changed"))
}

#[cfg(test)]
mod tests;
