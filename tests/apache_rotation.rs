//! Following a real Apache's error log across rotations and watcher restarts: every line is
//! seen exactly once. Lines come from requests for `/missing-N` (AH00128 at `LogLevel info`);
//! a counting rule turns each into an event keyed by `N`. The fault tests (a consumer that
//! falls behind, rotations faster than the polls, a checkpoint that cannot be saved or is
//! corrupt, copytruncate while stopped) write the same lines to real files themselves, at
//! rates and times Apache cannot be made to keep.

use crate::util::apache::{counting_rule, rotate_copytruncate, rotate_create, Apache};
use opsd::apache::rules::LogEvent;
use opsd::apache::watch::acks::Acks;
use opsd::apache::watch::{
    watch_reporting, WatchConfig, WatchError, WatchStats, Watcher, RETIRE_QUIET,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{block_in_place, JoinHandle};
use tokio_util::sync::CancellationToken;

/// The events of a watch, each acknowledged as it is received (the tests' consumer has
/// finished with an event once it has counted it).
struct Events {
    rx: mpsc::Receiver<LogEvent>,
    acks: Acks,
}

impl Events {
    /// The next event, acknowledged; `None` once the watch has ended.
    async fn recv(&mut self) -> Option<LogEvent> {
        let ev = self.rx.recv().await;
        if ev.is_some() {
            self.acks.handled();
        }
        ev
    }

    /// An event received already, acknowledged.
    fn try_recv(&mut self) -> Option<LogEvent> {
        let ev = self.rx.try_recv().ok();
        if ev.is_some() {
            self.acks.handled();
        }
        ev
    }
}

/// Starts `watcher` in the background with a channel of `room` events.
fn spawn_watch(
    watcher: Watcher,
    room: usize,
) -> (
    CancellationToken,
    JoinHandle<Result<WatchStats, WatchError>>,
    Events,
) {
    spawn_reporting(watcher, room, |_, _| {})
}

/// [`spawn_watch`], telling `on_pass` after every pass ([`watch_reporting`]).
fn spawn_reporting(
    watcher: Watcher,
    room: usize,
    on_pass: impl FnMut(&Watcher, &WatchStats) + Send + 'static,
) -> (
    CancellationToken,
    JoinHandle<Result<WatchStats, WatchError>>,
    Events,
) {
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(room);
    let (acks, ack_rx) = Acks::new();
    let task = tokio::spawn(watch_reporting(
        watcher,
        cancel.clone(),
        tx,
        ack_rx,
        on_pass,
    ));
    (cancel, task, Events { rx, acks })
}

/// A status callback that sends what `pick` takes from the figures of every idle pass, and
/// its receiver. On a current-thread runtime a busy watch's passes are told on this thread,
/// an idle one's off it.
fn idle_reports<T: Send + 'static>(
    pick: impl Fn(&WatchStats) -> T + Send + 'static,
) -> (
    impl FnMut(&Watcher, &WatchStats) + Send + 'static,
    mpsc::UnboundedReceiver<T>,
) {
    let runtime_thread = std::thread::current().id();
    let (told, reports) = mpsc::unbounded_channel();
    let on_pass = move |_: &Watcher, stats: &WatchStats| {
        if std::thread::current().id() != runtime_thread {
            let _ = told.send(pick(stats));
        }
    };
    (on_pass, reports)
}

/// A watcher running in the background, its events collected.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<WatchStats, WatchError>>,
    rx: Events,
    /// The file it follows and its checkpoint, to tell when it has caught up.
    log: PathBuf,
    checkpoint: PathBuf,
}

fn start_watcher(log: &Path, checkpoint: &Path) -> Running {
    let mut cfg = WatchConfig::new(
        "rotation",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    let watcher = Watcher::new(cfg, checkpoint.to_path_buf()).unwrap();
    let (cancel, task, rx) = spawn_watch(watcher, 100_000);
    Running {
        cancel,
        task,
        rx,
        log: log.to_path_buf(),
        checkpoint: checkpoint.to_path_buf(),
    }
}

/// Moves the events received so far into `seen` (count per N).
fn drain(rx: &mut Events, seen: &mut BTreeMap<u32, u32>) {
    while let Some(ev) = rx.try_recv() {
        let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
}

/// Waits until all of `0..n` were seen; fails at a generous deadline naming the missing ones.
async fn wait_until_seen(rx: &mut Events, seen: &mut BTreeMap<u32, u32>, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        drain(rx, seen);
        let missing: Vec<u32> = (0..n).filter(|k| !seen.contains_key(k)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lines never seen within 60 s: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the watcher has caught up with `log` (see [`caught_up`]): every rotated file
/// retired, the current one read to its end and checkpointed. Fails at the deadline with the
/// file's size and the checkpoint it saw.
async fn wait_caught_up(checkpoint: &Path, log: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while !caught_up(checkpoint, log) {
        assert!(
            Instant::now() < deadline,
            "the watcher did not catch up with {} ({:?} bytes) within {within:?}; checkpoint: {}",
            log.display(),
            std::fs::metadata(log).map(|m| m.len()).ok(),
            std::fs::read_to_string(checkpoint).unwrap_or_else(|e| e.to_string())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until all of `0..total` were seen and the watcher has retired every rotated file
/// (nothing it reads again could still show up as a duplicate), then stops the watcher.
async fn finish(mut w: Running, mut seen: BTreeMap<u32, u32>, total: u32) -> BTreeMap<u32, u32> {
    wait_until_seen(&mut w.rx, &mut seen, total).await;
    // A rotated file is retired once quiet for RETIRE_QUIET, then saved out of the checkpoint.
    wait_caught_up(
        &w.checkpoint,
        &w.log,
        RETIRE_QUIET + Duration::from_secs(60),
    )
    .await;
    w.cancel.cancel();
    // Every event received (and acknowledged) before the end, as a job's consumer does.
    while let Some(ev) = w.rx.recv().await {
        let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    w.task.await.unwrap().unwrap();
    seen
}

fn assert_exactly_once(seen: &BTreeMap<u32, u32>, total: u32) {
    let missing: Vec<u32> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    let repeated: Vec<(u32, u32)> = seen
        .iter()
        .filter(|(_, &c)| c != 1)
        .map(|(&n, &c)| (n, c))
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "missing lines: {missing:?}; lines seen more than once (N, times): {repeated:?}"
    );
    assert_eq!(seen.len() as u32, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_graceful_and_copytruncate_lose_and_repeat_nothing() {
    let apache = Apache::start();
    let state = tempfile::tempdir().unwrap();
    let log = apache.log.clone();
    let mut w = start_watcher(&log, &state.path().join("apache/rotation.json"));
    let mut seen = BTreeMap::new();
    const TOTAL: u32 = 300;
    for n in 0..TOTAL {
        block_in_place(|| apache.get(&format!("/missing-{n}")));
        match n {
            // logrotate `create` + `postrotate apache2ctl graceful`: Apache writes the old
            // inode until the graceful restart.
            100 => {
                rotate_create(&log, &log.with_extension("log.1"));
                block_in_place(|| apache.get("/missing-100000"));
                block_in_place(|| apache.control("graceful"));
            }
            // logrotate `copytruncate` (between two requests, as logrotate itself would lose
            // a line written between its copy and its truncate). Rotations come a day apart,
            // not within one poll: the watcher has read the new file before it is copied away.
            200 => {
                wait_until_seen(&mut w.rx, &mut seen, 200).await;
                block_in_place(|| rotate_copytruncate(&log, &log.with_extension("log.2")));
            }
            _ => {}
        }
        drain(&mut w.rx, &mut seen);
    }
    let mut seen = finish(w, seen, TOTAL).await;
    assert_eq!(
        seen.remove(&100_000),
        Some(1),
        "the line Apache wrote to the renamed file before its graceful restart"
    );
    assert_exactly_once(&seen, TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_watcher_resumes_exactly_where_it_stopped() {
    let apache = Apache::start();
    let state = tempfile::tempdir().unwrap();
    let checkpoint = state.path().join("apache/restart.json");
    let log = apache.log.clone();
    let mut seen = BTreeMap::new();
    const TOTAL: u32 = 200;
    let mut first = Some(start_watcher(&log, &checkpoint));
    let mut second = None;
    for n in 0..TOTAL {
        block_in_place(|| apache.get(&format!("/missing-{n}")));
        match n {
            // Stop the watcher mid-stream: lines go on being written while it is away.
            60 => {
                let mut w = first.take().unwrap();
                w.cancel.cancel();
                // Every event received (and acknowledged) before the end, as a job's consumer does.
                while let Some(ev) = w.rx.recv().await {
                    let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
                    *seen.entry(n).or_default() += 1;
                }
                w.task.await.unwrap().unwrap();
                assert!(checkpoint.exists(), "no checkpoint written at shutdown");
            }
            // Rotate while it is away: it must finish the renamed file and read the new one.
            100 => {
                rotate_create(&log, &log.with_extension("log.1"));
                block_in_place(|| apache.control("graceful"));
            }
            140 => second = Some(start_watcher(&log, &checkpoint)),
            _ => {}
        }
        for w in first.iter_mut().chain(second.iter_mut()) {
            drain(&mut w.rx, &mut seen);
        }
    }
    let seen = finish(second.unwrap(), seen, TOTAL).await;
    assert_exactly_once(&seen, TOTAL);
}

/// The AH00128 line Apache logs for a request of `/missing-N`.
fn missing_line(n: u64) -> String {
    format!(
        "[Tue Dec 01 09:00:00.000000 2026] [core:info] [pid 10:tid 11] [client 127.0.0.1:40000] \
         AH00128: File does not exist: /srv/htdocs/missing-{n}\n"
    )
}

/// Appends `/missing-N` lines for every N in `ns` to `log`.
fn append_lines(log: &Path, ns: impl IntoIterator<Item = u64>) {
    use std::io::Write;
    let text: String = ns.into_iter().map(missing_line).collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A watcher on `log` (rules: the counting rule only) with its checkpoint at `checkpoint`.
fn watcher(log: &Path, checkpoint: &Path, from_beginning: bool) -> Watcher {
    let mut cfg = WatchConfig::new(
        "faults",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = from_beginning;
    Watcher::new(cfg, checkpoint.to_path_buf()).unwrap()
}

/// The N of every event, counted.
fn keys(events: &[LogEvent]) -> BTreeMap<u32, u32> {
    let mut seen = BTreeMap::new();
    for ev in events {
        let n: u32 = ev.dedup_key.as_deref().unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    seen
}

/// True once the checkpoint holds one file, not a rotated one, read to `log`'s end.
fn caught_up(checkpoint: &Path, log: &Path) -> bool {
    caught_up_all(checkpoint, &[log])
}

/// True once the checkpoint holds exactly `logs`, none rotated, each read to its end.
fn caught_up_all(checkpoint: &Path, logs: &[&Path]) -> bool {
    let Ok(text) = std::fs::read(checkpoint) else {
        return false;
    };
    let Ok(cp) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    let files = cp["files"].as_array().cloned().unwrap_or_default();
    files.len() == logs.len()
        && logs.iter().all(|log| {
            let size = std::fs::metadata(log).map(|m| m.len()).unwrap_or(u64::MAX);
            files.iter().any(|f| {
                f["path"].as_str() == log.to_str() && f["retired"] == false && f["offset"] == size
            })
        })
}

/// Issue 10 item 7: a consumer far slower than the lines (every line matches and makes an
/// event) must not slow reading down: with a rename rotation every second, every line written
/// is read, the events the consumer had no room for are counted as dropped, and none is lost
/// silently. Before the fix the watcher waited on the consumer, its passes stretched past the
/// rotations, and the files rotated in between were never opened.
///
/// CI runs 5,000 lines/s for 4 s. The README figure (20,000 lines/s) comes from
/// `APACHE_LOAD_RATE=20000 APACHE_LOAD_SECONDS=10 cargo test --test tests
/// apache_rotation::slow_consumer -- --nocapture`, which prints the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_never_slows_reading_across_a_rotation_every_second() {
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rate = setting("APACHE_LOAD_RATE", 5_000); // lines per second
    let seconds = setting("APACHE_LOAD_SECONDS", 4);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let checkpoint = dir.path().join("state/apache/faults.json");
    std::fs::write(&log, b"").unwrap();
    let mut cfg = WatchConfig::new(
        "faults",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    let w = Watcher::new(cfg, checkpoint.clone()).unwrap();
    let (cancel, task, mut rx) = spawn_watch(w, 256);
    // The consumer: 2 ms per event, a tenth of the rate.
    let consumer = tokio::spawn(async move {
        let mut got = 0u64;
        while rx.recv().await.is_some() {
            got += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        got
    });
    let writer_log = log.clone();
    let written = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut n = 0u64;
        for second in 0..seconds {
            while n < rate * (second + 1) {
                let due = start + Duration::from_micros(n * 1_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let upto = (n + 50).min(rate * (second + 1));
                append_lines(&writer_log, n..upto);
                n = upto;
            }
            // logrotate `dateext` + `create`: rename away, create anew.
            rotate_create(
                &writer_log,
                &writer_log.with_extension(format!("log-{second}")),
            );
        }
        n
    })
    .await
    .unwrap();
    wait_caught_up(&checkpoint, &log, Duration::from_secs(60)).await;
    cancel.cancel();
    let stats = task.await.unwrap().unwrap();
    let received = consumer.await.unwrap();
    println!(
        "{rate} lines/s for {seconds} s, every line matching, rename rotation every second: \
         {written} lines written, {} read; {} events, {received} received by a consumer taking \
         2 ms each, {} dropped and counted",
        stats.lines, stats.events, stats.dropped
    );
    assert_eq!(
        stats.lines, written,
        "lines read != lines written: {stats:?}"
    );
    assert_eq!(stats.events, written, "{stats:?}");
    assert_eq!(
        received + stats.dropped,
        stats.events,
        "events neither received nor counted as dropped: {stats:?}, received {received}"
    );
}

/// Issue 10 item 7: two rotations between two passes. The file that was at the path only
/// between them was never seen there; it is found beside the log and read whole.
#[test]
fn a_file_rotated_away_before_it_was_seen_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..10);
    let mut w = watcher(&log, &dir.path().join("cp.json"), true);
    let mut events = w.poll().unwrap();
    rotate_create(&log, &dir.path().join("error.log-1"));
    append_lines(&log, 10..20);
    rotate_create(&log, &dir.path().join("error.log-2"));
    append_lines(&log, 20..30);
    events.extend(w.poll().unwrap());
    let seen = keys(&events);
    let missing: Vec<u32> = (0..30).filter(|n| seen.get(n) != Some(&1)).collect();
    assert!(
        missing.is_empty(),
        "lines not seen exactly once: {missing:?}"
    );
    assert_eq!(w.lines_read(), 30);
}

/// Found by issue 15's faster passes: a pass saw the path missing (a `delete` + `create`
/// rotation between its two steps), and before the next one the new file was written and
/// renamed away twice. The rescan that found the path again read only the file now there;
/// the two rotated in between are found beside it and read whole, oldest first.
#[test]
fn files_rotated_while_the_path_was_missing_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..10);
    let mut cfg = WatchConfig::new(
        "faults",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    cfg.rescan_interval = Duration::ZERO;
    let mut w = Watcher::new(cfg, dir.path().join("cp.json")).unwrap();
    let mut events = w.poll().unwrap();
    std::fs::remove_file(&log).unwrap();
    events.extend(w.poll().unwrap());
    append_lines(&log, 10..20);
    rotate_create(&log, &dir.path().join("error.log.1"));
    append_lines(&log, 20..30);
    rotate_create(&log, &dir.path().join("error.log.2"));
    append_lines(&log, 30..40);
    events.extend(w.poll().unwrap());
    let seen = keys(&events);
    let wrong: Vec<(u32, Option<&u32>)> = (0..40)
        .map(|n| (n, seen.get(&n)))
        .filter(|(_, c)| *c != Some(&1))
        .collect();
    assert!(
        wrong.is_empty(),
        "lines not seen exactly once (N, times): {wrong:?}"
    );
    assert_eq!(w.lines_read(), 40);
}

/// Issue 10 item 8: the checkpoint directory turns into a regular file mid-run (what a full
/// or broken disk looks like to the save, also as root). The watch goes on from where it is:
/// no line is read twice, none is lost, and the failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_cannot_be_saved_does_not_stop_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let cp_dir = dir.path().join("state/apache");
    let checkpoint = cp_dir.join("faults.json");
    std::fs::write(&log, b"").unwrap();
    let mut w = start_watcher(&log, &checkpoint);
    let mut seen = BTreeMap::new();
    append_lines(&log, 0..50);
    wait_until_seen(&mut w.rx, &mut seen, 50).await;
    wait_caught_up(&checkpoint, &log, Duration::from_secs(30)).await;
    std::fs::rename(&cp_dir, dir.path().join("state/apache.moved")).unwrap();
    std::fs::write(&cp_dir, b"not a directory").unwrap();
    for batch in 1..6u64 {
        append_lines(&log, batch * 50..(batch + 1) * 50);
        wait_until_seen(&mut w.rx, &mut seen, (batch as u32 + 1) * 50).await;
        assert!(!w.task.is_finished(), "the watch stopped at a failed save");
    }
    w.cancel.cancel();
    let stats = w.task.await.unwrap().unwrap();
    drain(&mut w.rx, &mut seen);
    assert!(stats.failed_saves > 0, "no save failed: {stats:?}");
    assert_exactly_once(&seen, 300);
}

/// Issue 10 item 9: a corrupt checkpoint is kept aside and the watch starts as on a first
/// start, instead of failing the job at every restart.
#[test]
fn a_corrupt_checkpoint_is_set_aside_and_the_watch_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let checkpoint = dir.path().join("state/apache/faults.json");
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    std::fs::write(&checkpoint, b"{\"version\": 1, \"files\": [{\"pa").unwrap();
    append_lines(&log, 0..5);
    let mut w = watcher(&log, &checkpoint, false);
    let aside: Vec<_> = std::fs::read_dir(checkpoint.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("faults.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file was not kept aside");
    assert_eq!(
        std::fs::read(checkpoint.with_file_name(&aside[0])).unwrap(),
        b"{\"version\": 1, \"files\": [{\"pa"
    );
    // A first start: the lines there before begin at the end; new ones are read.
    assert!(w.poll().unwrap().is_empty());
    append_lines(&log, 5..10);
    let seen = keys(&w.poll().unwrap());
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (5..10).collect::<Vec<_>>()
    );
    w.save().unwrap();
    assert!(checkpoint.exists());
}

/// Issue 10 item 11: copytruncate while opsd is stopped. The lines written after the last
/// checkpoint and before the truncation are read from the copy at the next start, then the
/// truncated file from its start.
#[test]
fn copytruncate_while_stopped_reads_the_rest_of_the_copy_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let checkpoint = dir.path().join("state/apache/faults.json");
    append_lines(&log, 0..10);
    let mut w = watcher(&log, &checkpoint, true);
    let mut events = w.poll().unwrap();
    w.save().unwrap();
    drop(w);
    append_lines(&log, 10..20); // while stopped
    rotate_copytruncate(&log, &dir.path().join("error.log.1"));
    append_lines(&log, 20..30);
    let mut w = watcher(&log, &checkpoint, true);
    events.extend(w.poll().unwrap());
    let seen = keys(&events);
    let wrong: Vec<(u32, u32)> = (0..30)
        .map(|n| (n, seen.get(&n).copied().unwrap_or(0)))
        .filter(|&(_, c)| c != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "lines not seen exactly once (N, times): {wrong:?}"
    );
    let order: Vec<u32> = events
        .iter()
        .map(|e| e.dedup_key.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "out of order: {order:?}"
    );
}

/// The real `opsd run` daemon on a jobs file, its log in a file; killed on drop.
struct Daemon {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `opsd run` on `jobs` with its state, socket and log in a fresh directory,
    /// after `prepare` was given the state directory.
    fn start(jobs: &str, prepare: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jobs.toml"), jobs).unwrap();
        prepare(&dir.path().join("state"));
        let child = std::process::Command::new(crate::util::OPSD)
            .args(["run", "--log-format", "text", "--config"])
            .arg(dir.path().join("jobs.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("opsd.sock"))
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, dir }
    }

    /// The checkpoint of the job named `web`.
    fn checkpoint(&self) -> std::path::PathBuf {
        self.dir.path().join("state/apache/web.json")
    }

    /// What the daemon logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Waits until `cond` holds, failing with the daemon's log after a generous deadline.
    fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        assert!(
            crate::util::poll_until(Duration::from_secs(30), cond),
            "timed out waiting for {what}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 10 item 9, for what is not a file: a directory at the checkpoint path made every
/// start fail (EISDIR) and the job restart-looped, reading nothing. It is moved aside like a
/// corrupt checkpoint, logged at error naming the job and the path, and the job starts as on
/// a first start: lines appended are read and alerted (through a command sink).
#[test]
fn a_directory_at_the_checkpoint_path_is_set_aside_and_the_daemon_alerts() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("error.log");
    let alerts = work.path().join("alerts.jsonl");
    append_lines(&log, 0..3);
    let jobs = format!(
        "[jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\napache_bin = \"/bin/false\"\n\
         alert = [\"file\"]\ndisable_rules = [\"child_crash\"]\npoll_interval = \"100ms\"\n\n\
         [[jobs.web.rules]]\nid = \"missing\"\nregex = 'AH00128: File does not exist: \\S*/missing-(\\d+)'\n\
         dedup = \"$1\"\nseverity = \"high\"\ncooldown = \"1ms\"\nsummary = \"missing file\"\n\n\
         [alerts.file]\ntype = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\n",
        log.display().to_string(),
        alerts.display()
    );
    let d = Daemon::start(&jobs, |state| {
        std::fs::create_dir_all(state.join("apache/web.json/sub")).unwrap();
    });
    d.wait_for("the job to start watching", || {
        d.log().contains("web: watching Apache error logs")
    });
    let log_text = d.log();
    let line = log_text
        .lines()
        .find(|l| l.contains("cannot be read as a file"))
        .unwrap_or_else(|| panic!("no error about the checkpoint; log:\n{log_text}"));
    assert!(
        line.contains("ERROR")
            && line.contains("web:")
            && line.contains(&d.checkpoint().display().to_string())
            && line.contains("a directory")
            && line.contains("first start"),
        "{line}"
    );
    let aside: Vec<_> = std::fs::read_dir(d.checkpoint().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("web.json.corrupt-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the directory was not kept aside: {aside:?}"
    );
    // A first start: the lines there before begin at the end; lines appended are alerted.
    append_lines(&log, 3..6);
    d.wait_for("alerts for lines 3, 4 and 5", || {
        let sent = std::fs::read_to_string(&alerts).unwrap_or_default();
        (3..6).all(|n| sent.contains(&format!("missing-{n}")))
    });
    let sent = std::fs::read_to_string(&alerts).unwrap();
    assert!(
        !sent.contains("missing-0"),
        "lines from before the start were alerted: {sent}"
    );
    d.wait_for("a checkpoint saved at the path again", || {
        d.checkpoint().is_file()
    });
    assert!(
        !d.log().contains("restarting it"),
        "the job restarted:\n{}",
        d.log()
    );
}

/// What cannot be read and cannot be moved aside either (here the name with `.corrupt-<time>`
/// appended is longer than a file name may be) fails the job with one error that names the
/// checkpoint, both causes and what to do, instead of a start that could never save.
#[test]
fn an_unreadable_checkpoint_that_cannot_be_moved_aside_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..1);
    let checkpoint = dir.path().join(format!("{}.json", "j".repeat(245)));
    std::fs::create_dir(&checkpoint).unwrap();
    let cfg = WatchConfig::new(
        "faults",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    let err = Watcher::new(cfg, checkpoint.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&checkpoint.display().to_string())
            && err.contains("a directory")
            && err.contains("could not be moved aside")
            && err.contains("move or remove it"),
        "{err}"
    );
    assert!(checkpoint.is_dir(), "the directory was touched");
}

// Issue 15: following by inotify. Each test writes lines while the follower's world changes
// under it (a rotation mid-burst, a restart, a flood of unrelated names, the directory going,
// a symlink) and checks every line is seen exactly once, as the polling follower did.

/// A watcher following the glob `patterns` in the background, its checkpoint at `checkpoint`.
fn start_patterns(patterns: &[String], checkpoint: &Path) -> Running {
    let mut cfg = WatchConfig::new("inotify", patterns.to_vec(), vec![counting_rule()]);
    cfg.from_beginning = true;
    let watcher = Watcher::new(cfg, checkpoint.to_path_buf()).unwrap();
    let (cancel, task, rx) = spawn_watch(watcher, 100_000);
    Running {
        cancel,
        task,
        rx,
        log: patterns[0].clone().into(),
        checkpoint: checkpoint.to_path_buf(),
    }
}

/// Writes the lines of `ns` to `log` at `rate` lines per second in chunks of 50, calling
/// `between` with the next N after each chunk (to rotate mid-burst). Blocking.
fn burst(log: &Path, ns: std::ops::Range<u64>, rate: u64, mut between: impl FnMut(u64)) {
    let start = Instant::now();
    let mut n = ns.start;
    while n < ns.end {
        let due = start + Duration::from_micros((n - ns.start) * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let upto = (n + 50).min(ns.end);
        append_lines(log, n..upto);
        n = upto;
        between(n);
    }
}

/// Waits until the checkpoint shows every one of `logs` read to its end and nothing rotated
/// still open, then stops the watcher and returns every N it produced, counted.
async fn finish_all(
    mut w: Running,
    mut seen: BTreeMap<u32, u32>,
    total: u32,
    logs: &[&Path],
) -> BTreeMap<u32, u32> {
    wait_until_seen(&mut w.rx, &mut seen, total).await;
    let deadline = Instant::now() + RETIRE_QUIET + Duration::from_secs(60);
    while !caught_up_all(&w.checkpoint, logs) {
        assert!(
            Instant::now() < deadline,
            "the watcher did not catch up with {logs:?}; checkpoint: {}",
            std::fs::read_to_string(&w.checkpoint).unwrap_or_else(|e| e.to_string())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.cancel.cancel();
    // Every event received (and acknowledged) before the end, as a job's consumer does.
    while let Some(ev) = w.rx.recv().await {
        let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    w.task.await.unwrap().unwrap();
    seen
}

/// 10,000 lines at 10,000 lines/s, rotated mid-burst by rename + create, by copytruncate and by
/// delete + create (each after the previous file was read: logrotate runs a day apart), and by
/// two renames within 2 ms: nothing is lost or read twice. (The rotations are 2,000 and 3,000
/// lines apart, so the file is never the same size as when checkpointed just before: a file
/// truncated and written again to the very size it had is only told apart by its fingerprint
/// once its size changes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_during_a_burst_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(&log, b"").unwrap();
    let checkpoint = dir.path().join("state/apache/inotify.json");
    let mut w = start_patterns(&[log.display().to_string()], &checkpoint);
    let writer_log = log.clone();
    let cp = checkpoint.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let read_to_end = || {
            assert!(
                crate::util::poll_until(Duration::from_secs(30), || caught_up(&cp, &writer_log)),
                "the watcher did not catch up before a rotation"
            )
        };
        burst(&writer_log, 0..10_000, 10_000, |n| match n {
            2_000 => rotate_create(&writer_log, &writer_log.with_extension("log.1")),
            4_000 => {
                read_to_end();
                rotate_copytruncate(&writer_log, &writer_log.with_extension("log.2"));
            }
            7_000 => {
                read_to_end();
                std::fs::remove_file(&writer_log).unwrap();
                std::fs::File::create(&writer_log).unwrap();
            }
            9_000 => {
                rotate_create(&writer_log, &writer_log.with_extension("log.3"));
                append_lines(&writer_log, [100_000]);
                rotate_create(&writer_log, &writer_log.with_extension("log.4"));
            }
            _ => {}
        });
    });
    // Events are taken (and acknowledged) meanwhile: the checkpoint reaches a file's end only
    // once its events are handled.
    let mut seen = BTreeMap::new();
    while !writer.is_finished() {
        drain(&mut w.rx, &mut seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.await.unwrap();
    let mut seen = finish_all(w, seen, 10_000, &[&log]).await;
    assert_eq!(
        seen.remove(&100_000),
        Some(1),
        "the file at the path only between two renames"
    );
    assert_exactly_once(&seen, 10_000);
}

/// A reload stops the watch and starts a new one from the checkpoint while lines keep coming,
/// three times in one burst: every line once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_during_a_burst_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    std::fs::write(&log, b"").unwrap();
    let checkpoint = dir.path().join("state/apache/inotify.json");
    let patterns = [log.display().to_string()];
    let mut w = start_patterns(&patterns, &checkpoint);
    let mut seen = BTreeMap::new();
    let (tx, mut at) = mpsc::channel::<()>(1);
    let writer_log = log.clone();
    let writer = tokio::task::spawn_blocking(move || {
        burst(&writer_log, 0..8_000, 5_000, |n| {
            if n % 2_000 == 0 && n < 8_000 {
                let _ = tx.blocking_send(());
            }
        })
    });
    for _ in 0..3 {
        at.recv().await.unwrap();
        w.cancel.cancel();
        // Every event received (and acknowledged) before the end, as a job's consumer does.
        while let Some(ev) = w.rx.recv().await {
            let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
            *seen.entry(n).or_default() += 1;
        }
        w.task.await.unwrap().unwrap();
        w = start_patterns(&patterns, &checkpoint);
    }
    writer.await.unwrap();
    let seen = finish_all(w, seen, 8_000, &[&log]).await;
    assert_exactly_once(&seen, 8_000);
}

/// More names created and deleted in the watched directory than inotify queues (its queue
/// overflows while lines are written, and a new log appears amid the flood): the follower
/// looks at everything again and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_creates_overflowing_inotify_loses_nothing() {
    let max: u64 = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a-error.log");
    let b = dir.path().join("b-error.log");
    std::fs::write(&a, b"").unwrap();
    let checkpoint = dir.path().join("state/apache/inotify.json");
    let w = start_patterns(
        &[format!("{}/*-error.log", dir.path().display())],
        &checkpoint,
    );
    let (fa, fb, flood_dir) = (a.clone(), b.clone(), dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let flood = std::thread::spawn(move || {
            for i in 0..max {
                let p = flood_dir.join(format!("junk-{i}"));
                std::fs::File::create(&p).unwrap();
                std::fs::remove_file(&p).unwrap();
            }
        });
        burst(&fa, 0..2_000, 4_000, |n| {
            if n == 1_000 {
                append_lines(&fb, 2_000..3_000);
            }
        });
        flood.join().unwrap();
    })
    .await
    .unwrap();
    let seen = finish_all(w, BTreeMap::new(), 3_000, &[&a, &b]).await;
    assert_exactly_once(&seen, 3_000);
}

/// The logs' directory is removed (after its lines were read) and created again with a new
/// log: the new log is followed from its first line, nothing read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_removed_and_recreated_is_followed_again() {
    let top = tempfile::tempdir().unwrap();
    let logs = top.path().join("site/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("error.log");
    std::fs::write(&log, b"").unwrap();
    let checkpoint = top.path().join("state/apache/inotify.json");
    let mut w = start_patterns(&[format!("{}/*error.log", logs.display())], &checkpoint);
    let mut seen = BTreeMap::new();
    append_lines(&log, 0..500);
    wait_until_seen(&mut w.rx, &mut seen, 500).await;
    std::fs::remove_dir_all(top.path().join("site")).unwrap();
    // Gone for a while: the follower sees it go and waits on what is left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::create_dir_all(&logs).unwrap();
    append_lines(&log, 500..1_000);
    let seen = finish_all(w, seen, 1_000, &[&log]).await;
    assert_exactly_once(&seen, 1_000);
}

/// The log is rotated away and a symlink to a file in another directory put at its name (a
/// layout change): the rotated file is finished, the file behind the link followed from its
/// first line, and writes to it (outside every watched directory) still reach the follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_by_a_symlink_is_followed_through_it() {
    let top = tempfile::tempdir().unwrap();
    let (logs, elsewhere) = (top.path().join("logs"), top.path().join("elsewhere"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let log = logs.join("error.log");
    let target = elsewhere.join("real.log");
    std::fs::write(&log, b"").unwrap();
    let checkpoint = top.path().join("state/apache/inotify.json");
    let mut w = start_patterns(&[log.display().to_string()], &checkpoint);
    let mut seen = BTreeMap::new();
    append_lines(&log, 0..300);
    wait_until_seen(&mut w.rx, &mut seen, 300).await;
    append_lines(&log, 300..400);
    append_lines(&target, 400..500);
    std::fs::rename(&log, logs.join("error.log.1")).unwrap();
    std::os::unix::fs::symlink(&target, &log).unwrap();
    append_lines(&logs.join("error.log.1"), 500..600);
    wait_until_seen(&mut w.rx, &mut seen, 600).await;
    append_lines(&target, 600..700);
    let seen = finish_all(w, seen, 700, &[&log]).await;
    assert_exactly_once(&seen, 700);
}

/// `kill -9` of the daemon mid-burst, then a start from its checkpoint: nothing saved before
/// the kill is reported again, and every line written after the restart is reported once.
/// Lines are counted by the event each causes in the daemons' logs. The lines of the burst
/// killed mid-way are each reported at least once (the checkpoint stays at the oldest event the
/// consumer had not finished with; what was reported before the kill may be reported again).
/// The burst stays below the channel's 1,024 events: the restart reads the unsaved part of it
/// in one pass, and events beyond the channel's room are dropped and counted by design.
#[test]
fn kill_9_mid_follow_repeats_nothing_saved_and_follows_on() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("error.log");
    std::fs::write(&log, b"").unwrap();
    let jobs = format!(
        "[jobs.web]\ntype = \"apache_log\"\npaths = [{:?}]\napache_bin = \"/bin/false\"\n\
         disable_rules = [\"child_crash\"]\nfrom_beginning = true\n\n\
         [[jobs.web.rules]]\nid = \"missing\"\nregex = 'AH00128: File does not exist: \\S*/missing-(\\d+)'\n\
         dedup = \"$1\"\nseverity = \"high\"\ncooldown = \"1ms\"\nsummary = \"missing file\"\n",
        log.display().to_string(),
    );
    // How many events each N caused, in the logs of `daemons`.
    let counts = |daemons: &[&Daemon]| {
        let mut counts = BTreeMap::<u64, u32>::new();
        for d in daemons {
            for l in d.log().lines().filter(|l| l.contains("web: missing file")) {
                if let Some(n) = l
                    .split("dedup_key=")
                    .nth(1)
                    .and_then(|k| k.split_whitespace().next())
                    .and_then(|k| k.parse().ok())
                {
                    *counts.entry(n).or_default() += 1;
                }
            }
        }
        counts
    };
    let mut d = Daemon::start(&jobs, |_| {});
    d.wait_for("the job to start watching", || {
        d.log().contains("web: watching Apache error logs")
    });
    append_lines(&log, 0..50);
    d.wait_for("events for lines 0..50", || counts(&[&d]).len() == 50);
    d.wait_for("the checkpoint at the log's end", || {
        caught_up(&d.checkpoint(), &log)
    });
    burst(&log, 50..650, 5_000, |_| {});
    let _ = d.child.kill();
    let _ = d.child.wait();
    let state = d.dir.path().join("state");
    let d2 = Daemon::start(&jobs, |s| copy_dir(&state, s));
    d2.wait_for("the job to start watching again", || {
        d2.log().contains("web: watching Apache error logs")
    });
    append_lines(&log, 650..700);
    let after = |c: &BTreeMap<u64, u32>| (650..700).all(|n| c.get(&n) == Some(&1));
    let complete = crate::util::poll_until(Duration::from_secs(30), || after(&counts(&[&d, &d2])));
    let counts = counts(&[&d, &d2]);
    let missing: Vec<u64> = (0..700).filter(|n| !counts.contains_key(n)).collect();
    assert!(
        complete && missing.is_empty(),
        "lines never reported: {missing:?}; log after the restart:\n{}",
        d2.log()
    );
    let twice: Vec<u64> = (0..50).filter(|n| counts[n] != 1).collect();
    assert!(
        twice.is_empty(),
        "lines saved before the kill reported again: {twice:?}"
    );
}

/// Copies directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// An idle watch is never due to save (issue 15: an idle follower wakes for nothing), while a
/// position that moved is.
#[test]
fn an_idle_watch_is_never_due_to_save() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..10);
    let mut cfg = WatchConfig::new(
        "idle",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    cfg.checkpoint_interval = Duration::ZERO;
    let mut w = Watcher::new(cfg, dir.path().join("cp.json")).unwrap();
    w.poll().unwrap();
    w.save().unwrap();
    w.poll().unwrap();
    assert!(!w.save_due(), "nothing moved, yet a save is due");
    append_lines(&log, 10..20);
    w.poll().unwrap();
    assert!(w.save_due(), "a position moved, yet no save is due");
}

/// A watch of `TOP/logs/*/error.log`, once it is idle, with `TOP/logs/site` there and empty:
/// inotify watches `logs` (the pattern's top directory), not `logs/site`. Returns `TOP` (a
/// temporary directory), `logs/site` and the watch.
async fn idle_watch_beside_an_unwatched_dir() -> (tempfile::TempDir, PathBuf, Running) {
    let top = tempfile::tempdir().unwrap();
    let site = top.path().join("logs/site");
    std::fs::create_dir_all(&site).unwrap();
    let checkpoint = top.path().join("state/apache/inotify.json");
    let pattern = format!("{}/logs/*/error.log", top.path().display());
    let w = start_patterns(&[pattern], &checkpoint);
    // The first save (of no file) is the watch's last thing to do before it is idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !checkpoint.exists() {
        assert!(Instant::now() < deadline, "the watch never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (top, site, w)
}

/// A log created where inotify does not look (a directory that was there, empty, before the
/// watch began: only the pattern's top directory is watched) is found by the safety pass of
/// an idle watch, run off the runtime, and read from its first line; later lines follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_finds_a_log_inotify_cannot_see_by_its_safety_pass() {
    let (_top, site, mut w) = idle_watch_beside_an_unwatched_dir().await;
    let log = site.join("error.log");
    append_lines(&log, 0..100);
    let mut seen = BTreeMap::new();
    wait_until_seen(&mut w.rx, &mut seen, 100).await;
    append_lines(&log, 100..200);
    let seen = finish_all(w, seen, 200, &[&log]).await;
    assert_exactly_once(&seen, 200);
}

/// Renames a file beside the watched ones back and forth without pause (two names, as a
/// tool saving its state by renaming would change them) until the returned flag is set; the
/// thread returns how many renames it made. Each is two name changes in its directory (moved
/// from, moved to), neither of which concerns a watch of other files.
fn rename_without_pause(
    path: PathBuf,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<u64>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let busy = std::thread::spawn(move || {
        let mut other = path.clone().into_os_string();
        other.push(".tmp");
        std::fs::write(&path, b"state").unwrap();
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            std::fs::rename(&path, &other).unwrap();
            std::fs::rename(&other, &path).unwrap();
            n += 2;
        }
        n
    });
    (stop, busy)
}

/// Review of the idle watch, item 1: a sibling in a watched directory that changes all the
/// time (renamed back and forth without pause, tens of thousands of times a second) does not
/// hold off the safety pass of an idle watch: a log inotify cannot see is still found by the
/// first safety pass and read from its first line. (It passed before the change too: the
/// pass's due time outlived each change that took the watcher back; it guards that none of
/// them puts the pass off.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sibling_does_not_hold_off_the_safety_pass() {
    use opsd::apache::watch::SAFETY_POLL;
    let (top, site, mut w) = idle_watch_beside_an_unwatched_dir().await;
    let (stop, busy) = rename_without_pause(top.path().join("logs/status"));
    let log = site.join("error.log");
    append_lines(&log, 0..100);
    let started = Instant::now();
    let within = SAFETY_POLL * 3;
    let mut seen = BTreeMap::new();
    while seen.len() < 100 && started.elapsed() < within {
        drain(&mut w.rx, &mut seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let renames = busy.join().unwrap();
    let rate = renames as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        seen.len(),
        100,
        "the log was not found within {within:?} while its sibling was renamed {rate:.0} times a second"
    );
    append_lines(&log, 100..200);
    let seen = finish_all(w, seen, 200, &[&log]).await;
    assert_exactly_once(&seen, 200);
}

/// Review of the idle watch, item 2: a watch that ends in an error still saves its last
/// position before it returns. Saves fail (the checkpoint's directory is a file) until the
/// disk is repaired just before the watch fails (its status callback panics in an idle safety
/// pass, as a panicking pass would); the saver's last try then saves the position by the time
/// the watch has returned. (Before, an error return dropped the saver unfinished: nothing was
/// saved by then, and a job started again at once would read those lines again.) On a
/// single-threaded runtime, and checked in the same poll that sees the watch return, so that
/// nothing else runs in between.
#[tokio::test]
async fn a_watch_that_fails_saves_its_last_position_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let cp_dir = dir.path().join("state/apache");
    let checkpoint = cp_dir.join("faults.json");
    append_lines(&log, 0..50);
    let mut cfg = WatchConfig::new(
        "faults",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    // The failed save is not tried again before the watch ends.
    cfg.checkpoint_interval = Duration::from_secs(3600);
    let watcher = Watcher::new(cfg, checkpoint.clone()).unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(&cp_dir, b"not a directory").unwrap();
    let runtime_thread = std::thread::current().id();
    let repair = cp_dir.clone();
    // A busy watch's passes are told on the runtime's thread, an idle one's off it.
    let on_pass = move |_: &Watcher, _: &WatchStats| {
        if std::thread::current().id() != runtime_thread {
            std::fs::remove_file(&repair).unwrap();
            std::fs::create_dir(&repair).unwrap();
            panic!("the status callback fails in an idle safety pass");
        }
    };
    let (tx, mut rx) = mpsc::channel(1000);
    let (acks, ack_rx) = Acks::new();
    let watching = async {
        let ended = watch_reporting(watcher, CancellationToken::new(), tx, ack_rx, on_pass).await;
        (ended, caught_up(&checkpoint, &log))
    };
    let consuming = async {
        let mut received = 0;
        while rx.recv().await.is_some() {
            acks.handled();
            received += 1;
        }
        received
    };
    let ((ended, saved), received) = tokio::join!(watching, consuming);
    assert!(matches!(ended, Err(WatchError::Task(_))), "{ended:?}");
    assert_eq!(received, 50);
    assert!(
        saved,
        "the watch returned before its position was saved; checkpoint: {:?}",
        std::fs::read_to_string(&checkpoint)
    );
}

/// Review of the idle watch, item 3: an idle watch holds no thread of tokio's blocking pool,
/// which is shared and bounded (here to one thread): other blocking work still runs while the
/// watch is idle. (Before, the idle safety passes ran on a pool thread they kept for as long
/// as the watch was idle, and this work waited for it.)
#[test]
fn an_idle_watch_leaves_the_blocking_pool_to_others() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..10);
    let watcher = watcher(&log, &dir.path().join("idle.json"), true);
    let (on_pass, mut idle_passes) = idle_reports(|_| ());
    rt.block_on(async {
        let (cancel, watch, mut events) = spawn_reporting(watcher, 100, on_pass);
        for _ in 0..10 {
            events.recv().await.unwrap();
        }
        let first_idle = tokio::time::timeout(Duration::from_secs(60), idle_passes.recv()).await;
        assert!(first_idle.is_ok(), "the watch never told an idle pass");
        let other =
            tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(|| 42));
        let other = other.await;
        cancel.cancel();
        let stats = watch.await.unwrap().unwrap();
        assert_eq!(stats.lines, 10);
        assert!(
            matches!(other, Ok(Ok(42))),
            "blocking work waited 10 s while the watch was idle: {other:?}"
        );
    });
}

/// Review of the idle watch, item 4: the figures an idle watch reports with each safety pass
/// are current. Every save fails (the checkpoint's directory is a file) and the saver retries
/// every second while the watch is idle: the failed saves counted grow from one idle pass to
/// the next. (Before, an idle pass reported the count of when the watch went idle.)
#[tokio::test]
async fn an_idle_watch_reports_the_failed_saves_as_they_grow() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    let cp_dir = dir.path().join("state/apache");
    append_lines(&log, 0..10);
    let watcher = watcher(&log, &cp_dir.join("faults.json"), true);
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(&cp_dir, b"not a directory").unwrap();
    let (on_pass, mut idle_passes) = idle_reports(|stats| stats.failed_saves);
    let (cancel, watch, mut events) = spawn_reporting(watcher, 100, on_pass);
    for _ in 0..10 {
        events.recv().await.unwrap();
    }
    let mut told_failed = Vec::new();
    while told_failed.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(60), idle_passes.recv()).await;
        told_failed.push(next.expect("no idle pass told within 60 s").unwrap());
    }
    cancel.cancel();
    let stats = watch.await.unwrap().unwrap();
    assert!(
        told_failed[1] > told_failed[0],
        "two idle passes 5 s apart told the same failed saves: {told_failed:?} (at the end: {})",
        stats.failed_saves
    );
}

/// A log writer for tests: keeps what is written.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines written so far that contain `what`.
    fn count(&self, what: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(what)).count()
    }
}

/// Review of the idle watch, item 4: events dropped while the consumer was behind are
/// reported even when the watch goes idle right after, once the 10 s between two reports
/// have passed. (Before, the drops after the first report waited, unreported, for the next
/// change to a followed file.) The watch's log lines are captured on this thread, which runs
/// the watch (a single-threaded runtime).
#[tokio::test]
async fn drops_reported_late_are_reported_while_idle() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("error.log");
    append_lines(&log, 0..5);
    let watcher = watcher(&log, &dir.path().join("drops.json"), true);
    let (passes_tx, mut passes) = mpsc::unbounded_channel();
    let on_pass = move |_: &Watcher, stats: &WatchStats| {
        let _ = passes_tx.send(stats.dropped);
    };
    // Room for one event: the consumer is behind until it reads it.
    let (cancel, watch, mut events) = spawn_reporting(watcher, 1, on_pass);
    let dropped = "alert events came faster than they could be logged and sent";
    let mut last = 0;
    while last < 4 {
        last = passes.recv().await.unwrap();
    }
    assert_eq!(
        logs.count(dropped),
        1,
        "the first drops were not reported at once"
    );
    append_lines(&log, 5..10);
    while last < 9 {
        last = passes.recv().await.unwrap();
    }
    events.recv().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while logs.count(dropped) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reported = logs.count(dropped);
    cancel.cancel();
    watch.await.unwrap().unwrap();
    assert_eq!(
        reported, 2,
        "the later drops were not reported within 30 s while idle"
    );
}
