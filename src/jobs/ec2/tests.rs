//! Unit tests: configuration checks located at their keys, and the pure selection rules.

use super::select::{decide, filters, is_skip_key, Found, SkipReason};
use super::spec::{valid_instance_id, Action};
use crate::config::{parse, ConfigError};
use crate::jobs::JobType;
use aws_sdk_ec2::types::InstanceStateName;
use std::collections::BTreeMap;
use std::path::Path;

fn errors(text: &str) -> Vec<(usize, String, String)> {
    match parse(Path::new("jobs.toml"), text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(v)) => v.into_iter().map(|l| (l.line, l.key, l.message)).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

const HEAD: &str =
    "[jobs.dev]\ntype = \"ec2\"\nschedule = \"0 50 8 * * Mon-Fri\"\ntimezone = \"Asia/Seoul\"\n";

#[test]
fn office_hours_example_parses() {
    let text = format!(
        "{HEAD}action = \"start\"\nregion = \"ap-northeast-2\"\ninstance_ids = [\"i-0123456789abcdef0\"]\n\
         tags = {{ Schedule = \"office-hours\" }}\nwait = true\n"
    );
    let cfg = parse(Path::new("jobs.toml"), &text).expect("valid");
    let JobType::Ec2(spec) = &cfg.jobs["dev"].spec else {
        panic!("not an ec2 job")
    };
    assert_eq!(spec.action(), Action::Start);
    assert_eq!(spec.ids(), vec!["i-0123456789abcdef0".to_string()]);
    assert_eq!(spec.tag_filter()["Schedule"], "office-hours");
    assert!(spec.wait);
    assert_eq!(spec.max_instances(), 20);
    assert_eq!(cfg.jobs["dev"].spec.type_name(), "ec2");
}

#[test]
fn neither_ids_nor_tags_is_refused() {
    let errs = errors(&format!(
        "{HEAD}action = \"stop\"\nregion = \"us-east-1\"\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].1, "jobs.dev.instance_ids");
    assert!(
        errs[0].2.contains("never acts on all instances"),
        "{errs:?}"
    );

    let errs = errors(&format!(
        "{HEAD}action = \"stop\"\nregion = \"us-east-1\"\ntags = {{}}\n"
    ));
    assert_eq!(errs[0].1, "jobs.dev.tags");
    assert_eq!(errs[0].0, 7);
}

#[test]
fn bad_values_are_located_at_their_keys() {
    let text = format!(
        "{HEAD}action = \"stop\"\nregion = \"ap-northeast2\"\ninstance_ids = [\"i-123\", \"i-0123456789abcdef0\", \"i-0123456789abcdef0\"]\n\
         tags = {{ \"\" = \"x\" }}\nmax_instances = 0\nprofile = \"\"\nendpoint_url = \"ftp://x\"\n"
    );
    let errs = errors(&text);
    let keys: Vec<&str> = errs.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        keys,
        [
            "jobs.dev.region",
            "jobs.dev.instance_ids",
            "jobs.dev.instance_ids",
            "jobs.dev.tags",
            "jobs.dev.max_instances",
            "jobs.dev.profile",
            "jobs.dev.endpoint_url"
        ],
        "{errs:?}"
    );
    assert!(errs[1].2.contains("\"i-123\" is not an instance id"));
    assert!(errs[2].2.contains("listed twice"));
    assert_eq!(errs[0].0, 6);
    assert_eq!(errs[4].0, 9);
}

#[test]
fn unknown_action_and_keys_are_reported() {
    let errs = errors(&format!(
        "{HEAD}action = \"reboot\"\nregion = \"us-east-1\"\ntags = {{ a = \"b\" }}\nmax_instance = 3\n"
    ));
    let all = format!("{errs:?}");
    assert!(all.contains("jobs.dev.max_instance"), "{all}");
    assert!(all.contains("did you mean `max_instances`"), "{all}");
    assert!(all.contains("jobs.dev.action"), "{all}");
}

#[test]
fn instance_id_format() {
    assert!(valid_instance_id("i-0123456789abcdef0"));
    assert!(valid_instance_id("i-12345678"));
    assert!(!valid_instance_id("i-0123456789ABCDEF0"));
    assert!(!valid_instance_id("0123456789abcdef0"));
    assert!(!valid_instance_id("i-0123456789abcdef"));
}

fn inst(id: &str, state: InstanceStateName, tags: &[(&str, &str)]) -> Found {
    let tags: BTreeMap<String, String> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Found {
        id: id.to_string(),
        name: tags.get("Name").cloned().unwrap_or_default(),
        state,
        tags,
    }
}

fn office() -> BTreeMap<String, String> {
    BTreeMap::from([("Schedule".to_string(), "office-hours".to_string())])
}

#[test]
fn stop_acts_only_on_running_and_respects_skip_and_asg() {
    use InstanceStateName as S;
    let found = vec![
        inst("i-00000001", S::Running, &[("Schedule", "office-hours")]),
        inst("i-00000002", S::Stopped, &[("Schedule", "office-hours")]),
        inst("i-00000003", S::Pending, &[("Schedule", "office-hours")]),
        inst(
            "i-00000004",
            S::Running,
            &[("Schedule", "office-hours"), ("opsd:skip", "TRUE")],
        ),
        inst(
            "i-00000005",
            S::Running,
            &[
                ("Schedule", "office-hours"),
                ("aws:autoscaling:groupName", "web"),
            ],
        ),
        inst("i-00000006", S::Terminated, &[("Schedule", "office-hours")]),
        inst("i-00000007", S::Running, &[("Schedule", "office-hours-x")]),
    ];
    let sel = decide(Action::Stop, &[], &office(), false, found.clone());
    assert_eq!(
        sel.act.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["i-00000001"]
    );
    let reasons: Vec<(&str, &SkipReason)> =
        sel.skip.iter().map(|(f, r)| (f.id.as_str(), r)).collect();
    assert_eq!(
        reasons,
        [
            ("i-00000002", &SkipReason::AlreadyThere(S::Stopped)),
            ("i-00000003", &SkipReason::WrongState(S::Pending)),
            (
                "i-00000004",
                &SkipReason::OptedOut {
                    key: "opsd:skip".into(),
                    value: "TRUE".into()
                }
            ),
            ("i-00000005", &SkipReason::AutoScaling("web".into())),
            ("i-00000006", &SkipReason::WrongState(S::Terminated)),
        ]
    );
    // Terminated and opted-out instances do not count against max_instances.
    assert_eq!(sel.size(), 4);

    let with_asg = decide(Action::Hibernate, &[], &office(), true, found);
    assert_eq!(with_asg.act.len(), 2);
}

#[test]
fn start_acts_only_on_stopped_and_reports_missing_ids() {
    use InstanceStateName as S;
    let ids = vec![
        "i-00000001".to_string(),
        "i-00000002".to_string(),
        "i-0000000f".to_string(),
    ];
    let found = vec![
        inst("i-00000001", S::Stopped, &[]),
        inst("i-00000002", S::Running, &[]),
    ];
    let sel = decide(Action::Start, &ids, &BTreeMap::new(), false, found);
    assert_eq!(sel.act.len(), 1);
    assert_eq!(sel.skip[0].1, SkipReason::AlreadyThere(S::Running));
    assert_eq!(sel.missing, vec!["i-0000000f".to_string()]);
}

#[test]
fn ids_with_tags_must_match_both() {
    use InstanceStateName as S;
    let ids = vec!["i-00000001".to_string()];
    let found = vec![inst("i-00000001", S::Stopped, &[("Schedule", "other")])];
    let sel = decide(Action::Start, &ids, &office(), false, found);
    assert!(sel.act.is_empty());
    assert_eq!(sel.skip[0].1, SkipReason::TagsDiffer);
}

#[test]
fn filters_by_id_else_by_tag() {
    let by_id = filters(&["i-00000001".to_string()], &office());
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].name(), Some("instance-id"));
    let by_tag = filters(&[], &office());
    assert_eq!(by_tag[0].name(), Some("tag:Schedule"));
    assert_eq!(by_tag[0].values(), ["office-hours".to_string()]);
}

#[test]
fn the_opt_out_tag_is_read_whatever_its_case_separators_and_value() {
    use InstanceStateName as S;
    for key in [
        "opsd:skip",
        "opsd:Skip",
        "OPSD:SKIP",
        "opsd-skip",
        "opsd_skip",
        "Opsd.Skip",
        " opsd : skip ",
    ] {
        assert!(is_skip_key(key), "{key}");
    }
    for key in ["opsd:skipped", "opsd", "skip", "opsdskip2", "xopsd:skip"] {
        assert!(!is_skip_key(key), "{key}");
    }
    let run = |key: &str, value: &str| {
        let found = vec![inst(
            "i-00000001",
            S::Running,
            &[("Schedule", "office-hours"), (key, value)],
        )];
        decide(Action::Stop, &[], &office(), false, found)
    };
    for value in ["true", "yes", "1", "on", "Y", "please", " TRUE "] {
        let sel = run("OPSD-Skip", value);
        assert!(sel.act.is_empty(), "{value:?} must opt out");
        assert!(
            sel.skip[0].1.is_notable(),
            "a variant spelling is warned about"
        );
    }
    for value in ["false", "No", "0", "OFF", "", "  "] {
        assert_eq!(
            run("opsd_skip", value).act.len(),
            1,
            "{value:?} opts back in"
        );
    }
    let canonical = run("opsd:skip", "true");
    assert!(!canonical.skip[0].1.is_notable());
    assert_eq!(
        canonical.skip[0].1.to_string(),
        "tagged opsd:skip = \"true\""
    );
}

#[test]
fn tag_text_in_reasons_and_labels_is_escaped() {
    use InstanceStateName as S;
    let forged = "web\n2026-12-01T08:00:00Z  INFO i-0abc: skipped, tagged opsd:skip\u{202e}";
    let mut f = inst(
        "i-00000001",
        S::Running,
        &[("Schedule", "office-hours"), ("Name", forged)],
    );
    let i = aws_sdk_ec2::types::Instance::builder()
        .instance_id("i-00000001")
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value(forged)
                .build(),
        )
        .build();
    f.name = Found::from_instance(&i).expect("an id").name;
    assert!(!f.label().contains('\n'), "{}", f.label());
    assert!(f.label().contains("web\\n2026"), "{}", f.label());
    let reason = SkipReason::OptedOut {
        key: "opsd:skip\r".into(),
        value: "yes\n".into(),
    };
    assert!(!reason.to_string().contains(['\n', '\r']), "{reason}");
    let asg = SkipReason::AutoScaling("g\u{2028}x".into());
    assert!(asg.to_string().contains("g\\u{2028}x"), "{asg}");
}

#[test]
fn a_bad_endpoint_url_is_reported_without_its_userinfo_or_path() {
    let errs = errors(&format!(
        "{HEAD}action = \"stop\"\nregion = \"us-east-1\"\ntags = {{ a = \"b\" }}\n\
         endpoint_url = \"ftp://opsd:s3cr3t@127.0.0.1/t0ken\"\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].1, "jobs.dev.endpoint_url");
    for secret in ["opsd:", "s3cr3t", "t0ken"] {
        assert!(!errs[0].2.contains(secret), "{secret} in {errs:?}");
    }
}
