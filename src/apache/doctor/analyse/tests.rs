//! The verdicts on parsed descriptions: each ingredient's judgement (including when Apache's
//! answers do not settle it) and how the ingredients and the stopgap make the verdict.

use super::*;
use std::path::PathBuf;

/// A directive at `line` of `/etc/apache2/sites-enabled/site.conf`.
fn at(line: usize, text: &str) -> Location {
    Location {
        file: PathBuf::from("/etc/apache2/sites-enabled/site.conf"),
        line,
        text: text.into(),
    }
}

/// A server with every ingredient at its edge: the first affected version and the worker MPM.
fn recipe() -> Setup {
    Setup {
        server_version: Some("Apache/2.4.27 (Unix)".into()),
        version: Some(FIRST_AFFECTED),
        mpm: Some("worker".into()),
        modules: [
            "mpm_worker_module",
            "ssl_module",
            "http2_module",
            "php_module",
        ]
        .map(String::from)
        .to_vec(),
        files: vec![PathBuf::from("/etc/apache2/sites-enabled/site.conf")],
        unreadable: Vec::new(),
        protocols_h2: vec![at(2, "Protocols h2 http/1.1")],
        h2_max_workers: Vec::new(),
    }
}

/// The presence of each check, in order.
fn presences(d: &Diagnosis) -> Vec<Presence> {
    d.checks.iter().map(|c| c.present).collect()
}

use Presence::{No, Unknown, Yes};

#[test]
fn every_ingredient_and_no_stopgap_is_the_recipe() {
    let d = judge(recipe());
    assert_eq!(presences(&d), [Yes; 7]);
    assert_eq!(d.verdict, Verdict::Recipe);
    assert!(d.matches_recipe());
    assert_eq!(d.checks[0].found, "Apache/2.4.27 (Unix)");
    assert_eq!(d.checks[1].found, "worker");
    assert_eq!(d.checks[2].found, "php_module");
    assert_eq!(
        d.checks[5].found,
        "/etc/apache2/sites-enabled/site.conf:2: Protocols h2 http/1.1"
    );
    assert_eq!(d.checks[6].found, "H2MaxWorkers not set");
    // The description is kept as it was given.
    assert_eq!(d.setup, recipe());
}

#[test]
fn the_recipe_starts_at_2_4_27_and_an_unreported_version_is_unknown() {
    let version = |v: Option<(u32, u32, u32)>| {
        judge(Setup {
            version: v,
            ..recipe()
        })
    };
    assert_eq!(version(Some((2, 4, 26))).checks[0].present, No);
    assert_eq!(version(Some((2, 4, 26))).verdict, Verdict::NoRecipe);
    assert_eq!(version(Some((2, 5, 0))).checks[0].present, Yes);
    assert_eq!(version(None).checks[0].present, Unknown);
    let unreported = judge(Setup {
        server_version: None,
        version: None,
        ..recipe()
    });
    assert_eq!(unreported.checks[0].found, "version not reported");
    assert_eq!(unreported.verdict, Verdict::NoRecipe);
}

#[test]
fn only_worker_and_event_are_threaded_mpms() {
    let mpm = |m: Option<&str>| {
        judge(Setup {
            mpm: m.map(String::from),
            ..recipe()
        })
        .checks[1]
            .clone()
    };
    assert_eq!(mpm(Some("event")).present, Yes);
    assert_eq!(mpm(Some("prefork")).present, No);
    assert_eq!(mpm(Some("winnt")).present, No);
    let none = mpm(None);
    assert_eq!(
        (none.present, none.found.as_str()),
        (Unknown, "MPM not reported")
    );
}

#[test]
fn without_a_module_list_the_module_checks_are_unknown_not_missing() {
    let d = judge(Setup {
        modules: Vec::new(),
        ..recipe()
    });
    assert_eq!(presences(&d)[2..5], [Unknown, Unknown, Unknown]);
    assert_eq!(d.checks[2].found, "no php module");
    assert_eq!(d.verdict, Verdict::NoRecipe);

    // A list without them: missing, each on its own.
    let only = |m: &[&str]| {
        presences(&judge(Setup {
            modules: m.iter().map(|s| s.to_string()).collect(),
            ..recipe()
        }))[2..5]
            .to_vec()
    };
    assert_eq!(only(&["php8_module"]), [Yes, No, No]);
    assert_eq!(only(&["http2_module"]), [No, Yes, No]);
    assert_eq!(only(&["ssl_module", "phpx_module"]), [No, No, Yes]);
}

#[test]
fn every_loaded_php_module_is_named() {
    let d = judge(Setup {
        modules: ["php7_module", "ssl_module", "http2_module", "php8_module"]
            .map(String::from)
            .to_vec(),
        ..recipe()
    });
    assert_eq!(d.checks[2].found, "php7_module, php8_module");
    assert_eq!(d.verdict, Verdict::Recipe);
}

#[test]
fn config_checks_are_unknown_when_a_file_is_unread_unless_a_directive_was_found() {
    let unread = PathBuf::from("/etc/apache2/conf-enabled/secret.conf");
    // `Protocols h2` seen in a readable file counts; the stopgap might hide in the other.
    let d = judge(Setup {
        unreadable: vec![unread.clone()],
        ..recipe()
    });
    assert_eq!((d.checks[5].present, d.checks[6].present), (Yes, Unknown));
    // An unknown stopgap does not mitigate: every ingredient is there.
    assert_eq!(d.verdict, Verdict::Recipe);

    let nothing_seen = judge(Setup {
        unreadable: vec![unread],
        protocols_h2: Vec::new(),
        ..recipe()
    });
    assert_eq!(presences(&nothing_seen)[5..], [Unknown, Unknown]);
    assert_eq!(nothing_seen.verdict, Verdict::NoRecipe);

    // No file listed at all: nothing is known of the configuration either.
    let no_files = judge(Setup {
        files: Vec::new(),
        protocols_h2: Vec::new(),
        ..recipe()
    });
    assert_eq!(presences(&no_files)[5..], [Unknown, Unknown]);

    // Every file read and no `Protocols h2`: missing.
    let no_h2 = judge(Setup {
        protocols_h2: Vec::new(),
        ..recipe()
    });
    assert_eq!(presences(&no_h2)[5..], [No, Yes]);
    assert_eq!(no_h2.checks[5].found, "");
}

#[test]
fn the_stopgap_is_the_last_h2maxworkers_of_at_most_one() {
    let workers = |lines: &[&str]| {
        let d = judge(Setup {
            h2_max_workers: lines
                .iter()
                .enumerate()
                .map(|(i, t)| at(i + 3, t))
                .collect(),
            ..recipe()
        });
        (d.checks[6].clone(), d.verdict)
    };
    let (c, v) = workers(&["H2MaxWorkers 1"]);
    assert_eq!((c.present, v), (No, Verdict::Mitigated));
    assert_eq!(
        c.found,
        "/etc/apache2/sites-enabled/site.conf:3: H2MaxWorkers 1 (the stopgap)"
    );
    assert_eq!(workers(&["H2MaxWorkers 0"]).1, Verdict::Mitigated);
    assert_eq!(
        workers(&["H2MaxWorkers 1", "H2MaxWorkers 2"]).1,
        Verdict::Recipe
    );
    assert_eq!(
        workers(&["H2MaxWorkers 8", "H2MaxWorkers 1"]).1,
        Verdict::Mitigated
    );
    let (c, v) = workers(&["H2MaxWorkers 2"]);
    assert_eq!((c.present, v), (Yes, Verdict::Recipe));
    assert!(c.found.ends_with("(2 is no stopgap: PHP still runs in up to 2 HTTP/2 threads at once; the stopgap is H2MaxWorkers 1)"), "{}", c.found);
    // A directive without a number is no stopgap (Apache would refuse to start with it).
    for junk in ["H2MaxWorkers", "H2MaxWorkers -1", "H2MaxWorkers one"] {
        let (c, v) = workers(&[junk]);
        assert_eq!((c.present, v), (Yes, Verdict::Recipe), "{junk}");
        assert!(c.found.contains("not a number"), "{junk}: {}", c.found);
    }
}

#[test]
fn a_stopgap_without_the_rest_of_the_recipe_is_no_recipe() {
    let d = judge(Setup {
        mpm: Some("prefork".into()),
        h2_max_workers: vec![at(3, "H2MaxWorkers 1")],
        ..recipe()
    });
    assert_eq!(d.checks[6].present, No);
    assert_eq!(d.verdict, Verdict::NoRecipe);
}

#[test]
fn presence_is_unknown_only_when_the_answers_do_not_say() {
    assert_eq!(Presence::from(Some(true)), Yes);
    assert_eq!(Presence::from(Some(false)), No);
    assert_eq!(Presence::from(None), Unknown);
}
