//! The scheduler's contract as a whole, where its parts' own tests (admission in
//! `job_state.rs`, the reload diff in `reload.rs`, restart waits in `backoff.rs`, the jitter's
//! bounds in `runner.rs`) leave off: the overlap policies and jitter applied to real runs,
//! what a reload does to timers and runs, `@start` runs, and how a continuous job is
//! restarted. Scheduler tests run real `command` jobs on a real runtime; they wait on
//! conditions (what `opsd status` would show) and say what they saw when a deadline passes.

use super::*;
use crate::alert::Dispatcher;
use crate::config::Config;
use crate::jobs::Outcome;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long a scheduler test waits for what it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A scheduler over `jobs` (the body of a `jobs.toml`), its state in a fresh directory.
struct Fixture {
    dir: tempfile::TempDir,
    sched: Scheduler,
}

impl Fixture {
    fn start(jobs: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Fixture {
            sched: Fixture::start_in(&dir, jobs),
            dir,
        }
    }

    /// A scheduler over `jobs` with its state in `dir/state`.
    fn start_in(dir: &tempfile::TempDir, jobs: &str) -> Scheduler {
        let config = parse(dir.path(), jobs);
        let alerts = Dispatcher::new(&config.alerts, crate::alert::DispatcherOptions::default())
            .expect("no alert sinks");
        Scheduler::start(
            config,
            dir.path().join("state"),
            alerts,
            std::sync::Arc::new(super::NoRecorder),
        )
        .expect("the alarm thread starts")
    }

    fn reload(&mut self, jobs: &str) -> ReloadSummary {
        let config = parse(self.dir.path(), jobs);
        self.sched.reload(config).expect("the reload is accepted")
    }

    /// Triggers `job` and waits for its reply.
    async fn run(&self, job: &str) -> TriggerReply {
        let rx = self.sched.trigger(job).expect("the job exists");
        tokio::time::timeout(PATIENCE, rx)
            .await
            .unwrap_or_else(|_| panic!("{job}: no reply within {PATIENCE:?}"))
            .expect("a reply")
    }

    /// Triggers `job`, waits for the run, and returns it.
    async fn ran(&self, job: &str) -> LastRun {
        match self.run(job).await {
            TriggerReply::Ran(last) => last,
            other => panic!("{job}: expected a run, got {other:?}"),
        }
    }

    /// `opsd status` for one job.
    fn status(&self, job: &str) -> JobStatus {
        let all = self.sched.status();
        all.iter()
            .find(|s| s.name == job)
            .cloned()
            .unwrap_or_else(|| panic!("no job {job} in {all:?}"))
    }

    /// Waits until `job`'s status satisfies `done`, failing with the last status seen.
    async fn wait_for(&self, job: &str, what: &str, done: impl Fn(&JobStatus) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = self.status(job);
            if done(&status) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{job}: {what} did not happen within {PATIENCE:?}; last status: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn parse(dir: &Path, jobs: &str) -> Config {
    crate::config::parse(&dir.join("jobs.toml"), jobs)
        .unwrap_or_else(|e| panic!("the test's job file is valid: {e}\n{jobs}"))
}

/// A `command` job that never fires on its own in a test's life (it runs when triggered).
fn job(name: &str, command: &str, extra: &str) -> String {
    format!(
        "[jobs.{name}]\ntype = \"command\"\nschedule = \"@yearly\"\ncommand = {command:?}\n{extra}\n"
    )
}

/// A shell line that notes a start in `log`, then waits until the file `gate` exists.
fn gated(log: &str, gate: &str) -> String {
    format!("echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.01; done")
}

fn lines(path: &str) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[tokio::test]
async fn a_scrape_is_given_the_jobs_names_again_only_after_the_set_of_jobs_changed() {
    let both = format!("{}{}", job("a", "true", ""), job("b", "true", ""));
    let mut f = Fixture::start(&both);
    let names = |c: &Changes| -> Option<Vec<String>> {
        Some(c.jobs.as_ref()?.iter().map(|j| j.name.clone()).collect())
    };
    let first = f.sched.changes_since(0);
    assert_eq!(names(&first), Some(vec!["a".into(), "b".into()]));
    let quiet = f.sched.changes_since(first.generation);
    assert_eq!(quiet.jobs, None, "the same jobs are not named again");
    f.reload(&both);
    let unchanged = f.sched.changes_since(quiet.generation);
    assert_eq!(unchanged.jobs, None, "a reload that changed nothing");
    // A reload that only removes a job changes no job's state, but the set.
    f.reload(&job("a", "true", ""));
    let after = f.sched.changes_since(unchanged.generation);
    assert_eq!(names(&after), Some(vec!["a".into()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_jobs_replaces_changed_ones_adds_and_removes() {
    let jobs = |changed: &str, extra: &str| {
        format!(
            "{}{}{extra}",
            job("same", "echo same", ""),
            job("edited", changed, "")
        )
    };
    let mut f = Fixture::start(&jobs("echo before", &job("gone", "true", "")));
    let same = f.ran("same").await;
    let edited = f.ran("edited").await;
    assert_eq!(edited.output, ["before"]);

    let summary = f.reload(&jobs("echo after", &job("new", "true", "")));
    assert_eq!(
        summary,
        ReloadSummary {
            added: vec!["new".into()],
            changed: vec!["edited".into()],
            removed: vec!["gone".into()],
            unchanged: 1,
        }
    );
    let names: Vec<String> = f.sched.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["edited", "new", "same"]);
    // Kept jobs keep what they remember; a new one starts with nothing.
    assert_eq!(f.status("same").last, Some(same));
    assert_eq!(f.status("edited").last, Some(edited));
    assert_eq!(f.status("new").last, None);
    // The changed job runs its new definition; the removed one is gone.
    assert_eq!(f.ran("edited").await.output, ["after"]);
    let err = f.sched.trigger("gone").expect_err("a removed job");
    assert!(err.contains("no job named \"gone\""), "{err}");

    let again = f.reload(&jobs("echo after", &job("new", "true", "")));
    assert_eq!(
        again,
        ReloadSummary {
            unchanged: 3,
            ..ReloadSummary::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_going_when_its_job_is_removed_or_changed_finishes_undisturbed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, gate) = (dir.path().join("log"), dir.path().join("gate"));
    let (log, gate) = (log.display().to_string(), gate.display().to_string());
    let slow = gated(&log, &gate);
    let mut f = Fixture::start(&format!(
        "{}{}",
        job("removed", &slow, ""),
        job("changed", &slow, "")
    ));
    let removed = f.sched.trigger("removed").unwrap();
    let changed = f.sched.trigger("changed").unwrap();
    f.wait_for("removed", "the run starting", |s| s.running == 1)
        .await;
    f.wait_for("changed", "the run starting", |s| s.running == 1)
        .await;
    f.reload(&job("changed", &slow, "timeout = \"1h\""));
    std::fs::write(&gate, "").unwrap();
    for (name, rx) in [("removed", removed), ("changed", changed)] {
        match tokio::time::timeout(PATIENCE, rx).await {
            Ok(Ok(TriggerReply::Ran(last))) => {
                assert_eq!(last.outcome, Outcome::Success, "{name}: {last:?}")
            }
            other => panic!("{name}: expected the run to finish, got {other:?}"),
        }
    }
    assert_eq!(lines(&log), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_one_waiting_run_after_the_running_one_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (log, gate) = (dir.path().join("log"), dir.path().join("gate"));
    let (log, gate) = (log.display().to_string(), gate.display().to_string());
    let f = Fixture::start(&job("q", &gated(&log, &gate), "overlap = \"queue\""));
    let first = f.sched.trigger("q").unwrap();
    f.wait_for("q", "the first run starting", |s| s.running == 1)
        .await;
    assert_eq!(
        f.run("q").await,
        TriggerReply::NotStarted("queued behind the running instance".into())
    );
    assert_eq!(
        f.run("q").await,
        TriggerReply::NotStarted("skipped: the previous run is still going".into())
    );
    std::fs::write(&gate, "").unwrap();
    let first = match tokio::time::timeout(PATIENCE, first).await {
        Ok(Ok(TriggerReply::Ran(last))) => last,
        other => panic!("expected the first run to finish, got {other:?}"),
    };
    f.wait_for("q", "the queued run finishing", |s| {
        s.running == 0 && s.last.as_ref().is_some_and(|l| l.run_id != first.run_id)
    })
    .await;
    assert_eq!(lines(&log), 2, "the first run and the queued one, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_runs_a_second_instance_beside_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (log, gate) = (dir.path().join("log"), dir.path().join("gate"));
    let (log, gate) = (log.display().to_string(), gate.display().to_string());
    let f = Fixture::start(&job("a", &gated(&log, &gate), "overlap = \"allow\""));
    let runs = [f.sched.trigger("a").unwrap(), f.sched.trigger("a").unwrap()];
    f.wait_for("a", "two runs going at once", |s| s.running == 2)
        .await;
    std::fs::write(&gate, "").unwrap();
    for rx in runs {
        match tokio::time::timeout(PATIENCE, rx).await {
            Ok(Ok(TriggerReply::Ran(last))) => assert_eq!(last.outcome, Outcome::Success),
            other => panic!("expected both runs to finish, got {other:?}"),
        }
    }
    assert_eq!(lines(&log), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggered_run_starts_at_once_whatever_the_jitter() {
    let f = Fixture::start(&job("j", "true", "jitter = \"1h\""));
    let last = f.ran("j").await;
    assert_eq!(last.outcome, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_start_at_a_random_point_within_the_jitter() {
    // Every second on the second; each run starts at a random point of the 600 ms after it.
    let jitter_ms = 600;
    let f = Fixture::start(&format!(
        "[jobs.j]\ntype = \"command\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\njitter = \"{jitter_ms}ms\"\n"
    ));
    let mut late_ms: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while late_ms.len() < 4 {
        if let Some(last) = f.status("j").last {
            late_ms
                .entry(last.run_id)
                .or_insert(last.started.timestamp_subsec_millis());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "four scheduled runs did not finish within {PATIENCE:?}; ms after their second: {late_ms:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // How far into the jitter a run may start is `jitter_delay`'s contract (runner.rs's
    // tests); a wall-clock upper bound here would only measure how loaded the machine is.
    // Without jitter a run starts within a few ms of its second; four such starts are all but
    // impossible with 600 ms of jitter (a chance of about 1 in 10^6).
    assert!(
        late_ms.values().any(|&ms| ms >= 20),
        "no run was delayed by its jitter: {late_ms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_without_a_newline_is_kept_and_logged() {
    let f = Fixture::start(&job("p", "printf 'one\\ntwo'", ""));
    assert_eq!(f.ran("p").await.output, ["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_waiting_out_its_jitter_at_shutdown_never_starts() {
    let f = Fixture::start(
        "[jobs.j]\ntype = \"command\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\njitter = \"1h\"\n",
    );
    f.wait_for("j", "a scheduled run waiting out its jitter", |s| {
        s.running == 1
    })
    .await;
    let state = f.sched.jobs["j"].handle.state.clone();
    // No grace: the waiting run is stopped at once.
    tokio::time::timeout(PATIENCE, f.sched.shutdown(Duration::ZERO))
        .await
        .expect("shutdown ends");
    assert_eq!(state.last(), None, "a run started during shutdown");
}

/// An `apache_log` job (continuous) following `log`, with `extra` keys.
fn watch_job(name: &str, log: &str, extra: &str) -> String {
    format!(
        "[jobs.{name}]\ntype = \"apache_log\"\npaths = [{log:?}]\napache_bin = \"/bin/false\"\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_a_changed_continuous_job_and_stops_a_removed_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log").display().to_string();
    std::fs::write(&log, "").unwrap();
    let mut f = Fixture::start(&watch_job("web", &log, ""));
    f.wait_for("web", "the watch starting", |s| s.running == 1)
        .await;
    assert_eq!(f.status("web").last, None);

    let changed = f.reload(&watch_job("web", &log, "disable_rules = [\"php_fatal\"]"));
    assert_eq!(changed.changed, ["web"]);
    // The old watch is stopped (its run ends) and the new one takes its place.
    f.wait_for("web", "the old watch ending and a new one running", |s| {
        s.running == 1 && s.last.is_some()
    })
    .await;
    let ended = f.status("web").last.unwrap();
    assert_eq!(ended.outcome, Outcome::Success, "{ended:?}");

    let state = f.sched.jobs["web"].handle.state.clone();
    let removed = f.reload("");
    assert_eq!(removed.removed, ["web"]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while state.running() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed watch still runs after {PATIENCE:?}: last run {:?}",
            state.last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(state.last().map(|l| l.run_id), Some(ended.run_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_job_that_ends_on_its_own_is_started_again_after_a_growing_wait() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log").display().to_string();
    std::fs::write(&log, "").unwrap();
    // A checkpoint that can be neither read nor moved aside (its directory is a file): every
    // watch fails as it starts.
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/apache"), "").unwrap();
    let f = Fixture {
        sched: Fixture::start_in(&dir, &watch_job("web", &log, "")),
        dir,
    };
    let mut runs: Vec<LastRun> = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while runs.len() < 3 {
        if let Some(last) = f.status("web").last {
            if runs.last().is_none_or(|r| r.run_id != last.run_id) {
                runs.push(last);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "three failed watches were not seen within {PATIENCE:?}: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        runs.iter().all(|r| r.outcome == Outcome::Failed),
        "{runs:?}"
    );
    let gaps: Vec<i64> = runs
        .windows(2)
        .map(|w| (w[1].started - w[0].started).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 1000 && gaps[1] >= 2000,
        "restarts came sooner than 1 s, then 2 s: {gaps:?} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_type_changes_starts_over_with_nothing_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log").display().to_string();
    std::fs::write(&log, "").unwrap();
    let mut f = Fixture::start(&job("x", "true", ""));
    f.ran("x").await;
    let summary = f.reload(&watch_job("x", &log, ""));
    assert_eq!(summary.changed, ["x"]);
    f.wait_for("x", "the watch starting", |s| s.running == 1)
        .await;
    let status = f.status("x");
    assert_eq!(status.job_type, "apache_log");
    assert_eq!(
        status.last, None,
        "the command's last run was kept: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_start_job_runs_at_start_and_when_a_reload_adds_it_but_not_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str| dir.path().join(name).display().to_string();
    let at_start = |name: &str, extra: &str| {
        let command = format!("echo run >> {}", log(name));
        format!("[jobs.{name}]\ntype = \"command\"\nschedule = \"@start\"\ncommand = {command:?}\n{extra}\n")
    };
    let mut f = Fixture::start(&at_start("first", ""));
    f.wait_for("first", "the run at start", |s| s.last.is_some())
        .await;

    let jobs = [at_start("first", "timeout = \"1h\""), at_start("added", "")].concat();
    let summary = f.reload(&jobs);
    assert_eq!(
        (summary.changed, summary.added),
        (vec!["first".into()], vec!["added".into()])
    );
    // A run that starts is counted before `fire` returns: none was started for the change.
    assert_eq!(
        f.status("first").running,
        0,
        "the changed @start job ran again"
    );
    f.wait_for("added", "the run of the job the reload added", |s| {
        s.last.is_some()
    })
    .await;

    let summary = f.reload(&[jobs, at_start("off", "enabled = false")].concat());
    assert_eq!((summary.added, summary.unchanged), (vec!["off".into()], 2));
    for name in ["first", "added", "off"] {
        assert_eq!(f.status(name).running, 0, "{name} ran again");
    }
    assert_eq!(lines(&log("first")), 1);
    assert_eq!(lines(&log("added")), 1);
    assert_eq!(lines(&log("off")), 0, "a disabled job ran");
}
