//! The ec2 job's error paths that moto never produces, with aws-smithy-mocks: an instance in
//! the wrong state at call time (IncorrectInstanceState), missing IAM permissions
//! (UnauthorizedOperation), throttling retried with backoff (and given up on), DryRun answers.

use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use aws_sdk_ec2::operation::start_instances::{StartInstancesError, StartInstancesOutput};
use aws_sdk_ec2::operation::stop_instances::{StopInstancesError, StopInstancesOutput};
use aws_sdk_ec2::types::{
    Instance, InstanceState, InstanceStateChange, InstanceStateName, Reservation, Tag,
};
use aws_sdk_ec2::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use opsd::config::parse;
use opsd::jobs::ec2::{retry_config, run_with, Ec2Spec, MAX_ATTEMPTS};
use opsd::jobs::{JobType, Outcome, RunContext, RunReport};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ID: &str = "i-0123456789abcdef0";

fn spec(keys: &str) -> Ec2Spec {
    let text = format!(
        "[jobs.dev]\ntype = \"ec2\"\nschedule = \"@daily\"\nregion = \"ap-northeast-2\"\n{keys}\n"
    );
    let cfg = parse(Path::new("jobs.toml"), &text).expect("valid job");
    match cfg.jobs["dev"].job.clone() {
        JobType::Ec2(spec) => spec,
        other => panic!("not an ec2 job: {other:?}"),
    }
}

fn ctx(dry_run: bool) -> RunContext {
    RunContext {
        job: "dev".into(),
        run_id: "test".into(),
        cancel: CancellationToken::new(),
        state_dir: std::env::temp_dir(),
        dry_run,
        kill_grace: Duration::from_secs(1),
        alerts: opsd::alert::Dispatcher::new(&Default::default(), Default::default()).unwrap(),
        alert_to: Vec::new().into(),
    }
}

fn error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

/// DescribeInstances answering one instance in `state`.
fn describe(state: InstanceStateName) -> Rule {
    mock!(Client::describe_instances).then_output(move || {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(
                        Instance::builder()
                            .instance_id(ID)
                            .state(InstanceState::builder().name(state.clone()).build())
                            .tags(Tag::builder().key("Name").value("web").build())
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_ec2, RuleMode::MatchAny, rules, |c| c
        .retry_config(retry_config()))
}

fn detail(r: &RunReport) -> &str {
    r.detail.as_deref().unwrap_or("")
}

#[tokio::test]
async fn incorrect_instance_state_at_call_time_fails_the_instance() {
    let describe = describe(InstanceStateName::Running);
    let stop = mock!(Client::stop_instances).then_error(|| {
        StopInstancesError::generic(error(
            "IncorrectInstanceState",
            "The instance 'i-0123456789abcdef0' is not in a state from which it can be stopped.",
        ))
    });
    let c = client(&[&describe, &stop]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"stop\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).contains("0 stopped, 0 skipped, 1 failed"),
        "{r:?}"
    );
    assert!(
        detail(&r).contains("StopInstances refused: the instance is not in a state"),
        "{r:?}"
    );
    assert_eq!(stop.num_calls(), 1, "IncorrectInstanceState is not retried");
}

#[tokio::test]
async fn unauthorized_names_the_missing_iam_action() {
    let describe = describe(InstanceStateName::Stopped);
    let start = mock!(Client::start_instances).then_error(|| {
        StartInstancesError::generic(error(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. Encoded authorization failure message: abc",
        ))
    });
    let c = client(&[&describe, &start]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"start\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).contains("grant the IAM action `ec2:StartInstances`"),
        "{r:?}"
    );
}

#[tokio::test]
async fn unauthorized_describe_names_describe_instances() {
    let describe = mock!(Client::describe_instances).then_error(|| {
        DescribeInstancesError::generic(error("UnauthorizedOperation", "You are not authorized"))
    });
    let c = client(&[&describe]);
    let r = run_with(
        &c,
        &spec("action = \"stop\"\ntags = { a = \"b\" }"),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(detail(&r).contains("`ec2:DescribeInstances`"), "{r:?}");
}

#[tokio::test]
async fn dry_run_uses_ec2s_dry_run_check() {
    let describe = describe(InstanceStateName::Running);
    let stop = mock!(Client::stop_instances)
        .match_requests(|req| req.dry_run() == Some(true) && req.hibernate() == Some(true))
        .then_error(|| {
            StopInstancesError::generic(error(
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            ))
        });
    let c = client(&[&describe, &stop]);
    let r = run_with(
        &c,
        &spec(&format!(
            "action = \"hibernate\"\ninstance_ids = [\"{ID}\"]"
        )),
        &ctx(true),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        detail(&r),
        format!("dry run, nothing changed: would hibernate 1 ({ID} (web)), 0 skipped, 0 failed")
    );
    assert_eq!(stop.num_calls(), 1);
}

#[tokio::test]
async fn dry_run_reports_missing_permission() {
    let describe = describe(InstanceStateName::Running);
    let stop = mock!(Client::stop_instances).then_error(|| {
        StopInstancesError::generic(error("UnauthorizedOperation", "You are not authorized"))
    });
    let c = client(&[&describe, &stop]);
    let r = run_with(
        &c,
        &spec(&format!(
            "action = \"stop\"\ninstance_ids = [\"{ID}\"]\ndry_run = true"
        )),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(detail(&r).contains("`ec2:StopInstances`"), "{r:?}");
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let describe = mock!(Client::describe_instances)
        .sequence()
        .error(|| {
            DescribeInstancesError::generic(error(
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ))
        })
        .times(2)
        .output(|| {
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .instances(
                            Instance::builder()
                                .instance_id(ID)
                                .state(
                                    InstanceState::builder()
                                        .name(InstanceStateName::Running)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
        .build();
    let stop = mock!(Client::stop_instances).then_output(|| {
        StopInstancesOutput::builder()
            .stopping_instances(
                InstanceStateChange::builder()
                    .instance_id(ID)
                    .previous_state(
                        InstanceState::builder()
                            .name(InstanceStateName::Running)
                            .build(),
                    )
                    .current_state(
                        InstanceState::builder()
                            .name(InstanceStateName::Stopping)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let c = client(&[&describe, &stop]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"stop\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        describe.num_calls(),
        3,
        "two throttled attempts, then the answer"
    );
    assert_eq!(stop.num_calls(), 1);
}

#[tokio::test]
async fn throttling_gives_up_after_the_bounded_attempts() {
    let start = mock!(Client::start_instances).then_error(|| {
        StartInstancesError::generic(error("RequestLimitExceeded", "Request limit exceeded."))
    });
    let describe = describe(InstanceStateName::Stopped);
    let c = client(&[&describe, &start]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"start\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).contains(&format!("StartInstances was throttled by AWS (RequestLimitExceeded) after {MAX_ATTEMPTS} attempts")),
        "{r:?}"
    );
    assert_eq!(start.num_calls(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_started_instance_reports_previous_and_new_state() {
    let describe = describe(InstanceStateName::Stopped);
    let start = mock!(Client::start_instances)
        .match_requests(|req| req.instance_ids() == [ID.to_string()] && req.dry_run().is_none())
        .then_output(|| {
            StartInstancesOutput::builder()
                .starting_instances(
                    InstanceStateChange::builder()
                        .instance_id(ID)
                        .previous_state(
                            InstanceState::builder()
                                .name(InstanceStateName::Stopped)
                                .build(),
                        )
                        .current_state(
                            InstanceState::builder()
                                .name(InstanceStateName::Pending)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let c = client(&[&describe, &start]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"start\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(
        detail(&r),
        format!("start: 1 started ({ID} (web)), 0 skipped, 0 failed")
    );
}

#[tokio::test]
async fn a_cancelled_run_returns_without_acting() {
    let describe = describe(InstanceStateName::Running);
    let stop = mock!(Client::stop_instances).then_output(|| StopInstancesOutput::builder().build());
    let c = client(&[&describe, &stop]);
    let ctx = ctx(false);
    ctx.cancel.cancel();
    let r = run_with(
        &c,
        &spec(&format!("action = \"stop\"\ninstance_ids = [\"{ID}\"]")),
        &ctx,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Killed, "{r:?}");
    assert_eq!(stop.num_calls(), 0);
}

#[tokio::test]
async fn rejected_credentials_point_at_key_and_region() {
    let describe = mock!(Client::describe_instances).then_error(|| {
        DescribeInstancesError::generic(error(
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ))
    });
    let c = client(&[&describe]);
    let r = run_with(
        &c,
        &spec("action = \"stop\"\ntags = { a = \"b\" }"),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).starts_with("AWS rejected the credentials for DescribeInstances (AuthFailure"),
        "{r:?}"
    );
    assert!(
        detail(&r).contains("region ap-northeast-2 is enabled"),
        "{r:?}"
    );
}
