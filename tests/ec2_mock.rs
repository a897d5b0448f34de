//! The ec2 job's error paths that moto never produces, with aws-smithy-mocks: an instance in
//! the wrong state at call time (IncorrectInstanceState), missing IAM permissions
//! (UnauthorizedOperation), throttling retried with backoff (and given up on), DryRun answers;
//! and, from a fake EC2 endpoint on 127.0.0.1, answers no real EC2 gives: HTML pages and bare
//! 502s, StopInstances carried out despite DryRun, waits that outlive the job's timeout.

use crate::util::stub_http::{self, Response};
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
    match cfg.jobs["dev"].spec.clone() {
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
        foreground: false,
        kill_grace: Duration::from_secs(1),
        alerts: opsd::alert::Dispatcher::new(&Default::default(), Default::default()).unwrap(),
        alert_to: Vec::new().into(),
        live: Default::default(),
        fencing_token: None,
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

// ---- A fake EC2 endpoint on 127.0.0.1: answers that neither moto nor the mocks give. ----

/// Three running instances the fake endpoint describes.
const FAKE_IDS: [&str; 3] = [
    "i-0000000000000000a",
    "i-0000000000000000b",
    "i-0000000000000000c",
];

/// A DescribeInstances answer listing [`FAKE_IDS`] in `state`.
fn describe_xml(state: &str) -> String {
    let code = if state == "running" { 16 } else { 64 };
    let items: String = FAKE_IDS
        .iter()
        .map(|id| {
            format!(
                "<item><instanceId>{id}</instanceId><instanceState><code>{code}</code><name>{state}</name></instanceState>\
                 <tagSet><item><key>Schedule</key><value>office-hours</value></item></tagSet></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId><instancesSet>{items}</instancesSet></item>\
         </reservationSet></DescribeInstancesResponse>"
    )
}

/// A StopInstances answer that says `id` is stopping (whatever DryRun said).
fn stop_xml(id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<StopInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r</requestId><instancesSet><item><instanceId>{id}</instanceId>\
         <currentState><code>64</code><name>stopping</name></currentState>\
         <previousState><code>16</code><name>running</name></previousState></item></instancesSet></StopInstancesResponse>"
    )
}

/// The form field `name` of an EC2 query request.
fn field<'a>(req: &'a stub_http::Request, name: &str) -> Option<&'a str> {
    std::str::from_utf8(&req.body)
        .ok()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A fake EC2 that describes [`FAKE_IDS`] as running and carries out every StopInstances,
/// DryRun or not.
async fn fake_ec2_ignoring_dry_run() -> stub_http::Stub {
    stub_http::start(|req| match field(req, "Action") {
        Some("DescribeInstances") => Response::new(200, describe_xml("running")),
        Some("StopInstances") => Response::new(
            200,
            stop_xml(field(req, "InstanceId.1").unwrap_or_default()),
        ),
        _ => Response::new(400, "unexpected"),
    })
    .await
}

/// Parses one ec2 job `dev` pointed at `endpoint`.
fn job_at(endpoint: &str, keys: &str) -> std::sync::Arc<opsd::config::JobConfig> {
    crate::util::moto::aws_test_env();
    let text = format!(
        "[jobs.dev]\ntype = \"ec2\"\nschedule = \"@daily\"\nregion = \"us-east-1\"\n\
         endpoint_url = \"{endpoint}\"\n{keys}\n"
    );
    let mut cfg = parse(Path::new("jobs.toml"), &text).expect("valid job");
    cfg.jobs.remove("dev").expect("job dev")
}

/// Runs a job once through the scheduler's runner (timeouts included), as `opsd run-job` does.
async fn execute(job: &opsd::config::JobConfig, dry_run: bool) -> RunReport {
    let state = tempfile::tempdir().expect("tempdir");
    opsd::scheduler::execute(
        job,
        state.path().to_path_buf(),
        &opsd::alert::Dispatcher::new(&Default::default(), Default::default()).unwrap(),
        opsd::scheduler::Run::new(opsd::scheduler::Trigger::Manual).with_mode(
            opsd::scheduler::RunMode {
                dry_run,
                foreground: false,
            },
        ),
    )
    .await
    .report
}

fn stop_calls(stub: &stub_http::Stub) -> Vec<String> {
    stub.seen()
        .iter()
        .filter(|r| field(r, "Action") == Some("StopInstances"))
        .map(|r| field(r, "InstanceId.1").unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn an_endpoint_that_ignores_dry_run_aborts_the_dry_run_at_once() {
    let fake = fake_ec2_ignoring_dry_run().await;
    let job = job_at(
        &fake.url(),
        "action = \"stop\"\ntags = { Schedule = \"office-hours\" }",
    );
    let r = execute(&job, true).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert_eq!(
        stop_calls(&fake),
        [FAKE_IDS[0]],
        "no call after the first sign"
    );
    assert!(!detail(&r).contains("nothing changed"), "{r:?}");
    assert!(detail(&r).starts_with("dry run ABORTED"), "{r:?}");
    assert!(
        detail(&r).contains(&format!("MAY HAVE CHANGED (check them): {}", FAKE_IDS[0])),
        "{r:?}"
    );
    assert!(detail(&r).contains("does not honour DryRun"), "{r:?}");
}

#[tokio::test]
async fn a_timed_out_run_names_the_instances_it_already_changed() {
    // Stops are accepted, but the instances never reach `stopped`: the waiter outlives the
    // job's timeout.
    let fake = fake_ec2_ignoring_dry_run().await;
    let job = job_at(
        &fake.url(),
        "action = \"stop\"\ntags = { Schedule = \"office-hours\" }\nwait = true\ntimeout = \"2s\"",
    );
    let r = execute(&job, false).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert_eq!(stop_calls(&fake).len(), 3, "{r:?}");
    assert!(detail(&r).starts_with("timed out after 2s; "), "{r:?}");
    assert!(
        detail(&r).contains("stop accepted by EC2, not waited for: "),
        "{r:?}"
    );
    for id in FAKE_IDS {
        assert!(detail(&r).contains(id), "{id} missing: {r:?}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_ec2s_shows_its_status_and_body() {
    let html = "<!DOCTYPE html>\n<html><head><title>Proxy login</title></head>\n<body>\u{1b}[2K please sign in \
                to the corporate proxy</body></html>";
    for (status, body) in [(200, html), (403, html), (502, "Bad Gateway")] {
        let fake = stub_http::start(move |_| {
            Response::new(status, body).header("Content-Type", "text/html")
        })
        .await;
        let job = job_at(
            &fake.url(),
            "action = \"stop\"\ntags = { Schedule = \"office-hours\" }",
        );
        let r = execute(&job, false).await;
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        let d = detail(&r);
        assert!(
            d.starts_with(&format!(
                "DescribeInstances failed: endpoint {}/ (region us-east-1) answered HTTP {status}",
                fake.url()
            )),
            "{d}"
        );
        let start: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let start = start.replace('\u{1b}', "\\u{1b}");
        assert!(d.contains(&start[..40.min(start.len())]), "{d}");
        assert!(!d.contains(['\n', '\u{1b}']), "{d}");
    }
}

#[tokio::test]
async fn a_stop_answer_without_the_instance_is_not_counted_as_stopped() {
    let describe = describe(InstanceStateName::Running);
    let stop = mock!(Client::stop_instances).then_output(|| StopInstancesOutput::builder().build());
    let c = client(&[&describe, &stop]);
    let r = run_with(
        &c,
        &spec(&format!("action = \"stop\"\ninstance_ids = [\"{ID}\"]")),
        &ctx(false),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).starts_with("stop: 0 stopped, 0 skipped, 1 failed"),
        "{r:?}"
    );
    assert!(
        detail(&r).contains(&format!("MAY HAVE CHANGED (check them): {ID} (web)")),
        "{r:?}"
    );
    assert!(
        detail(&r).contains("its answer does not list the instance"),
        "{r:?}"
    );
}

#[tokio::test]
async fn endpoint_userinfo_and_path_never_reach_an_error() {
    // Refused connections (the error that names the endpoint) and a non-EC2 answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let bad_gateway = stub_http::start(|_| Response::new(502, "Bad Gateway")).await;
    for base in [format!("http://{closed}"), bad_gateway.url()] {
        let endpoint = base.replace("http://", "http://u5er:s3cr3t@") + "/t0ken?sig=abc";
        let job = job_at(
            &endpoint,
            "action = \"stop\"\ntags = { Schedule = \"office-hours\" }",
        );
        let r = execute(&job, false).await;
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        for secret in ["u5er", "s3cr3t", "t0ken", "sig=abc"] {
            assert!(!detail(&r).contains(secret), "{secret} in {r:?}");
        }
        assert!(
            detail(&r).contains(&format!("endpoint {base}/… (region")),
            "{r:?}"
        );
    }
}
