//! `opsd import` over real cron files: Debian's own `/etc/crontab`, `/etc/cron.d/*`,
//! `/etc/anacrontab` and cron.daily scripts (copied pristine from their packages into
//! `tests/data/import/debian/`), the hand-converted UTC/KST lines, and crontabs with
//! `%`, MAILTO, CRON_TZ, @reboot, the day rule and lines that must be reported.
//!
//! Each output is a golden file, passes the real `opsd check`, leaves no line of its input
//! unaccounted for, and every imported job is proven to fire when cron would have: its fire
//! times over a year, printed by the real binary (`opsd check --next`, under libfaketime so
//! that both sides start at the same instant), equal those of the original line evaluated by
//! croniter, a cron implementation independent of opsd's, in its cron-faithful mode.

use crate::util::OPSD;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The corpus and its golden outputs.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/import");
/// When both sides start counting (UTC), and the year they compare.
const START: &str = "2027-01-01 00:00:30";
const END: &str = "2028-01-01 00:00:30";
/// Set to 1 to rewrite the golden files from the current output (then review the diff).
const BLESS: &str = "OPSD_IMPORT_BLESS";

/// One `opsd import` run over part of the corpus.
struct Case {
    /// The golden files' name.
    name: &'static str,
    /// The arguments after `opsd import`, run in [`DATA`].
    args: &'static [&'static str],
    /// The input files whose every line must be accounted for (directories: their files).
    inputs: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "debian-cron-d",
        args: &[
            "cron-d",
            "debian/etc/crontab",
            "debian/etc/cron.d",
            "--zone",
            "UTC",
        ],
        inputs: &["debian/etc/crontab", "debian/etc/cron.d"],
    },
    Case {
        name: "debian-anacron",
        args: &[
            "anacron",
            "debian/etc/anacrontab",
            "--root",
            "debian",
            "--zone",
            "UTC",
        ],
        inputs: &["debian/etc/anacrontab"],
    },
    Case {
        name: "seed-rezone",
        args: &[
            "crontab",
            "seed.crontab",
            "--zone",
            "UTC",
            "--rezone",
            "Asia/Seoul",
        ],
        inputs: &["seed.crontab"],
    },
    Case {
        name: "features",
        args: &[
            "crontab",
            "features.crontab",
            "--user",
            "nobody",
            "--zone",
            "UTC",
        ],
        inputs: &["features.crontab"],
    },
    Case {
        name: "local-cron-d",
        args: &["cron-d", "cron.d", "--zone", "UTC"],
        inputs: &["cron.d"],
    },
    Case {
        name: "local-anacron",
        args: &["anacron", "anacrontab", "--root", "debian", "--zone", "UTC"],
        inputs: &["anacrontab"],
    },
];

/// What one import printed.
struct Output {
    toml: String,
    stderr: String,
    code: Option<i32>,
}

fn import(case: &Case) -> Output {
    let out = Command::new(OPSD)
        .arg("import")
        .args(case.args)
        .current_dir(DATA)
        .stdin(Stdio::null())
        .output()
        .expect("run opsd import");
    Output {
        toml: String::from_utf8(out.stdout).expect("UTF-8 TOML"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 report"),
        code: out.status.code(),
    }
}

/// Compares `actual` with the golden file `name` (or rewrites it when blessing).
fn golden(name: &str, actual: &str) {
    let path = Path::new(DATA).join("golden").join(name);
    if std::env::var_os(BLESS).is_some() {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("golden dir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with {BLESS}=1 to write it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (with {BLESS}=1 the test rewrites it; review the diff)",
        path.display()
    );
}

#[test]
fn outputs_match_their_golden_files() {
    for case in CASES {
        let out = import(case);
        golden(&format!("{}.toml", case.name), &out.toml);
        golden(&format!("{}.stderr", case.name), &out.stderr);
        let unmapped = out.stderr.contains(": not mapped: ");
        assert_eq!(
            out.code,
            Some(i32::from(unmapped)),
            "{}: exit 0 only when every line was mapped",
            case.name
        );
    }
}

#[test]
fn every_output_passes_opsd_check() {
    for case in CASES {
        let out = import(case);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("imported.toml");
        std::fs::write(&file, &out.toml).expect("write the import");
        let check = Command::new(OPSD)
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .expect("run opsd check");
        assert!(
            check.status.success(),
            "{}: opsd check refused the import:\n{}{}",
            case.name,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

/// The files of an input (a file, or a directory's files), as named relative to [`DATA`].
fn input_files(input: &str) -> Vec<String> {
    let path = Path::new(DATA).join(input);
    if !path.is_dir() {
        return vec![input.to_string()];
    }
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .expect("list an input directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .map(|n| format!("{input}/{n}"))
        .collect();
    names.sort();
    names
}

/// True when `text` names `place` (`file:line` not followed by another digit, or `file:`).
fn names(text: &str, place: &str) -> bool {
    text.match_indices(place)
        .any(|(i, _)| !text[i + place.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn every_line_is_mapped_or_reported_and_the_figure_is_printed() {
    let (mut lines, mut mapped, mut reported, mut jobs) = (0, 0, 0, 0);
    for case in CASES {
        let out = import(case);
        jobs += out.toml.matches("\n[jobs.").count();
        let told = format!("{}\n{}", out.toml, out.stderr);
        for file in case.inputs.iter().flat_map(|i| input_files(i)) {
            if names(&out.stderr, &format!("{file}: not mapped")) {
                reported += 1;
                lines += 1;
                continue;
            }
            let text = std::fs::read_to_string(Path::new(DATA).join(&file)).expect("an input");
            for (i, line) in text.lines().enumerate() {
                let t = line.trim_start();
                let variable = t
                    .split_once('=')
                    .is_some_and(|(n, _)| !n.trim().is_empty() && !n.trim().contains(' '));
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let place = format!("{file}:{}", i + 1);
                let is_reported = names(&out.stderr, &format!("{place}: not mapped"));
                if variable && !is_reported {
                    continue;
                }
                lines += 1;
                if is_reported {
                    reported += 1;
                } else {
                    assert!(
                        names(&told, &place),
                        "{}: {place} was dropped silently: {line}",
                        case.name
                    );
                    mapped += 1;
                }
            }
        }
    }
    assert_eq!(lines, mapped + reported);
    println!(
        "import corpus: {lines} lines and whole files: {mapped} mapped ({jobs} jobs), {reported} reported with a reason"
    );
}

/// One imported job as the output says it: its block of TOML and where it came from.
struct ImportedJob {
    name: String,
    block: String,
    file: String,
    line: usize,
    rezoned: bool,
}

/// The jobs of an output, each with its own block (comments and table).
fn jobs_of(toml: &str) -> Vec<ImportedJob> {
    let mut jobs = Vec::new();
    for block in toml.split("\n\n") {
        let Some(table) = block.lines().find(|l| l.starts_with("[jobs.")) else {
            continue;
        };
        let name = table
            .trim_start_matches("[jobs.")
            .trim_end_matches(']')
            .trim_matches('"')
            .to_string();
        let source = block
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .find_map(|l| {
                let (place, _) = l.split_once(": ")?;
                let (file, line) = place.rsplit_once(':')?;
                Some((file.to_string(), line.parse().ok()?))
            })
            .unwrap_or_else(|| panic!("job {name} has no source comment"));
        jobs.push(ImportedJob {
            name,
            block: block.to_string(),
            file: source.0,
            line: source.1,
            rezoned: block.contains("\n# rezoned: "),
        });
    }
    jobs
}

/// The Python that has croniter: `$CRONITER_PYTHON`, else `.ci/venv`'s (which `.ci/setup` fills).
fn croniter_python() -> PathBuf {
    let python = std::env::var_os("CRONITER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python3"));
    let ok = Command::new(&python)
        .args(["-c", "import croniter"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "croniter is missing for {}: run .ci/setup, or `.ci/venv/bin/pip install 'croniter>=6,<8'` \
         (or point CRONITER_PYTHON at a python3 that has it)",
        python.display()
    );
    python
}

/// The fire times of the original cron lines by croniter, in UTC, keyed by job.
fn croniter_fires(lines: &[(String, String, String)]) -> BTreeMap<String, Vec<String>> {
    let query = serde_json::json!({
        "start": START,
        "end": END,
        "lines": lines.iter().map(|(id, expr, zone)| serde_json::json!({
            "id": id, "expr": expr, "zone": zone
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new(croniter_python())
        .arg(Path::new(DATA).join("cron_fires.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    serde_json::to_writer(child.stdin.take().expect("stdin"), &query).expect("write the query");
    let out = child.wait_with_output().expect("python's answer");
    assert!(out.status.success(), "cron_fires.py failed");
    serde_json::from_slice(&out.stdout).expect("JSON fire times")
}

/// The fire times `opsd check --next N` prints for the one job of `toml`, in UTC, with the
/// clock at [`START`].
fn opsd_fires(toml: &str, n: usize) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("job.toml");
    std::fs::write(&file, toml).expect("write the job");
    let out = Command::new("faketime")
        .args([
            "-f",
            &format!("@{START}"),
            OPSD,
            "check",
            "--next",
            &n.to_string(),
            "--config",
        ])
        .arg(&file)
        .output()
        .expect("faketime is missing: apt-get install faketime (.ci/setup)");
    assert!(
        out.status.success(),
        "opsd check: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| l.trim_end().strip_suffix(" UTC)"))
        .filter_map(|l| l.rsplit_once('(').map(|(_, t)| t.to_string()))
        .collect()
}

/// The time fields (or `@nickname`) of a crontab line, without its user and command.
fn cron_fields(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words[0].starts_with('@') {
        words[0].to_string()
    } else {
        words[..5].join(" ")
    }
}

#[test]
fn imported_jobs_fire_when_cron_did_per_croniter() {
    let mut jobs = Vec::new();
    let mut lines = Vec::new();
    for case in CASES {
        for job in jobs_of(&import(case).toml) {
            // anacron periods are not cron lines; their schedules are documented choices.
            if job.file.ends_with("anacrontab") {
                continue;
            }
            let spec: toml::Table = job.block.parse().expect("a job's block is TOML");
            let table = &spec["jobs"][&job.name];
            if table["schedule"].as_str() == Some("@start") {
                continue;
            }
            let zone = if job.rezoned {
                "UTC".to_string()
            } else {
                table["timezone"].as_str().expect("a timezone").to_string()
            };
            let text = std::fs::read_to_string(Path::new(DATA).join(&job.file)).expect("source");
            let line = text.lines().nth(job.line - 1).expect("the source line");
            let id = format!("{}/{}", case.name, job.name);
            lines.push((id.clone(), cron_fields(line), zone));
            jobs.push((id, job.block));
        }
    }
    let expected = croniter_fires(&lines);
    for (id, block) in &jobs {
        let want = &expected[id];
        let got = opsd_fires(block, want.len() + 1);
        assert!(
            got.len() == want.len() + 1 || got.len() == want.len(),
            "{id}: {} fires",
            got.len()
        );
        assert_eq!(
            &got[..want.len()],
            &want[..],
            "{id}: fire times differ from cron's"
        );
        if let Some(after) = got.get(want.len()) {
            assert!(
                after.as_str() >= END,
                "{id}: opsd fires once more within the year, at {after}"
            );
        }
    }
    assert!(jobs.len() >= 30, "only {} jobs compared", jobs.len());
    println!(
        "{} imported jobs fire as croniter says their lines do over a year",
        jobs.len()
    );
}

#[test]
fn check_reads_stdin_and_reports_without_writing_the_drop_in() {
    let crontab = std::fs::read(Path::new(DATA).join("seed.crontab")).expect("seed.crontab");
    let mut child = Command::new(OPSD)
        .args([
            "import",
            "crontab",
            "-",
            "--check",
            "--zone",
            "UTC",
            "--rezone",
            "Asia/Seoul",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run opsd import");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &crontab).expect("write");
    let out = child.wait_with_output().expect("opsd import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("[jobs."), "{stdout}");
    for line in [
        "stdin:5: mapped to job aws-start-instance: \"50 8 * * 1-5\" in Asia/Seoul",
        "stdin:7: mapped to job aws-stop-instance: \"30 18 * * *\" in Asia/Seoul",
        "stdin:11: mapped to job report: \"0 9,20 * * 1\" in UTC",
        "stdin:11: note: kept in UTC, not rezoned: some of its times move to another day and \
         some do not; in Asia/Seoul that is 05:00, 18:00 KST",
        "5 mapped, 0 not mapped",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in:\n{stdout}"
        );
    }
}

#[test]
fn an_imported_job_gets_the_variables_and_the_standard_input_cron_gave_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("out.txt");
    let crontab = format!(
        "GREETING = \"hello there\"\nSHELL=/bin/bash\n\
         0 6 * * * {{ cat; echo \"$GREETING from $0\"; }} > {}%line one%50\\% done\n",
        out_file.display()
    );
    let mut child = Command::new(OPSD)
        .args(["import", "crontab", "-", "--zone", "UTC"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run opsd import");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), crontab.as_bytes())
        .expect("write the crontab");
    let import = child.wait_with_output().expect("opsd import");
    assert!(import.status.success());
    let jobs = dir.path().join("jobs.toml");
    std::fs::write(&jobs, &import.stdout).expect("write the import");
    let run = Command::new(OPSD)
        .args(["run-job", "cat", "--log-format", "text", "--config"])
        .arg(&jobs)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run opsd run-job");
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&import.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let got = std::fs::read_to_string(&out_file).expect("the job wrote its input");
    assert_eq!(got, "line one\n50% done\nhello there from /bin/bash\n");
}
