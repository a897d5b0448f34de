//! Unit tests of the `apache_log` job type: its configuration checks, the alerts its events
//! raise, the start-up doctor, and `opsd check`'s report of matched files.

use super::*;
use crate::config;
use crate::jobs::JobType;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let JobType::ApacheLog(spec) = &job.spec else {
        panic!("not an apache_log job")
    };
    assert!(job.spec.is_continuous());
    assert_eq!(job.spec.type_name(), "apache_log");
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

/// The events the built-in rules raise for `text` (Apache's own lines).
fn events(text: &str) -> Vec<crate::apache::rules::LogEvent> {
    let mut set =
        crate::apache::rules::RuleSet::new(crate::apache::rules::builtin_rules()).unwrap();
    let mut out = Vec::new();
    set.scan(
        text.as_bytes(),
        Path::new("/var/log/apache2/error.log"),
        &mut out,
    );
    out
}

/// A stand-in for `apachectl` that answers `-V`, `-M` and `-t -D DUMP_INCLUDES` like an event
/// MPM server with `modules` loaded and `conf` as its only configuration file.
fn fake_apachectl(dir: &Path, modules: &[&str], conf: &str, delay: &str) -> PathBuf {
    let conf_path = dir.join("httpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mods: String = modules
        .iter()
        .map(|m| format!(" {m} (shared)\\n"))
        .collect();
    let script = dir.join("apachectl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep {delay}\ncase \"$*\" in\n\
             -V) printf 'Server version: Apache/2.4.71 (Debian)\\nServer MPM:     event\\n';;\n\
             -M) printf 'Loaded Modules:\\n core_module (static)\\n mpm_event_module (shared)\\n{mods}';;\n\
             *DUMP_INCLUDES*) printf 'Included configuration files:\\n  (*) {}\\n';;\n\
             *) exit 3;;\nesac\n",
            conf_path.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

const RECIPE_MODULES: &[&str] = &["ssl_module", "http2_module", "php_module"];
const CRASH: &str = "[Wed Nov 25 05:52:50.032317 2026] [core:notice] [pid 28516:tid 28516] AH00052: child pid 28517 exit signal Segmentation fault (11)\n";
const PHP_FATAL: &str = "[Wed Nov 25 06:00:01.000001 2026] [php:error] [pid 7:tid 7] [client 10.0.0.1:5] PHP Fatal error:  Uncaught Error: x in /srv/www/a.php:12\n";

/// Before, every child-crash alert said "the fix is php-fpm via proxy_fcgi", also on a server
/// whose own doctor verdict (logged seconds before) said no mod_php is loaded.
#[tokio::test]
async fn child_crash_advice_follows_the_doctors_verdict_for_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_apachectl(dir.path(), RECIPE_MODULES, "Protocols h2 http/1.1\n", "0");
    let recipe = diagnose_in_background(Some(bin), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(recipe.matches_recipe(), "{recipe}");

    let crash = &events(CRASH)[0];
    let a = alert_for("web", crash, Some(&recipe));
    assert_eq!(a.rule, "child_crash");
    let extra = a.extra.clone().unwrap_or_default();
    assert!(
        extra.contains("matches the known child-crash recipe") && extra.contains("php-fpm"),
        "{a:?}"
    );
    assert!(!extra.contains("CoreDumpDirectory"), "{extra}");
    assert_eq!(a.file.as_deref(), Some("/var/log/apache2/error.log"));
    assert_eq!(a.first_line.as_deref(), Some(CRASH.trim_end()));

    // A server without mod_php: no php-fpm fix is claimed, the way to a core is given.
    let dir2 = tempfile::tempdir().unwrap();
    let plain = fake_apachectl(
        dir2.path(),
        &["ssl_module", "http2_module"],
        "Protocols h2\n",
        "0",
    );
    let no_recipe = diagnose_in_background(Some(plain), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!no_recipe.matches_recipe(), "{no_recipe}");
    let n = alert_for("web", crash, Some(&no_recipe));
    let extra = n.extra.clone().unwrap_or_default();
    assert!(
        extra.contains("does not match the known child-crash recipe")
            && extra.contains("missing: a php*_module loaded (mod_php)")
            && extra.contains("php-fpm is not the known fix here")
            && extra.contains("CoreDumpDirectory")
            && extra.contains("AH00051"),
        "{extra}"
    );
    assert!(!n.summary.contains("php-fpm"), "{}", n.summary);
    assert!(!n.text().contains("the fix is"), "{}", n.text());

    // A crash that dumped core: the advice names the directory AH00051 gave.
    let cored = &events(
        "[Wed Nov 25 05:52:50.032317 2026] [core:notice] [pid 2:tid 2] AH00051: child pid 3 exit signal Segmentation fault (11), possible coredump in /var/crash/apache2\n",
    )[0];
    let c = alert_for("web", cored, Some(&no_recipe));
    assert!(
        c.extra
            .as_deref()
            .is_some_and(|e| e.contains("core in /var/crash/apache2 (AH00051)")
                && !e.contains("CoreDumpDirectory")),
        "{c:?}"
    );

    // Before the doctor answers: no verdict is claimed either way.
    let none = alert_for("web", crash, None).extra.unwrap_or_default();
    assert!(
        none.contains("run `opsd apache doctor`") && none.contains("CoreDumpDirectory"),
        "{none}"
    );
    // Other rules carry no crash advice.
    let php = &events(PHP_FATAL)[0];
    let p = alert_for("web", php, Some(&recipe));
    assert_eq!((p.rule.as_str(), p.extra.as_deref()), ("php_fatal", None));
    assert_eq!(p.dedup_key.as_deref(), Some("/srv/www/a.php:12"));
}

#[tokio::test]
async fn the_start_up_doctor_is_bounded_in_time_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let slow = fake_apachectl(dir.path(), RECIPE_MODULES, "Protocols h2\n", "30");
    let t = std::time::Instant::now();
    let err = diagnose_in_background(Some(slow), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, StartDoctorError::Timeout), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );

    let err = diagnose_in_background(Some("/nonexistent/apachectl".into()), DOCTOR_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot run /nonexistent/apachectl"),
        "{err}"
    );
}

/// Before, the alert after a cooldown said nothing of the matches the cooldown swallowed.
#[test]
fn the_alert_after_a_cooldown_says_how_many_matches_it_held_back() {
    let exhaustion = |t: &str| {
        format!("[Wed Nov 25 {t}.000001 2026] [mpm_event:error] [pid 1:tid 1] AH00484: server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers setting\n")
    };
    let text: String = ["10:00:00", "10:02:00", "10:03:00", "10:05:00", "10:10:01"]
        .iter()
        .map(|t| exhaustion(t))
        .collect();
    let evs = events(&text);
    assert_eq!(evs.len(), 2, "{evs:#?}");
    let first = alert_for("web", &evs[0], None);
    assert!(!first.summary.contains("more since"), "{}", first.summary);
    let next = alert_for("web", &evs[1], None);
    assert!(
        next.summary
            .contains("and 3 more since 10:02:00 (held back by the rule's cooldown)"),
        "{}",
        next.summary
    );
    assert!(
        next.text().contains("and 3 more since 10:02:00"),
        "{}",
        next.text()
    );
}

#[test]
fn apache_bin_is_a_job_key() {
    let cfg = parse(
        r#"
[jobs.w]
type = "apache_log"
paths = ["/var/log/apache2/error.log"]
apache_bin = "/usr/sbin/apache2ctl"
"#,
    )
    .unwrap();
    let JobType::ApacheLog(spec) = &cfg.jobs["w"].spec else {
        panic!("not an apache_log job")
    };
    assert_eq!(
        spec.apache_bin.as_deref(),
        Some(Path::new("/usr/sbin/apache2ctl"))
    );
}

#[test]
fn a_job_whose_keys_fail_to_parse_is_still_continuous_and_needs_no_schedule() {
    let err = parse(
        r#"
[jobs.a]
type = "apache_log"
paths = "/var/log/apache2/error.log"
from_beginnig = true
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("jobs.a.paths"), "{err}");
    assert!(
        !err.contains("schedule"),
        "false missing-schedule error:\n{err}"
    );
    assert!(err.contains("unknown key for an apache_log job"), "{err}");
}

/// Before, `opsd check` said nothing of an apache_log job's globs: a typo in `paths` showed
/// only as a job that never alerts.
#[tokio::test]
async fn check_shows_which_files_the_globs_match_today() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a_error.log", "b_error.log", "access.log"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    std::fs::create_dir(dir.path().join("c_error.log")).unwrap();
    let d = dir.path().display();
    let cfg = parse(&format!(
        "[jobs.w]\ntype = \"apache_log\"\npaths = [\"{d}/*error.log\", \"{d}/nope/*.log\"]\n"
    ))
    .unwrap();
    let line = cfg.jobs["w"].spec.preflight().await.unwrap().unwrap();
    assert_eq!(
        line,
        format!(
            "follows today: {d}/*error.log matches 2 file(s): {d}/a_error.log, {d}/b_error.log; \
             {d}/nope/*.log matches no file today (a file that appears is followed within a second)"
        )
    );
}
