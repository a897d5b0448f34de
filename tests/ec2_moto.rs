//! The ec2 job against a real EC2 API (moto_server on loopback): selection by id and tag,
//! the safety rules, dry runs, unknown ids, waiting, and the `opsd` binary end to end.

use crate::util::moto::{Moto, AWS_TEST_ENV, REGION};
use opsd::config::{parse, JobConfig};
use opsd::jobs::{Outcome, RunReport};
use opsd::scheduler::{execute, Run, Trigger};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// Parses one ec2 job named `dev` with the given keys, pointed at `moto`.
fn job(moto: &Moto, keys: &str) -> Arc<JobConfig> {
    let text = format!(
        "[jobs.dev]\ntype = \"ec2\"\nschedule = \"0 30 18 * * Mon-Fri\"\ntimezone = \"Asia/Seoul\"\n\
         region = \"{REGION}\"\nendpoint_url = \"{}\"\n{keys}\n",
        moto.endpoint
    );
    let mut cfg = parse(Path::new("jobs.toml"), &text).expect("valid job");
    cfg.jobs.remove("dev").expect("job dev")
}

/// Runs a job once the way `opsd run-job` does.
async fn run(job: &JobConfig, dry_run: bool) -> RunReport {
    let state = tempfile::tempdir().expect("tempdir");
    execute(
        job,
        state.path().to_path_buf(),
        &opsd::alert::Dispatcher::new(&Default::default(), Default::default()).unwrap(),
        Run::new(Trigger::Manual).with_mode(opsd::scheduler::RunMode {
            dry_run,
            foreground: false,
        }),
    )
    .await
    .report
}

fn detail(r: &RunReport) -> &str {
    r.detail.as_deref().unwrap_or("")
}

#[tokio::test]
async fn stop_by_tags_leaves_untagged_and_opted_out_instances_alone() {
    let moto = Moto::start();
    let office = moto
        .launch(2, &[("Schedule", "office-hours"), ("Name", "dev")])
        .await;
    let untagged = moto.launch(1, &[]).await;
    let other = moto.launch(1, &[("Schedule", "office-hours-late")]).await;
    let opted_out = moto
        .launch(1, &[("Schedule", "office-hours"), ("opsd:skip", "true")])
        .await;

    let r = run(
        &job(
            &moto,
            "action = \"stop\"\ntags = { Schedule = \"office-hours\" }",
        ),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(detail(&r).starts_with("stop: 2 stopped"), "{r:?}");
    assert!(detail(&r).contains("1 skipped, 0 failed"), "{r:?}");
    for id in &office {
        assert_eq!(moto.state(id).await, "stopped");
    }
    for id in untagged.iter().chain(&other).chain(&opted_out) {
        assert_eq!(moto.state(id).await, "running", "{id} must be untouched");
    }
}

#[tokio::test]
async fn start_by_id_skips_already_running_instances() {
    let moto = Moto::start();
    let ids = moto.launch(2, &[]).await;
    moto.stop(&ids[..1]).await;
    assert_eq!(moto.state(&ids[0]).await, "stopped");

    let keys = format!(
        "action = \"start\"\ninstance_ids = [\"{}\", \"{}\"]",
        ids[0], ids[1]
    );
    let r = run(&job(&moto, &keys), false).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        detail(&r).starts_with(&format!("start: 1 started ({})", ids[0])),
        "{r:?}"
    );
    assert!(detail(&r).contains("1 skipped"), "{r:?}");
    assert_eq!(moto.state(&ids[0]).await, "running");
    assert_eq!(moto.state(&ids[1]).await, "running");
}

#[tokio::test]
async fn start_and_stop_by_tags_round_trip() {
    let moto = Moto::start();
    let ids = moto.launch(3, &[("Schedule", "office-hours")]).await;
    let stop = job(
        &moto,
        "action = \"stop\"\ntags = { Schedule = \"office-hours\" }",
    );
    let start = job(
        &moto,
        "action = \"start\"\ntags = { Schedule = \"office-hours\" }",
    );
    assert_eq!(run(&stop, false).await.outcome, Outcome::Success);
    for id in &ids {
        assert_eq!(moto.state(id).await, "stopped");
    }
    let r = run(&start, false).await;
    assert!(detail(&r).starts_with("start: 3 started"), "{r:?}");
    for id in &ids {
        assert_eq!(moto.state(id).await, "running");
    }
}

#[tokio::test]
async fn dry_run_changes_nothing_from_config_or_command_line() {
    let moto = Moto::start();
    let ids = moto.launch(2, &[("Schedule", "office-hours")]).await;
    let keys = "action = \"stop\"\ntags = { Schedule = \"office-hours\" }";

    let from_config = run(&job(&moto, &format!("{keys}\ndry_run = true")), false).await;
    let from_cli = run(&job(&moto, keys), true).await;
    for r in [&from_config, &from_cli] {
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert!(
            detail(r).starts_with("dry run, nothing changed: would stop 2"),
            "{r:?}"
        );
        assert!(detail(r).contains(&ids[0]), "{r:?}");
    }
    for id in &ids {
        assert_eq!(moto.state(id).await, "running");
    }
}

#[tokio::test]
async fn unknown_id_is_reported_and_fails_the_run_after_acting_on_the_rest() {
    let moto = Moto::start();
    let ids = moto.launch(1, &[]).await;
    let keys = format!(
        "action = \"stop\"\ninstance_ids = [\"{}\", \"i-0123456789abcdef0\"]",
        ids[0]
    );
    let r = run(&job(&moto, &keys), false).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(detail(&r).contains("1 stopped"), "{r:?}");
    assert!(
        detail(&r).contains("i-0123456789abcdef0: not found"),
        "{r:?}"
    );
    assert_eq!(moto.state(&ids[0]).await, "stopped");
}

#[tokio::test]
async fn max_instances_refuses_an_oversized_selection() {
    let moto = Moto::start();
    let ids = moto.launch(3, &[("Schedule", "office-hours")]).await;
    let r = run(
        &job(
            &moto,
            "action = \"stop\"\ntags = { Schedule = \"office-hours\" }\nmax_instances = 2",
        ),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).contains("matched 3 instances, more than max_instances = 2"),
        "{r:?}"
    );
    for id in &ids {
        assert_eq!(moto.state(id).await, "running");
    }
}

#[tokio::test]
async fn auto_scaling_members_are_skipped_unless_opted_in() {
    let moto = Moto::start();
    let member = moto
        .launch(
            1,
            &[
                ("Schedule", "office-hours"),
                ("aws:autoscaling:groupName", "web"),
            ],
        )
        .await;
    let keys = "action = \"stop\"\ntags = { Schedule = \"office-hours\" }";
    let r = run(&job(&moto, keys), false).await;
    assert!(
        detail(&r).starts_with("stop: 0 stopped, 1 skipped"),
        "{r:?}"
    );
    assert_eq!(moto.state(&member[0]).await, "running");

    let r = run(
        &job(&moto, &format!("{keys}\ninclude_autoscaling = true")),
        false,
    )
    .await;
    assert!(detail(&r).starts_with("stop: 1 stopped"), "{r:?}");
    assert_eq!(moto.state(&member[0]).await, "stopped");
}

#[tokio::test]
async fn hibernate_stops_running_instances() {
    let moto = Moto::start();
    let ids = moto.launch(1, &[("Schedule", "office-hours")]).await;
    let r = run(
        &job(
            &moto,
            "action = \"hibernate\"\ntags = { Schedule = \"office-hours\" }\nwait = true",
        ),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(detail(&r).starts_with("hibernate: 1 hibernated"), "{r:?}");
    assert_eq!(moto.state(&ids[0]).await, "stopped");
}

#[tokio::test]
async fn unreachable_endpoint_names_region_and_endpoint() {
    // Nothing listens on the discard port of loopback: the connection is refused, retried
    // with backoff, then reported.
    let closed = "http://127.0.0.1:9";
    let text = format!(
        "[jobs.dev]\ntype = \"ec2\"\nschedule = \"@daily\"\nregion = \"{REGION}\"\n\
         endpoint_url = \"{closed}\"\naction = \"stop\"\ntags = {{ a = \"b\" }}\n"
    );
    crate::util::moto::aws_test_env();
    let mut cfg = parse(Path::new("jobs.toml"), &text).expect("valid job");
    let job = cfg.jobs.remove("dev").expect("job dev");
    let r = run(&job, false).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).starts_with(&format!(
            "cannot reach endpoint {closed}/ (region {REGION}) for DescribeInstances"
        )),
        "{r:?}"
    );
    assert!(
        detail(&r).contains("check `region`, `endpoint_url` and the network"),
        "{r:?}"
    );
}

/// Writes a job file for the binary.
fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("jobs.toml");
    std::fs::write(&path, body).expect("write jobs.toml");
    path
}

/// The `opsd` binary with only the test AWS environment, logging JSON.
fn opsd(config: &Path) -> Command {
    opsd_logging(config, "json")
}

/// The `opsd` binary with only the test AWS environment, logging in `format`.
fn opsd_logging(config: &Path, format: &str) -> Command {
    let mut cmd = Command::new(crate::util::OPSD);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", config.parent().expect("dir"))
        .envs(AWS_TEST_ENV.iter().copied())
        .env("OPSD_CONFIG", config)
        .env("OPSD_LOG_FORMAT", format);
    cmd
}

#[tokio::test]
async fn run_job_binary_stops_and_waits_against_moto() {
    let moto = Moto::start();
    let ids = moto
        .launch(2, &[("Schedule", "office-hours"), ("Name", "web")])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\nschedule = \"0 30 18 * * Mon-Fri\"\n\
             timezone = \"Asia/Seoul\"\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\n\
             tags = {{ Schedule = \"office-hours\" }}\nwait = true\nwait_timeout = \"2m\"\n",
            moto.endpoint
        ),
    );
    let check = opsd(&config).arg("check").output().expect("run opsd check");
    let check_out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check_out}");
    assert!(
        check_out.contains("dev-stop: credentials: OK (environment (AWS_ACCESS_KEY_ID))"),
        "{check_out}"
    );

    let out = opsd(&config)
        .args(["run-job", "dev-stop", "--state-dir"])
        .arg(dir.path())
        .output()
        .expect("run opsd run-job");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The verdict goes to stderr beside the log (stdout is the job's own output, none here).
    assert!(
        stderr.contains("\ndev-stop: success: stop: 2 stopped"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.starts_with("dev-stop: success"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // With wait = true the per-instance event carries the state the waiter observed.
    for id in &ids {
        let event = events
            .iter()
            .find(|e| e["instance_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no event for {id}: {stderr}"));
        assert_eq!(event["name"], "web");
        assert_eq!(event["previous_state"], "running");
        assert_eq!(event["new_state"], "stopped");
        assert_eq!(event["outcome"], "changed");
        assert_eq!(event["job"], "dev-stop");
        assert_eq!(moto.state(id).await, "stopped");
    }
    let summary = events
        .iter()
        .find(|e| e.get("changed").is_some())
        .unwrap_or_else(|| panic!("no summary event: {stderr}"));
    assert_eq!(
        (&summary["changed"], &summary["skipped"], &summary["failed"]),
        (&2.into(), &0.into(), &0.into())
    );
}

#[test]
fn no_credentials_gives_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty_config = dir.path().join("config");
    let empty_credentials = dir.path().join("credentials");
    std::fs::write(&empty_config, "").expect("write");
    std::fs::write(&empty_credentials, "").expect("write");
    let config = write_config(
        dir.path(),
        "[jobs.dev-start]\ntype = \"ec2\"\naction = \"start\"\nschedule = \"0 50 8 * * Mon-Fri\"\n\
         region = \"ap-northeast-2\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         tags = { Schedule = \"office-hours\" }\n",
    );
    let without_keys = |sub: &[&str]| {
        let mut cmd = opsd(&config);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", &empty_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty_credentials)
            .args(sub);
        if sub[0] == "run-job" {
            cmd.arg("--state-dir").arg(dir.path());
        }
        cmd.output().expect("run opsd")
    };
    let check = without_keys(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{text}");
    assert!(
        text.contains("dev-start: credentials: no AWS credentials found; tried environment"),
        "{text}"
    );
    assert!(text.contains("AWS_EC2_METADATA_DISABLED=true"), "{text}");
    assert!(
        text.contains(&empty_credentials.display().to_string()),
        "{text}"
    );

    let run = without_keys(&["run-job", "dev-start"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("dev-start: failed: no AWS credentials found"),
        "{stderr}"
    );
}

#[test]
fn check_names_the_profile_credentials_come_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[ops]\naws_access_key_id = AKIDTEST\naws_secret_access_key = secret\n",
    )
    .expect("write");
    let config = write_config(
        dir.path(),
        "[jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\nschedule = \"0 30 18 * * Mon-Fri\"\n\
         region = \"ap-northeast-2\"\nprofile = \"ops\"\ntags = { Schedule = \"office-hours\" }\n",
    );
    let out = opsd(&config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .arg("check")
        .output()
        .expect("run opsd check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("dev-stop: credentials: OK (shared config profile \"ops\")"),
        "{text}"
    );
}

/// Polls `cond` for up to a minute.
async fn eventually(what: &str, log: &Path, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_daemon_stops_by_tags_then_starts_by_id_on_its_schedule() {
    let moto = Moto::start();
    let office = moto.launch(2, &[("Schedule", "office-hours")]).await;
    let untagged = moto.launch(1, &[]).await;
    let opted_out = moto
        .launch(1, &[("Schedule", "office-hours"), ("opsd:skip", "true")])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let common = format!(
        "schedule = \"*/2 * * * * *\"\ntimezone = \"Asia/Seoul\"\nregion = \"{REGION}\"\n\
         endpoint_url = \"{}\"\n",
        moto.endpoint
    );
    let config = write_config(
        dir.path(),
        &format!(
            "[jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\n{common}\
             tags = {{ Schedule = \"office-hours\" }}\n"
        ),
    );
    let log = dir.path().join("log");
    let mut daemon = opsd(&config)
        .arg("run")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("opsd.sock"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start opsd run");

    eventually("the tagged instances to stop", &log, async || {
        moto.state(&office[0]).await == "stopped" && moto.state(&office[1]).await == "stopped"
    })
    .await;
    assert_eq!(moto.state(&untagged[0]).await, "running");
    assert_eq!(moto.state(&opted_out[0]).await, "running");

    // Office hours begin: the same daemon, reloaded, starts one instance by id.
    write_config(
        dir.path(),
        &format!(
            "[jobs.dev-start]\ntype = \"ec2\"\naction = \"start\"\n{common}\
             instance_ids = [\"{}\"]\n",
            office[0]
        ),
    );
    let hup = Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    eventually("the instance to start", &log, async || {
        moto.state(&office[0]).await == "running"
    })
    .await;
    assert_eq!(
        moto.state(&office[1]).await,
        "stopped",
        "only the listed id"
    );

    let term = Command::new("kill")
        .arg(daemon.id().to_string())
        .status()
        .expect("kill");
    assert!(term.success());
    assert!(daemon.wait().expect("wait for opsd").success());
    let text = std::fs::read_to_string(&log).expect("read log");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let scheduled_stop = events.iter().any(|e| {
        e["job"] == "dev-stop"
            && e["trigger"] == "schedule"
            && e["message"] == "dev-stop: run started"
    });
    assert!(scheduled_stop, "the stop ran on its schedule:\n{text}");
    let preflight = events.iter().any(|e| {
        e["job"] == "dev-stop"
            && e["message"] == "dev-stop: credentials: OK (environment (AWS_ACCESS_KEY_ID))"
    });
    assert!(preflight, "credentials are checked at load:\n{text}");
}

#[tokio::test]
async fn a_selection_matching_nothing_fails_unless_allow_empty() {
    let moto = Moto::start();
    let ids = moto.launch(1, &[("Schedule", "office-hours")]).await;
    // A tag typo: nothing matches.
    let typo = "action = \"stop\"\ntags = { Schedule = \"ofice-hours\" }";
    let r = run(&job(&moto, typo), false).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(
        detail(&r).contains("matched tags { Schedule = \"ofice-hours\" }"),
        "{r:?}"
    );
    assert!(detail(&r).contains("allow_empty = true"), "{r:?}");

    let r = run(&job(&moto, &format!("{typo}\nallow_empty = true")), false).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(detail(&r).contains("no instance matched"), "{r:?}");
    assert_eq!(moto.state(&ids[0]).await, "running");
}

/// Opt-out tags as people write them; each one must keep its instance running.
const OPT_OUT_VARIANTS: [(&str, &str); 14] = [
    ("opsd:skip", "true"),
    ("opsd:skip", "yes"),
    ("opsd:skip", "1"),
    ("opsd:skip", "on"),
    ("opsd:skip", "Yes"),
    ("opsd:skip", "TRUE"),
    ("opsd:skip", " true "),
    ("opsd:Skip", "true"),
    ("OPSD:SKIP", "true"),
    ("opsd-skip", "true"),
    ("opsd_skip", "true"),
    ("Opsd-Skip", "yes"),
    ("OPSD_SKIP", "1"),
    ("opsd:skip", "please"),
];

#[tokio::test]
async fn every_spelling_of_the_opt_out_tag_keeps_the_instance_running() {
    let moto = Moto::start();
    let mut opted_out = Vec::new();
    for (k, v) in OPT_OUT_VARIANTS {
        opted_out.extend(
            moto.launch(1, &[("Schedule", "office-hours"), (k, v)])
                .await,
        );
    }
    let mut opted_in = Vec::new();
    for v in ["false", "No", "0", "off", ""] {
        opted_in.extend(
            moto.launch(1, &[("Schedule", "office-hours"), ("OPSD:SKIP", v)])
                .await,
        );
    }
    let r = run(
        &job(
            &moto,
            "action = \"stop\"\ntags = { Schedule = \"office-hours\" }\nmax_instances = 30",
        ),
        false,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(detail(&r).starts_with("stop: 5 stopped"), "{r:?}");
    assert!(detail(&r).contains("14 skipped, 0 failed"), "{r:?}");
    for (id, variant) in opted_out.iter().zip(OPT_OUT_VARIANTS) {
        assert_eq!(moto.state(id).await, "running", "{variant:?} must opt out");
    }
    for id in &opted_in {
        assert_eq!(moto.state(id).await, "stopped");
    }
}

#[tokio::test]
async fn a_name_tag_with_a_newline_cannot_forge_a_log_line() {
    let moto = Moto::start();
    let forged =
        "web\n2026-12-01T08:00:00.000000Z  INFO opsd: i-0abc: skipped, tagged opsd:skip = \"true\"";
    let ids = moto
        .launch(1, &[("Schedule", "office-hours"), ("Name", forged)])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[jobs.dev-stop]\ntype = \"ec2\"\naction = \"stop\"\nschedule = \"@daily\"\n\
             region = \"{REGION}\"\nendpoint_url = \"{}\"\ntags = {{ Schedule = \"office-hours\" }}\n",
            moto.endpoint
        ),
    );
    let out = opsd_logging(&config, "text")
        .args(["run-job", "dev-stop", "--state-dir"])
        .arg(dir.path())
        .output()
        .expect("run opsd run-job");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(moto.state(&ids[0]).await, "stopped");
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            !line.starts_with("2026-12-01T08:00:00"),
            "forged line: {line}\n{stderr}"
        );
    }
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("web\\n2026-12-01T08:00:00"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("dev-stop: success: ") && l.contains("web\\n2026-12-01T08")),
        "the verdict escapes the name too: {stderr}"
    );
}
