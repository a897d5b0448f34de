//! Unit tests for the doctor as a whole (parse, analyse, report) on Apache's own output formats;
//! the fixtures are shared with the parts' own tests.

use super::*;
use std::path::PathBuf;

pub(super) const V_EVENT: &str = "Server version: Apache/2.4.71 (Debian)
Server built:   2026-11-12T08:58:41
Server's Module Magic Number: 20120211:142
Architecture:   64-bit
Server MPM:     event
  threaded:     yes (fixed thread count)
    forked:     yes (variable process count)
Server compiled with....
 -D APR_HAS_SENDFILE
";

pub(super) const M_RECIPE: &str = "Loaded Modules:
 core_module (static)
 so_module (static)
 mpm_event_module (shared)
 ssl_module (shared)
 http2_module (shared)
 php7_module (shared)
";

pub(super) const INCLUDES: &str = "Included configuration files:
  (*) /etc/httpd/conf/httpd.conf
    (56) /etc/httpd/conf.d/ssl.conf
";

fn output(v: &str, m: &str) -> ApacheOutput {
    ApacheOutput {
        version: v.into(),
        modules: m.into(),
        includes: INCLUDES.into(),
    }
}

fn files(ssl_conf: &str) -> Vec<(PathBuf, Option<String>)> {
    vec![
        (
            PathBuf::from("/etc/httpd/conf/httpd.conf"),
            Some("Listen 80\n".into()),
        ),
        (
            PathBuf::from("/etc/httpd/conf.d/ssl.conf"),
            Some(ssl_conf.into()),
        ),
    ]
}

#[test]
fn full_recipe_matches() {
    let d = analyze(
        &output(V_EVENT, M_RECIPE),
        &files("<VirtualHost *:443>\n  # Protocols h2 (commented out, ignored)\n  Protocols h2 http/1.1\n</VirtualHost>\n"),
    );
    assert_eq!(d.verdict, Verdict::Recipe, "{d}");
    assert_eq!(d.exit_code(), 1);
    assert_eq!(d.setup.protocols_h2.len(), 1);
    assert_eq!(d.setup.protocols_h2[0].line, 3);
    let text = d.to_string();
    assert!(text.contains("RECIPE MATCHED"), "{text}");
    assert!(text.contains("H2MaxWorkers 1"), "{text}");
    assert!(text.contains("proxy_fcgi + php-fpm"), "{text}");
    assert!(
        d.summary().contains("matches the known child-crash recipe"),
        "{}",
        d.summary()
    );
}

#[test]
fn h2maxworkers_means_mitigated() {
    let d = analyze(
        &output(V_EVENT, M_RECIPE),
        &files("Protocols h2 \\\n   http/1.1\nh2maxworkers 1\n"),
    );
    assert_eq!(d.verdict, Verdict::Mitigated, "{d}");
    assert_eq!(d.exit_code(), 0);
    assert_eq!(d.setup.h2_max_workers[0].line, 3);
}

/// Before, any H2MaxWorkers counted as the stopgap: 500 was "in place" and the doctor exited 0.
#[test]
fn only_a_low_h2maxworkers_is_the_stopgap_and_the_value_found_is_said() {
    let judged = |conf: &str| analyze(&output(V_EVENT, M_RECIPE), &files(conf));
    let high = judged("Protocols h2 http/1.1\nH2MaxWorkers 500\n");
    assert_eq!(high.verdict, Verdict::Recipe, "{high}");
    assert_eq!(high.exit_code(), 1);
    let check = high.checks.last().unwrap();
    assert_eq!(check.present, Presence::Yes);
    assert!(
        check
            .found
            .contains(":2: H2MaxWorkers 500 (500 is no stopgap")
            && check.found.contains("the stopgap is H2MaxWorkers 1"),
        "{}",
        check.found
    );
    assert!(
        high.summary().contains("H2MaxWorkers 500 at ")
            && high.summary().contains(":2 is too high to be the stopgap"),
        "{}",
        high.summary()
    );
    assert!(high.to_string().contains("500 is no stopgap"), "{high}");

    // The last directive read is the one in force.
    let later = judged("Protocols h2\nH2MaxWorkers 1\nH2MaxWorkers 64\n");
    assert_eq!(later.verdict, Verdict::Recipe, "{later}");
    let lowered = judged("Protocols h2\nH2MaxWorkers 64\nH2MaxWorkers 1\n");
    assert_eq!(lowered.verdict, Verdict::Mitigated, "{lowered}");
    assert!(
        lowered
            .checks
            .last()
            .unwrap()
            .found
            .contains(":3: H2MaxWorkers 1 (the stopgap)"),
        "{lowered}"
    );
    assert!(
        lowered.to_string().contains(":3: H2MaxWorkers 1\n"),
        "{lowered}"
    );

    let junk = judged("Protocols h2\nH2MaxWorkers many\n");
    assert_eq!(junk.verdict, Verdict::Recipe, "{junk}");
    assert!(
        junk.checks.last().unwrap().found.contains("not a number"),
        "{junk}"
    );

    let unset = judged("Protocols h2\n");
    assert_eq!(unset.checks.last().unwrap().found, "H2MaxWorkers not set");
}

#[test]
fn prefork_or_old_version_or_no_h2_is_no_recipe() {
    let prefork = V_EVENT.replace("Server MPM:     event", "Server MPM:     prefork");
    let d = analyze(
        &output(&prefork, M_RECIPE),
        &files("Protocols h2 http/1.1\n"),
    );
    assert_eq!(d.verdict, Verdict::NoRecipe);
    assert!(
        d.summary().contains("missing: worker or event MPM"),
        "{}",
        d.summary()
    );

    let old = V_EVENT.replace("2.4.71", "2.4.26");
    let d = analyze(&output(&old, M_RECIPE), &files("Protocols h2 http/1.1\n"));
    assert_eq!(d.checks[0].present, Presence::No);
    assert_eq!(d.verdict, Verdict::NoRecipe);

    let d = analyze(
        &output(V_EVENT, M_RECIPE),
        &files("Protocols h2c http/1.1\n"),
    );
    assert_eq!(d.checks[5].present, Presence::No);
    assert_eq!(d.exit_code(), 0);
}

#[test]
fn unreadable_files_make_config_checks_unknown() {
    let d = analyze(
        &output(V_EVENT, M_RECIPE),
        &[(PathBuf::from("/etc/httpd/conf/httpd.conf"), None)],
    );
    assert_eq!(d.checks[5].present, Presence::Unknown);
    assert_eq!(d.verdict, Verdict::NoRecipe);
    assert!(d
        .to_string()
        .contains("could not read /etc/httpd/conf/httpd.conf"));
}
