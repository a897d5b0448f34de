//! A seeded mutation test of the job-file reader: hostile files (byte flips, insertions,
//! deletions, duplicated lines, huge values and numbers, invalid UTF-8) made from the example
//! `config/jobs.toml` and a few configurations of every job and sink type. Whatever the input,
//! reading it must not panic, must locate invalid UTF-8, and must keep every error line short.
//! A failure names the seed, which regenerates its input with [`case`].

use super::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Cases run by [`mutated_job_files_never_panic`].
const CASES: u64 = 10_000;
/// The longest error line accepted: a value cut to its readable start, a key, a message.
const MAX_LINE: usize = 600;

/// Valid files to mutate: the shipped example and one of each job and sink type.
const SEEDS: &[&str] = &[
    include_str!("../../config/jobs.toml"),
    r#"
[defaults]
timezone = "Asia/Seoul"
shutdown_timeout = "20s"

[alerts.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[jobs.push-messages]
type = "command"
schedule = "@every 5s"
command = ["/usr/local/bin/send-push", "--batch"]
timeout = "4s"
overlap = "queue"
jitter = "2s"
catch_up = "once"
exclude_dates = ["2026-12-25"]
alert = ["ops"]
env = { LANG = "C" }

[jobs.nightly-report]
type = "command"
schedule = "0 30 2 * * *"
timezone = "America/New_York"
command = "pg_dump app | gzip > /var/backups/app.sql.gz"
working_dir = "/tmp"
"#,
    r#"
[jobs.office-start]
type = "ec2"
schedule = "0 0 9 * * MON-FRI"
action = "start"
region = "ap-northeast-2"
tags = { Schedule = "office-hours" }
instance_ids = ["i-0123456789abcdef0"]
max_instances = 10

[jobs.geoip-weekly]
type = "geoip"
schedule = "@weekly"
account_id = 123456
license_key_file = "/etc/opsd/maxmind.key"
editions = ["GeoLite2-Country-CSV"]
output_dir = "/usr/share/GeoIP"
"#,
    r#"
[alerts.pager]
type = "command"
command = ["/usr/local/bin/page", "--now"]

[jobs.apache]
type = "apache_log"
paths = ["/var/log/apache2/*error.log"]
from_beginning = true
disable_rules = ["php_fatal"]
alert = ["pager"]
poll_interval = "500ms"

[[jobs.apache.rules]]
id = "vhost_down"
regex = 'proxy: error reading from (\S+)'
severity = "high"
count = 3
window = "5m"
cooldown = "10m"
dedup = "$1"
summary = "a backend stopped answering"
"#,
];

/// Bytes worth inserting: TOML's punctuation, quotes, escapes, newlines, and bytes that are not
/// UTF-8 on their own.
const INTERESTING: &[u8] = b"[]{}=\"'.,#\\\n\r\t 0-:+eE_x\xff\xfe\xc3\xe2\x80\xbf\x00";

/// The hostile file of case `seed`.
fn case(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = SEEDS[rng.usize(..SEEDS.len())].as_bytes().to_vec();
    for _ in 0..rng.usize(1..=4) {
        mutate(&mut rng, &mut bytes);
    }
    bytes
}

/// Applies one random mutation to `bytes`.
fn mutate(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
    let at = rng.usize(..=bytes.len());
    match rng.u8(..100) {
        0..=19 => {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << rng.u8(..8);
            }
        }
        20..=39 => {
            let n = rng.usize(1..=3);
            let insert: Vec<u8> = (0..n)
                .map(|_| INTERESTING[rng.usize(..INTERESTING.len())])
                .collect();
            bytes.splice(at..at, insert);
        }
        40..=54 => {
            let end = (at + rng.usize(1..=16)).min(bytes.len());
            bytes.drain(at..end);
        }
        55..=69 => {
            let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
            let i = rng.usize(..lines.len());
            let j = rng.usize(..lines.len());
            let mut out = Vec::with_capacity(bytes.len() + lines[i].len());
            for (k, line) in lines.iter().enumerate() {
                out.extend_from_slice(line);
                if k == j {
                    out.extend_from_slice(lines[i]);
                }
            }
            *bytes = out;
        }
        70..=79 => replace_number(rng, bytes),
        80..=87 => {
            // Invalid UTF-8: a lone continuation byte, a cut sequence, or an overlong form.
            let bad: &[u8] = match rng.u8(..3) {
                0 => b"\x80",
                1 => b"\xe2\x82",
                _ => b"\xc0\xaf",
            };
            bytes.splice(at..at, bad.iter().copied());
        }
        88..=93 => hostile_schedule(rng, bytes),
        _ if rng.u16(..100) == 0 => huge_value(rng, bytes, 300_000),
        _ => huge_value(rng, bytes, 2_000),
    }
}

/// Replaces a run of digits with a number at the edges of the integer types.
fn replace_number(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
    let digits: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit())
        .collect();
    let Some(&start) = digits.get(rng.usize(..digits.len().max(1))) else {
        return;
    };
    let end = (start..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit())
        .unwrap_or(bytes.len());
    let huge = match rng.u8(..6) {
        0 => "9223372036854775807".to_string(),
        1 => "18446744073709551616".to_string(),
        2 => "2305843009213693952".to_string(),
        3 => "0".to_string(),
        4 => "99999999999999999999999999999999".to_string(),
        _ => rng.u64(..).to_string(),
    };
    bytes.splice(start..end, huge.into_bytes());
}

/// Schedules at the edges of what can be scheduled: huge and tiny intervals, impossible dates.
const SCHEDULES: &[&str] = &[
    "@every 2305843009213693952s",
    "@every 999999999999h",
    "@every 9223372036854775s",
    "@every 18446744073709551615ms",
    "@every 0s",
    "@every 1ns",
    "@every 500ms",
    "@every 584942417355y",
    "0 0 0 30 2 *",
    "0 0 0 31 4 * 2099",
    "59 59 23 31 12 *",
    "* * * * * * *",
    "0 0 0 L * *",
    "0 0 0 ? * 5#5",
    "0 0 0 29 2 MON",
    "*/0 * * * * *",
    "0 0 0 1 1 * 1970",
    "0 0 0 1 1 * 9999",
    "@start",
    "@yearly",
];

/// Replaces the value of a `schedule` key with one of [`SCHEDULES`].
fn hostile_schedule(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
    let key = b"schedule = \"";
    let starts: Vec<usize> = bytes
        .windows(key.len())
        .enumerate()
        .filter(|(_, w)| *w == key)
        .map(|(i, _)| i + key.len())
        .collect();
    let Some(&start) = starts.get(rng.usize(..starts.len().max(1))) else {
        return;
    };
    let end = (start..bytes.len())
        .find(|&i| bytes[i] == b'"')
        .unwrap_or(bytes.len());
    let schedule = SCHEDULES[rng.usize(..SCHEDULES.len())];
    bytes.splice(start..end, schedule.bytes());
}

/// Replaces the contents of a quoted string (or, failing one, the end of the file) with a
/// value of about `size` bytes.
fn huge_value(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, size: usize) {
    let quotes: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'"').collect();
    let unit: &[u8] = match rng.u8(..4) {
        0 => b"a",
        1 => b"Asia/Seou",
        2 => b"\xc3\xa9",
        _ => b"1s ",
    };
    let value = unit.repeat(size / unit.len());
    match quotes.get(rng.usize(..quotes.len().max(1))) {
        Some(&q) => {
            let end = (q + 1..bytes.len())
                .find(|&i| bytes[i] == b'"' || bytes[i] == b'\n')
                .unwrap_or(bytes.len());
            bytes.splice(q + 1..end, value);
        }
        None => bytes.extend_from_slice(&value),
    }
}

/// Reads `bytes` as a job file, checking what every outcome must hold; `Err` says what did not.
fn check(bytes: &[u8]) -> Result<(), String> {
    let path = Path::new("/etc/opsd/jobs.toml");
    let outcome = catch_unwind(AssertUnwindSafe(|| parse_bytes(path, bytes)))
        .map_err(|p| format!("panicked: {}", panic_message(&p)))?;
    let e = match outcome {
        Ok(config) => {
            return catch_unwind(|| next_runs(&config))
                .map_err(|p| format!("panicked on a valid file: {}", panic_message(&p)))
        }
        Err(e) => e,
    };
    let text = e.to_string();
    if let Some(line) = text.lines().find(|l| l.chars().count() > MAX_LINE) {
        return Err(format!(
            "an error line of {} characters: {}",
            line.chars().count(),
            shown(line)
        ));
    }
    if e.located().is_empty() {
        return Err(format!("an error without a location: {}", shown(&text)));
    }
    if let Err(bad) = std::str::from_utf8(bytes) {
        let valid = &bytes[..bad.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let first = &e.located()[0];
        if first.line != line || !first.message.contains("UTF-8") {
            return Err(format!(
                "invalid UTF-8 on line {line} reported as: {}",
                shown(&first.to_string())
            ));
        }
    }
    Ok(())
}

/// What `opsd check` and the scheduler ask of each schedule of a valid file.
fn next_runs(config: &Config) {
    let now = chrono::Utc::now();
    for job in config.jobs.values() {
        if let Some(s) = &job.schedule {
            let mut t = now;
            for _ in 0..3 {
                match s.next_after(t) {
                    Some(n) => t = n,
                    None => break,
                }
            }
            s.missed_between(now - chrono::Duration::days(400), now);
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".to_string())
}

#[test]
fn mutated_job_files_never_panic() {
    let mut failures = Vec::new();
    for seed in 0..CASES {
        let bytes = case(seed);
        if let Err(why) = check(&bytes) {
            failures.push(format!(
                "seed {seed}: {why}\n--- input ({} bytes) ---\n{}\n---",
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(4_000)])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {CASES} mutated job files failed (regenerate one with `case(seed)`):\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        parse(Path::new("jobs.toml"), seed).expect("a seed file is valid");
    }
}
