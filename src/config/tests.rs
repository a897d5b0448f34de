//! Unit tests for configuration errors: each names the file, line, column and key.

use super::*;
use crate::jobs::JobType;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/opsd/jobs.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn example_from_the_issue_parses() {
    let text = r#"
[defaults]
timezone = "Asia/Seoul"

[jobs.push-messages]
type = "command"
schedule = "@every 5s"
command = ["/usr/local/bin/send-push", "--batch"]
timeout = "4s"

[jobs.nightly-report]
type = "command"
schedule = "0 30 2 * * *"
command = "pg_dump app | gzip > /var/backups/app.sql.gz"
"#;
    let cfg = parse(Path::new("jobs.toml"), text).unwrap();
    assert_eq!(cfg.defaults.timezone, chrono_tz::Asia::Seoul);
    let push = &cfg.jobs["push-messages"];
    assert_eq!(push.timeout, Some(Duration::from_secs(4)));
    assert_eq!(push.overlap, Overlap::Skip);
    assert_eq!(
        push.schedule.as_ref().unwrap().timezone(),
        chrono_tz::Asia::Seoul
    );
    assert_eq!(cfg.jobs.len(), 2);
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@every 1s\"\ncommand = [\"/bin/true\"]\ntimout = \"4s\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:5:1: `jobs.a.timout`: unknown key"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("did you mean `timeout`?"), "{}", e[0]);
}

#[test]
fn bad_time_zone() {
    let e = errors("[defaults]\ntimezone = \"Asia/Seol\"\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:2:12: `defaults.timezone`: unknown time zone"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("did you mean \"Asia/Seoul\"?"), "{}", e[0]);
}

#[test]
fn bad_cron_expression() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"0 99 * * *\"\ncommand = \"true\"\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:3:12: `jobs.a.schedule`: invalid cron expression"),
        "{}",
        e[0]
    );
}

#[test]
fn duplicate_job_name() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n\n[jobs.a]\ntype = \"command\"\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:6:7: `jobs.a`: duplicate job `a` (first defined at line 1)"]
    );
}

#[test]
fn duplicate_alert_sink_and_key() {
    let e = errors("[alerts.x]\ntype = \"command\"\ncommand = \"true\"\n[alerts.x]\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:4:9: `alerts.x`: duplicate alert sink `x` (first defined at line 1)"]
    );
    let e = errors("[jobs.a]\ntype = \"command\"\ncommand = \"a\"\ncommand = \"b\"\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:4:1: `jobs.a.command`: duplicate key (first defined at line 3)"]
    );
}

#[test]
fn bad_enum_value_names_the_key_and_other_errors_follow() {
    let e = errors("[jobs.b]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\noverlap = \"skp\"\ntimeout = \"soon\"\nexclude_dates = [\"Dec 25\"]\n");
    assert_eq!(e.len(), 3, "{e:?}");
    assert_eq!(
        e[0],
        "/etc/opsd/jobs.toml:5:11: `jobs.b.overlap`: unknown value \"skp\"; did you mean \"skip\"? (expected one of: skip, queue, allow)"
    );
    assert!(
        e[1].starts_with("/etc/opsd/jobs.toml:6:11: `jobs.b.timeout`: invalid duration \"soon\""),
        "{}",
        e[1]
    );
    assert_eq!(
        e[2],
        "/etc/opsd/jobs.toml:7:18: `jobs.b.exclude_dates`: \"Dec 25\" is not a date; write \"YYYY-MM-DD\""
    );
}

#[test]
fn misspelt_key_is_not_also_missing() {
    let e =
        errors("[jobs.c]\ntype = \"command\"\nschedule = \"@daily\"\ncomand = [\"/bin/true\"]\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:4:1: `jobs.c.comand`: unknown key for a command job; did you mean `command`?"]
    );
    let e = errors("[jobs.c]\ntype = \"command\"\nshedule = \"@daily\"\ncommand = \"true\"\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:3:1: `jobs.c.shedule`: unknown key for a command job; did you mean `schedule`?"]
    );
}

#[test]
fn bad_cron_field_names_field_and_range() {
    let e =
        errors("[jobs.d]\ntype = \"command\"\nschedule = \"0 61 * * * *\"\ncommand = \"true\"\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:3:12: `jobs.d.schedule`: invalid cron expression \"0 61 * * * *\": the minute field \"61\" is out of range (minute takes 0-59)"]
    );
    let e =
        errors("[jobs.d]\ntype = \"command\"\nschedule = \"*/0 * * * *\"\ncommand = \"true\"\n");
    assert_eq!(
        e,
        ["/etc/opsd/jobs.toml:3:12: `jobs.d.schedule`: invalid cron expression \"*/0 * * * *\": the minute field \"*/0\" is invalid: Step cannot be zero (minute takes 0-59)"]
    );
}

#[test]
fn empty_command() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = []\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:4:11: `jobs.a.command`: the command is empty"),
        "{}",
        e[0]
    );
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"  \"\n");
    assert!(e[0].contains("the command is empty"), "{}", e[0]);
}

#[test]
fn unknown_type_and_missing_schedule() {
    let e = errors("[jobs.a]\ntype = \"comand\"\n");
    assert!(
        e[0].contains("`jobs.a.type`: unknown job type \"comand\"; did you mean \"command\"?"),
        "{}",
        e[0]
    );
    let e = errors("[jobs.b]\ntype = \"command\"\ncommand = \"true\"\n");
    assert!(
        e[0].contains("`jobs.b.schedule`: missing `schedule`"),
        "{}",
        e[0]
    );
}

#[test]
fn wrong_value_type_names_the_key() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\noverlap = \"sometimes\"\n");
    assert!(e[0].starts_with("/etc/opsd/jobs.toml:5:11:"), "{}", e[0]);
    assert!(e[0].contains("sometimes"), "{}", e[0]);
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\ntimeout = \"soon\"\n");
    assert!(e[0].contains("invalid duration"), "{}", e[0]);
}

#[test]
fn all_errors_are_reported_at_once() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@every 0s\"\ncommand = \"true\"\n[jobs.b]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nexclude_dates = [\"Dec 25\"]\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains(":3:"), "{}", e[0]);
    assert!(
        e[1].contains(":9:") && e[1].contains("YYYY-MM-DD"),
        "{}",
        e[1]
    );
}

#[test]
fn syntax_error_has_a_location() {
    let e = errors("[jobs.a]\ntype = \"command\ncommand = 1\n");
    assert!(e[0].starts_with("/etc/opsd/jobs.toml:2:"), "{}", e[0]);
}

#[test]
fn unknown_top_level_section() {
    let e = errors("[defualts]\ntimezone = \"UTC\"\n");
    assert!(
        e[0].contains("`defualts`: unknown key; did you mean `defaults`?"),
        "{}",
        e[0]
    );
}

#[test]
fn a_misspelt_type_key_is_named_not_reported_missing() {
    let e = errors(
        "[alerts.ops]\ntpye = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n\n\
         [jobs.a]\ntpye = \"command\"\nschedule = \"@every 5s\"\ncommand = [\"/bin/true\"]\n",
    );
    assert_eq!(
        e,
        vec![
            "/etc/opsd/jobs.toml:2:1: `alerts.ops.tpye`: unknown key; did you mean `type`?",
            "/etc/opsd/jobs.toml:6:1: `jobs.a.tpye`: unknown key; did you mean `type`?",
        ],
        "{e:?}"
    );
}

#[test]
fn a_huge_regex_is_refused_at_its_key() {
    let lines = errors(
        r#"[jobs.web]
type = "apache_log"
paths = ["/var/log/apache2/error.log"]

[[jobs.web.rules]]
id = "huge"
regex = '\w{1000}\w{1000}'
"#,
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("/etc/opsd/jobs.toml:7:9: `jobs.web.rules.huge.regex`: this regex is too big once compiled"),
        "{lines:?}"
    );
}

#[test]
fn invalid_utf8_is_located_at_its_first_bad_byte() {
    let e = parse_bytes(
        Path::new("/etc/opsd/jobs.toml"),
        b"[jobs.a]\ntype = \"command\"\ncommand = \"echo \xe9t\xe9\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/opsd/jobs.toml:3:17: the file is not UTF-8 text: byte 0xe9 cannot start or \
         continue a character here (save the file as UTF-8)"
    );
}

#[test]
fn a_huge_value_is_cut_in_its_message() {
    let zone = "Asia/Seoul".repeat(100_000);
    let lines = errors(&format!("[defaults]\ntimezone = \"{zone}\"\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("\"Asia/SeoulAsia/Seoul") && lines[0].contains("… (1000000 bytes)"),
        "{}",
        lines[0]
    );
    assert!(lines[0].len() < 300, "{}", lines[0]);
}

fn drop_in_errors(main: &str, drop_ins: &[(&str, &str)]) -> Vec<String> {
    let drop_ins: Vec<(PathBuf, Vec<u8>)> = drop_ins
        .iter()
        .map(|(name, text)| {
            (
                Path::new("/etc/opsd/jobs.d").join(name),
                text.as_bytes().to_vec(),
            )
        })
        .collect();
    match parse_files(Path::new("/etc/opsd/jobs.toml"), main.as_bytes(), &drop_ins) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn drop_in_jobs_join_the_job_files_and_use_its_defaults_and_sinks() {
    let main = "[defaults]\ntimezone = \"Asia/Seoul\"\n\n[alerts.ops]\ntype = \"command\"\ncommand = [\"/bin/true\"]\n\n[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n";
    let web = "[jobs.b]\ntype = \"command\"\nschedule = \"@hourly\"\ncommand = \"true\"\nalert = [\"ops\"]\n";
    let cfg = parse_files(
        Path::new("/etc/opsd/jobs.toml"),
        main.as_bytes(),
        &[("/etc/opsd/jobs.d/web.toml".into(), web.as_bytes().to_vec())],
    )
    .unwrap();
    assert_eq!(cfg.jobs.len(), 2);
    assert_eq!(&*cfg.jobs["b"].file, Path::new("/etc/opsd/jobs.d/web.toml"));
    assert_eq!(&*cfg.jobs["a"].file, Path::new("/etc/opsd/jobs.toml"));
    assert_eq!(
        cfg.jobs["b"].schedule.as_ref().unwrap().timezone(),
        chrono_tz::Asia::Seoul
    );
    assert_eq!(
        cfg.files,
        [
            PathBuf::from("/etc/opsd/jobs.toml"),
            PathBuf::from("/etc/opsd/jobs.d/web.toml")
        ]
    );
}

#[test]
fn a_job_defined_in_two_files_names_both_files_and_lines() {
    let main = "\n[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n";
    let e = drop_in_errors(
        main,
        &[(
            "x.toml",
            "# again\n[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\n",
        )],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.d/x.toml:2:7: `jobs.a`: duplicate job `a`: already defined at /etc/opsd/jobs.toml:2:7"),
        "{}",
        e[0]
    );
}

#[test]
fn each_error_names_its_own_file_and_defaults_belong_in_the_job_file() {
    let main = "[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\ntimout = \"1s\"\n";
    let e = drop_in_errors(
        main,
        &[
            (
                "a.toml",
                "[defaults]\ntimezone = \"UTC\"\n[alerts.x]\ntype = \"command\"\n",
            ),
            ("b.toml", "\n\n[jobs.b]\ntype = \"comand\"\n"),
            ("c.toml", "[jobs.c\n"),
            ("d.toml", "[jobz.d]\n"),
        ],
    );
    assert_eq!(e.len(), 6, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:5:1: `jobs.a.timout`"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("/etc/opsd/jobs.d/a.toml:1:2: `defaults`: [defaults] belongs in /etc/opsd/jobs.toml only"),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with("/etc/opsd/jobs.d/a.toml:3:2: `alerts`:"),
        "{}",
        e[2]
    );
    assert!(
        e[3].starts_with("/etc/opsd/jobs.d/b.toml:4:8: `jobs.b.type`: unknown job type")
            && e[3].contains("did you mean \"command\"?"),
        "{}",
        e[3]
    );
    assert!(e[4].starts_with("/etc/opsd/jobs.d/c.toml:1:"), "{}", e[4]);
    assert!(
        e[5].starts_with("/etc/opsd/jobs.d/d.toml:1:2: `jobz`: unknown key; did you mean `jobs`?"),
        "{}",
        e[5]
    );
}

#[test]
fn env_file_must_be_absolute() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nenv_file = \"-rel.env\"\n");
    assert!(
        e[0].starts_with(
            "/etc/opsd/jobs.toml:5:12: `jobs.a.env_file`: env_file must be an absolute path"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn every_defaults_error_is_reported_with_did_you_mean() {
    let e = errors(
        "[defaults]\ntimezon = \"UTC\"\nshutdown_timeout = \"soon\"\ncontrol_grup = \"adm\"\n\
         timezone = \"Asia/Seol\"\n",
    );
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:2:1: `defaults.timezon`: unknown key")
            && e[0].contains("did you mean `timezone`?"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("/etc/opsd/jobs.toml:3:20: `defaults.shutdown_timeout`:"),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with("/etc/opsd/jobs.toml:4:1: `defaults.control_grup`: unknown key")
            && e[2].contains("did you mean `control_group`?"),
        "{}",
        e[2]
    );
    assert!(e[3].contains("did you mean \"Asia/Seoul\"?"), "{}", e[3]);
    let e = errors("defaults = 5\n");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:1:12: `defaults`: ") && e[0].contains("table"),
        "{e:?}"
    );
}

#[test]
fn a_job_file_that_is_not_toml_still_has_its_drop_ins_syntax_checked() {
    let e = drop_in_errors(
        "[jobs.a\n",
        &[("ok.toml", "[jobs.b]\n"), ("bad.toml", "\n[jobs.c\n")],
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("/etc/opsd/jobs.toml:1:"), "{}", e[0]);
    assert!(e[1].starts_with("/etc/opsd/jobs.d/bad.toml:2:"), "{}", e[1]);
}

#[test]
fn a_job_moved_unchanged_into_a_drop_in_is_equal_to_the_one_it_was() {
    let job = "[jobs.w]\ntype = \"command\"\nschedule = \"@hourly\"\ncommand = [\"/bin/true\", \"-x\"]\nenv = { A = \"1\" }\n";
    let main = Path::new("/etc/opsd/jobs.toml");
    let before = parse_files(main, job.as_bytes(), &[]).unwrap();
    // Other spans too: the job sits lower in its new file.
    let moved = format!("# moved here from jobs.toml\n\n{job}");
    let after = parse_files(
        main,
        b"",
        &[("/etc/opsd/jobs.d/w.toml".into(), moved.into_bytes())],
    )
    .unwrap();
    assert_ne!(before.jobs["w"].file, after.jobs["w"].file);
    assert_eq!(before.jobs["w"], after.jobs["w"]);
    let edited = job.replace("@hourly", "@daily");
    let edited = parse_files(main, edited.as_bytes(), &[]).unwrap();
    assert_ne!(before.jobs["w"], edited.jobs["w"]);
}

#[test]
fn env_names_are_checked_at_the_key_and_values_are_never_echoed() {
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nenv = { \"OPSD_JOB=evil\" = \"x\", \"PATH=/evil:\" = \"y\", \"BAD NAME\" = \"v\", OPSD_RUN_ID = \"r\", TOKEN = 1234567, OK = \"fine\" }\n");
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with("/etc/opsd/jobs.toml:5:9: `jobs.a.env`: \"OPSD_JOB=evil\" is not an environment variable name"),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("/etc/opsd/jobs.toml:5:32: `jobs.a.env`: \"PATH=/evil:\""),
        "{e:#?}"
    );
    assert!(
        e[2].starts_with("/etc/opsd/jobs.toml:5:53: `jobs.a.env`: \"BAD NAME\" is not an environment variable name"),
        "{e:#?}"
    );
    assert!(
        e[3].contains("`jobs.a.env`: OPSD_RUN_ID is set by opsd itself"),
        "{e:#?}"
    );
    assert!(
        e[4].contains("`jobs.a.env.TOKEN`: an env value must be a string"),
        "{e:#?}"
    );
    assert!(!e.join("\n").contains("1234567"), "{e:#?}");
    let e = errors("[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nenv = \"SECRET=hunter2\"\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("`jobs.a.env`: `env` must be a table"),
        "{e:#?}"
    );
    assert!(!e[0].contains("hunter2"), "{e:#?}");
}

#[test]
fn good_env_names_pass() {
    let cfg = parse(
        Path::new("/etc/opsd/jobs.toml"),
        "[jobs.a]\ntype = \"command\"\nschedule = \"@daily\"\ncommand = \"true\"\nenv = { _X1 = \"a\", LANG = \"C\" }\n",
    )
    .unwrap();
    let JobType::Command(spec) = &cfg.jobs["a"].job else {
        panic!("a command job")
    };
    assert_eq!(spec.env.len(), 2);
}

#[test]
fn an_unknown_type_lists_every_registered_type_and_unknown_keys_take_the_types_article() {
    let e = errors("[jobs.a]\ntype = \"sftp\"\n");
    let known: Vec<&str> = crate::jobs::REGISTRY.iter().map(|k| k.name).collect();
    assert_eq!(
        e,
        [format!(
            "/etc/opsd/jobs.toml:2:8: `jobs.a.type`: unknown job type \"sftp\" (known: {})",
            known.join(", ")
        )]
    );
    assert_eq!(known, ["command", "ec2", "geoip", "apache_log", "tls"]);
    let e = errors(
        "[jobs.a]\ntype = \"ec2\"\nschedule = \"@daily\"\naction = \"start\"\nregion = \"x\"\nbogus = 1\n",
    );
    assert!(
        e.iter()
            .any(|l| l.ends_with("`jobs.a.bogus`: unknown key for an ec2 job")),
        "{e:?}"
    );
    let e = errors("[jobs.a]\ntype = \"geoip\"\nschedule = \"@daily\"\nbogus = 1\n");
    assert!(
        e.iter()
            .any(|l| l.ends_with("`jobs.a.bogus`: unknown key for a geoip job")),
        "{e:?}"
    );
}
