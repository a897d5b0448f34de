//! The calls that change instances: StartInstances / StopInstances (with `Hibernate` for
//! hibernate) one instance at a time, EC2's own DryRun check, and the SDK waiters.

use super::client::MAX_ATTEMPTS;
use super::errors::{Call, Ec2Error, Target};
use super::spec::Action;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{InstanceState, InstanceStateChange, InstanceStateName};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use std::time::Duration;

/// The error code EC2 answers a DryRun call with when the real call would succeed.
const DRY_RUN_OK: &str = "DryRunOperation";

/// A state change EC2 reported: before and right after the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before the call.
    pub previous: String,
    /// The state right after the call (or after waiting).
    pub current: String,
}

/// Asks EC2 to apply `action` to one instance; an answer that does not list the instance is
/// an error ([`Ec2Error::NotInAnswer`]), never a success.
pub async fn apply(
    client: &Client,
    target: &Target,
    action: Action,
    id: &str,
) -> Result<Transition, Ec2Error> {
    let (call, changes) = match action {
        Action::Start => (
            Call::Start,
            client
                .start_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(|e| Ec2Error::from_sdk(Call::Start, target, MAX_ATTEMPTS, e))?
                .starting_instances
                .unwrap_or_default(),
        ),
        Action::Stop | Action::Hibernate => (
            Call::Stop,
            client
                .stop_instances()
                .instance_ids(id)
                .hibernate(action == Action::Hibernate)
                .send()
                .await
                .map_err(|e| Ec2Error::from_sdk(Call::Stop, target, MAX_ATTEMPTS, e))?
                .stopping_instances
                .unwrap_or_default(),
        ),
    };
    changes
        .iter()
        .find(|c| c.instance_id() == Some(id))
        .map(transition)
        .ok_or(Ec2Error::NotInAnswer { call })
}

/// Asks EC2 whether `action` on one instance would be allowed, changing nothing.
pub async fn dry_run(
    client: &Client,
    target: &Target,
    action: Action,
    id: &str,
) -> Result<(), Ec2Error> {
    match action {
        Action::Start => dry_answer(
            Call::Start,
            target,
            client
                .start_instances()
                .instance_ids(id)
                .dry_run(true)
                .send()
                .await,
        ),
        Action::Stop | Action::Hibernate => dry_answer(
            Call::Stop,
            target,
            client
                .stop_instances()
                .instance_ids(id)
                .hibernate(action == Action::Hibernate)
                .dry_run(true)
                .send()
                .await,
        ),
    }
}

/// Reads EC2's answer to a DryRun call: `DryRunOperation` means the call would succeed; a
/// successful answer means the endpoint ignored DryRun and acted ([`Ec2Error::DryRunIgnored`]).
fn dry_answer<O, E>(
    call: Call,
    target: &Target,
    answer: Result<O, SdkError<E>>,
) -> Result<(), Ec2Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match answer {
        Err(e) if e.code() == Some(DRY_RUN_OK) => Ok(()),
        Err(e) => Err(Ec2Error::from_sdk(call, target, MAX_ATTEMPTS, e)),
        Ok(_) => Err(Ec2Error::DryRunIgnored {
            call,
            target: target.clone(),
        }),
    }
}

/// Waits with the SDK waiter until the instance reaches `action`'s target state.
pub async fn wait(
    client: &Client,
    target: &Target,
    action: Action,
    id: &str,
    timeout: Duration,
) -> Result<String, Ec2Error> {
    let (want, result) = match action {
        Action::Start => (
            InstanceStateName::Running,
            client
                .wait_until_instance_running()
                .instance_ids(id)
                .wait(timeout)
                .await
                .map(|_| ()),
        ),
        Action::Stop | Action::Hibernate => (
            InstanceStateName::Stopped,
            client
                .wait_until_instance_stopped()
                .instance_ids(id)
                .wait(timeout)
                .await
                .map(|_| ()),
        ),
    };
    let want_str = match want {
        InstanceStateName::Running => "running",
        _ => "stopped",
    };
    match result {
        Ok(()) => Ok(want_str.to_string()),
        Err(WaiterError::ExceededMaxWait(_)) => Err(Ec2Error::WaitTimeout {
            want: want_str,
            waited: humantime::format_duration(timeout).to_string(),
        }),
        Err(WaiterError::FailureState(f)) => {
            let state = f
                .final_poll()
                .as_result()
                .ok()
                .and_then(|out| out.reservations().first())
                .and_then(|r| r.instances().first())
                .and_then(|i| i.state())
                .and_then(InstanceState::name)
                .map_or_else(
                    || "an unexpected state".to_string(),
                    |s| crate::escape::control(s.as_str()).into_owned(),
                );
            Err(Ec2Error::WaitFailed {
                want: want_str,
                state,
            })
        }
        Err(WaiterError::OperationFailed(e)) => Err(Ec2Error::from_sdk(
            Call::Describe,
            target,
            MAX_ATTEMPTS,
            e.into_error(),
        )),
        Err(other) => Err(Ec2Error::Other {
            call: Call::Describe,
            detail: crate::escape::control(
                &target.scrub(&aws_sdk_ec2::error::DisplayErrorContext(&other).to_string()),
            )
            .into_owned(),
        }),
    }
}

/// The previous and current state from a Start/Stop answer (escaped: the endpoint wrote them).
fn transition(change: &InstanceStateChange) -> Transition {
    let name = |s: Option<&InstanceState>| {
        s.and_then(InstanceState::name).map_or_else(
            || "unknown".to_string(),
            |n| crate::escape::control(n.as_str()).into_owned(),
        )
    };
    Transition {
        previous: name(change.previous_state()),
        current: name(change.current_state()),
    }
}

/// Describes every instance matching `filters`, following pagination.
pub async fn describe(
    client: &Client,
    target: &Target,
    filters: Vec<aws_sdk_ec2::types::Filter>,
) -> Result<Vec<aws_sdk_ec2::types::Instance>, Ec2Error> {
    let mut pages = client
        .describe_instances()
        .set_filters(Some(filters))
        .max_results(1000)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page: Result<_, SdkError<_>> = page;
        let page = page.map_err(|e| Ec2Error::from_sdk(Call::Describe, target, MAX_ATTEMPTS, e))?;
        for r in page.reservations() {
            out.extend(r.instances().iter().cloned());
        }
    }
    Ok(out)
}
