//! The `ec2` job type: start, stop or hibernate the EC2 instances a job selects by id and/or
//! tag. Find, then act: describe first, leave alone what must not be touched (`opsd:skip`,
//! Auto Scaling members, instances in the wrong state), refuse oversized selections, then call
//! EC2 one instance at a time, optionally waiting for the target state. Dry runs use EC2's own
//! DryRun check.

mod act;
mod client;
mod errors;
mod select;
mod spec;

pub use client::{preflight, retry_config, MAX_ATTEMPTS};
pub use errors::{Call, Ec2Error, Target};
pub use select::{ASG_TAG, SKIP_TAG};
pub use spec::{Action, Ec2Spec, DEFAULT_MAX_INSTANCES, DEFAULT_WAIT_TIMEOUT};

use select::Found;

use super::{Outcome, RunContext, RunReport};
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
            tracing::debug!(job = %ctx.job, run_id = %ctx.run_id, credentials = %source, "credentials resolved");
            run_with(&client, spec, ctx).await
        }
        Err(e) => {
            tracing::error!(job = %ctx.job, run_id = %ctx.run_id, error_kind = e.kind(), "{e}");
            RunReport::failed(e.to_string())
        }
    }
}

/// What happened to each instance of a run.
#[derive(Debug, Default)]
struct Tally {
    /// Changed (or, in a dry run, would change).
    changed: Vec<String>,
    /// Left alone.
    skipped: usize,
    /// Failed, with the first error.
    failed: Vec<String>,
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
            tracing::error!(job, run_id, error_kind = e.kind(), "{e}");
            return RunReport::failed(e.to_string());
        }
    };
    let sel = select::decide(action, &ids, &tags, spec.include_autoscaling, found);

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
            "{msg}"
        );
        return RunReport::failed(msg);
    }

    let mut tally = Tally::default();
    for id in &sel.missing {
        let e = Ec2Error::NotFound {
            id: id.clone(),
            region: target.region.clone(),
        };
        tracing::error!(job, run_id, instance_id = %id, action = action.as_str(), outcome = "not_found", "{e}");
        tally.failed.push(format!("{id}: not found"));
    }
    for (f, reason) in &sel.skip {
        let state = f.state.as_str();
        if reason.is_notable() {
            tracing::warn!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                previous_state = state, new_state = state, outcome = "skipped", reason = %reason,
                "{}: skipped, {reason}", f.label());
        } else {
            tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                previous_state = state, new_state = state, outcome = "skipped", reason = %reason,
                "{}: skipped, {reason}", f.label());
        }
        tally.skipped += 1;
    }

    let mut to_wait = Vec::new();
    for f in &sel.act {
        if ctx.cancel.is_cancelled() {
            return finish(
                ctx,
                action,
                dry_run,
                tally,
                Some("cancelled before every instance was handled"),
            );
        }
        let previous = f.state.as_str();
        if dry_run {
            let checked = tokio::select! {
                r = act::dry_run(client, &target, action, &f.id) => r,
                () = ctx.cancel.cancelled() => continue,
            };
            match checked {
                Ok(()) => {
                    tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = previous, new_state = previous, outcome = "would_change", dry_run = true,
                        "{}: would {action} (dry run: EC2 says the call would succeed)", f.label());
                    tally.changed.push(f.label());
                }
                Err(e) => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = previous, outcome = "failed", dry_run = true, error_kind = e.kind(),
                        "{}: {e}", f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                }
            }
            continue;
        }
        let applied = tokio::select! {
            r = act::apply(client, &target, action, &f.id) => r,
            () = ctx.cancel.cancelled() => continue,
        };
        match applied {
            Ok(t) if !spec.wait => {
                tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                    previous_state = %t.previous, new_state = %t.current, outcome = "changed",
                    "{}: {} -> {}", f.label(), t.previous, t.current);
                tally.changed.push(f.label());
            }
            Ok(t) => to_wait.push((f, t)),
            Err(e) => {
                tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                    previous_state = previous, outcome = "failed", error_kind = e.kind(),
                    "{}: {e}", f.label());
                tally.failed.push(format!("{}: {e}", f.id));
            }
        }
    }

    if !to_wait.is_empty() {
        let timeout = spec.wait_timeout();
        let waits = join_all(
            to_wait
                .iter()
                .map(|(f, _)| act::wait(client, &target, action, &f.id, timeout)),
        );
        let results = tokio::select! {
            r = waits => r,
            () = ctx.cancel.cancelled() => {
                tally.failed.extend(to_wait.iter().map(|(f, _)| format!("{}: cancelled while waiting", f.id)));
                return finish(ctx, action, dry_run, tally, Some("cancelled while waiting"));
            }
        };
        for ((f, t), result) in to_wait.iter().zip(results) {
            match result {
                Ok(state) => {
                    tracing::info!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %state, outcome = "changed", waited = true,
                        "{}: {} -> {state}", f.label(), t.previous);
                    tally.changed.push(f.label());
                }
                Err(e) => {
                    tracing::error!(job, run_id, instance_id = %f.id, name = %f.name, action = action.as_str(),
                        previous_state = %t.previous, new_state = %t.current, outcome = "failed", error_kind = e.kind(),
                        "{}: asked to {action}, but {e}", f.label());
                    tally.failed.push(format!("{}: {e}", f.id));
                }
            }
        }
    }
    let interrupted = ctx
        .cancel
        .is_cancelled()
        .then_some("cancelled before every instance was handled");
    finish(ctx, action, dry_run, tally, interrupted)
}

/// Logs the job's one summary event and builds the report.
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
    let mut detail = if dry_run {
        format!("dry run, nothing changed: would {action} {changed}")
    } else {
        format!("{action}: {changed} {}", action.done())
    };
    if changed > 0 {
        let mut listed: Vec<&str> = tally
            .changed
            .iter()
            .take(MAX_LISTED)
            .map(String::as_str)
            .collect();
        let more = changed.saturating_sub(MAX_LISTED);
        let extra = format!("and {more} more");
        if more > 0 {
            listed.push(&extra);
        }
        detail.push_str(&format!(" ({})", listed.join(", ")));
    }
    detail.push_str(&format!(", {skipped} skipped, {failed} failed"));
    if let Some(first) = tally.failed.first() {
        detail.push_str(&format!("; {first}"));
        if failed > 1 {
            detail.push_str(&format!(" (+{} more, see the log)", failed - 1));
        }
    }
    if let Some(why) = interrupted {
        detail.push_str(&format!("; {why}"));
    }
    if changed + skipped + failed == 0 {
        detail.push_str("; no instance matched the selection");
        tracing::warn!(
            job,
            run_id,
            action = action.as_str(),
            "the selection matched no instances"
        );
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
            "ec2 {action}: {detail}"
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
            "ec2 {action}: {detail}"
        );
    }
    RunReport {
        outcome,
        exit_code: None,
        signal: None,
        detail: Some(detail),
    }
}

/// The report of a run stopped from outside before it acted.
fn cancelled(when: &str) -> RunReport {
    RunReport {
        outcome: Outcome::Killed,
        exit_code: None,
        signal: None,
        detail: Some(format!("cancelled {when}; nothing changed")),
    }
}

#[cfg(test)]
mod tests;
