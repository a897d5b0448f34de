use crate::config;
use crate::jobs::JobType;
use std::path::Path;

fn parse(text: &str) -> Result<config::Config, config::ConfigError> {
    config::parse(Path::new("jobs.toml"), text)
}

#[test]
fn a_full_job_parses() {
    let cfg = parse(
        r#"
[alerts.ops-webhook]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[jobs.apache-errors]
type = "apache_log"
paths = ["/var/log/httpd/*error_log", "/var/log/apache2/*error.log"]
alert = ["ops-webhook"]
from_beginning = true
disable_rules = ["php_fatal"]
poll_interval = "100ms"

[[jobs.apache-errors.rules]]
id = "proxy_timeout"
regex = 'AH01102: .* (\S+)$'
severity = "high"
count = 5
window = "1m"
cooldown = "15m"
dedup = "$1"
"#,
    )
    .unwrap();
    let job = &cfg.jobs["apache-errors"];
    assert!(job.schedule.is_none());
    let JobType::ApacheLog(spec) = &job.job else {
        panic!("not an apache_log job")
    };
    assert!(job.job.is_continuous());
    assert_eq!(job.job.type_name(), "apache_log");
    assert_eq!(spec.alert, ["ops-webhook"]);
    let rules = spec.rules();
    assert!(rules.iter().all(|r| r.id != "php_fatal"));
    let custom = rules.last().unwrap();
    assert_eq!(custom.id, "proxy_timeout");
    assert_eq!(custom.count, 5);
    assert_eq!(custom.cooldown.as_secs(), 900);
    let wc = spec.watch_config("apache-errors");
    assert!(wc.from_beginning);
    assert_eq!(wc.poll_interval.as_millis(), 100);
}

#[test]
fn mistakes_are_reported_with_their_keys() {
    let err = parse(
        r#"
[jobs.a]
type = "apache_log"
paths = ["relative/*.log"]
schedule = "@every 5s"
disable_rules = ["child_crsh"]

[[jobs.a.rules]]
id = "child_crash"
regex = "("

[[jobs.a.rules]]
id = "empty"
regex = "x*"
count = 0
"#,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "jobs.a.paths",
        "must be an absolute path",
        "jobs.a.schedule",
        "did you mean \"child_crash\"",
        "jobs.a.rules.child_crash.id",
        "invalid regex",
        "matches an empty line",
        "count must be at least 1",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn unknown_rule_keys_are_rejected() {
    let err = parse(
        r#"
[jobs.a]
type = "apache_log"
paths = ["/var/log/apache2/error.log"]
[[jobs.a.rules]]
id = "x"
regex = "y"
severty = "high"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("severty"), "{err}");
}
