//! Unit tests for `[alerts.NAME]`: the issue's example parses, and every mistake is located.

use super::SinkKind;
use crate::command_line::CommandLine;
use crate::config::parse;
use std::path::Path;
use std::time::Duration;

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/opsd/jobs.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

const JOB: &str = "[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n";

#[test]
fn issue_example_parses() {
    let text = format!(
        r#"{JOB}alert = ["ops-webhook", "mail-admin"]

[alerts.ops-webhook]
type = "webhook"
url = "https://hooks.example.com/T000/B000/XXX"
headers = {{ Authorization = "Bearer s3cret" }}
timeout = "5s"

[alerts.mail-admin]
type = "command"
command = ["/usr/local/bin/notify-admin"]
"#
    );
    let cfg = parse(Path::new("jobs.toml"), &text).unwrap();
    assert_eq!(cfg.jobs["a"].alert, vec!["ops-webhook", "mail-admin"]);
    match &cfg.alerts["ops-webhook"].kind {
        SinkKind::Webhook(w) => {
            assert_eq!(w.url.as_str(), "https://hooks.example.com/T000/B000/XXX");
            assert_eq!(
                w.headers,
                vec![("Authorization".to_string(), "Bearer s3cret".to_string())]
            );
            assert_eq!(w.timeout, Duration::from_secs(5));
        }
        other => panic!("not a webhook: {other:?}"),
    }
    match &cfg.alerts["mail-admin"].kind {
        SinkKind::Command(c) => {
            assert_eq!(
                c.command,
                CommandLine::Argv(vec!["/usr/local/bin/notify-admin".into()])
            );
            assert_eq!(c.timeout, Duration::from_secs(10));
            assert!(c.pass_env.is_empty(), "{:?}", c.pass_env);
        }
        other => panic!("not a command: {other:?}"),
    }
}

#[test]
fn unknown_sink_key_is_located_with_a_suggestion() {
    let e = errors("[alerts.w]\ntype = \"webhook\"\nurl = \"http://127.0.0.1/\"\nheader = {}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:4:1: `alerts.w.header`: unknown key for a webhook sink; did you mean `headers`?"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_url_is_located() {
    let e = errors("[alerts.w]\ntype = \"webhook\"\nurl = \"hooks.example.com/x\"\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:3:7: `alerts.w.url`: invalid URL"),
        "{}",
        e[0]
    );
    let e = errors("[alerts.w]\ntype = \"webhook\"\nurl = \"ftp://example.com/x\"\n");
    assert!(e[0].contains("unsupported URL scheme \"ftp\""), "{}", e[0]);
}

#[test]
fn empty_command_is_located() {
    let e = errors("[alerts.m]\ntype = \"command\"\ncommand = []\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:3:11: `alerts.m.command`: the command is empty"),
        "{}",
        e[0]
    );
}

#[test]
fn a_command_sinks_pass_env_is_read_and_a_bad_name_is_located() {
    let e = errors(
        "[alerts.m]\ntype = \"command\"\ncommand = [\"/bin/true\"]\npass_env = [\"HTTPS_PROXY\", \"A=B\", \"OPSD_RUN_ID\"]\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:4:28: `alerts.m.pass_env`: \"A=B\" is not an environment variable name"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with(
            "/etc/opsd/jobs.toml:4:35: `alerts.m.pass_env`: OPSD_RUN_ID is set by opsd"
        ),
        "{}",
        e[1]
    );
    let cfg = parse(
        Path::new("jobs.toml"),
        "[alerts.m]\ntype = \"command\"\ncommand = [\"/bin/true\"]\npass_env = [\"HTTPS_PROXY\"]\n",
    )
    .unwrap();
    match &cfg.alerts["m"].kind {
        SinkKind::Command(c) => assert_eq!(c.pass_env, ["HTTPS_PROXY"]),
        other => panic!("not a command: {other:?}"),
    }
}

#[test]
fn unknown_type_and_missing_url() {
    let e = errors("[alerts.m]\ntype = \"webhok\"\n");
    assert!(
        e[0].contains(
            "`alerts.m.type`: unknown alert sink type \"webhok\"; did you mean \"webhook\"?"
        ),
        "{}",
        e[0]
    );
    let e = errors("[alerts.m]\ntype = \"webhook\"\n");
    assert!(e[0].contains("missing field `url`"), "{}", e[0]);
}

#[test]
fn bad_header_name_is_located() {
    let e = errors(
        "[alerts.w]\ntype = \"webhook\"\nurl = \"http://127.0.0.1/\"\nheaders = { \"bad header\" = \"x\" }\n",
    );
    assert!(e[0].starts_with("/etc/opsd/jobs.toml:4:"), "{}", e[0]);
    assert!(e[0].contains("not a valid HTTP header name"), "{}", e[0]);
}

#[test]
fn unknown_sink_reference_is_located_with_a_suggestion() {
    let text = format!(
        "{JOB}alert = [\"ops-webhok\"]\n[alerts.ops-webhook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n"
    );
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:5:10: `jobs.a.alert`: no alert sink named \"ops-webhok\"; did you mean \"ops-webhook\"?"),
        "{}",
        e[0]
    );
    let e = errors(&format!("{JOB}alert = [\"nowhere\"]\n"));
    assert!(
        e[0].contains("no [alerts.NAME] sections are defined"),
        "{}",
        e[0]
    );
}

#[test]
fn a_broken_sink_is_reported_once_not_again_at_each_reference() {
    let text = format!("{JOB}alert = [\"w\"]\n[alerts.w]\ntype = \"webhook\"\nurl = \"nope\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("`alerts.w.url`"), "{}", e[0]);
}

#[test]
fn alerts_must_be_tables() {
    let e = errors("alerts = 3\n");
    assert!(e[0].contains("`alerts` must be a table"), "{}", e[0]);
    let e = errors("[alerts]\nw = \"http://x\"\n");
    assert!(
        e[0].contains("`alerts.w`: an alert sink must be a table"),
        "{}",
        e[0]
    );
}

#[test]
fn debug_of_a_webhook_sink_shows_neither_userinfo_path_nor_header_values() {
    let text = "[alerts.w]\ntype = \"webhook\"\nurl = \"https://bot:hunter2@hooks.example.com/T0/SECRETTOKEN?sig=abc\"\nheaders = { Authorization = \"Bearer s3cret\" }\n";
    let cfg = parse(Path::new("jobs.toml"), text).unwrap();
    let shown = format!("{:?} {:#?}", cfg.alerts, cfg);
    assert!(shown.contains("https://hooks.example.com/…"), "{shown}");
    assert!(shown.contains("Authorization"), "{shown}");
    for secret in ["bot", "hunter2", "SECRETTOKEN", "sig=abc", "s3cret"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn an_invalid_url_is_not_echoed_in_the_error() {
    let e = errors("[alerts.w]\ntype = \"webhook\"\nurl = \"https://bot:pw@hooks.example.com:99999/SECRETTOKEN\"\n");
    assert!(
        e[0].contains("`alerts.w.url`: invalid URL: invalid port number"),
        "{}",
        e[0]
    );
    assert!(
        !e[0].contains("SECRETTOKEN") && !e[0].contains("bot:pw"),
        "{}",
        e[0]
    );
}
