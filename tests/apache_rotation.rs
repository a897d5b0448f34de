//! Following a real Apache's error log across rotations and watcher restarts: every line is
//! seen exactly once. Lines come from requests for `/missing-N` (AH00128 at `LogLevel info`);
//! a counting rule turns each into an event keyed by `N`.

mod apache_support;

use apache_support::{counting_rule, rotate_copytruncate, rotate_create, Apache};
use opsd::apache::rules::LogEvent;
use opsd::apache::watch::{watch, WatchConfig, Watcher, RETIRE_QUIET};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{block_in_place, JoinHandle};
use tokio_util::sync::CancellationToken;

/// A watcher running in the background, its events collected.
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), opsd::apache::watch::WatchError>>,
    rx: mpsc::Receiver<LogEvent>,
}

fn start_watcher(log: &Path, checkpoint: &Path) -> Running {
    let mut cfg = WatchConfig::new(
        "rotation",
        vec![log.display().to_string()],
        vec![counting_rule()],
    );
    cfg.from_beginning = true;
    let watcher = Watcher::new(cfg, checkpoint.to_path_buf()).unwrap();
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(100_000);
    let task = tokio::spawn(watch(watcher, cancel.clone(), tx));
    Running { cancel, task, rx }
}

/// Moves the events received so far into `seen` (count per N).
fn drain(rx: &mut mpsc::Receiver<LogEvent>, seen: &mut BTreeMap<u32, u32>) {
    while let Ok(ev) = rx.try_recv() {
        let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
}

/// Waits until all of `0..n` were seen (or a generous deadline passes).
async fn wait_until_seen(rx: &mut mpsc::Receiver<LogEvent>, seen: &mut BTreeMap<u32, u32>, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..n).any(|k| !seen.contains_key(&k)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drain(rx, seen);
    }
}

/// Waits until all of `0..total` were seen (or a generous deadline passes), then a little
/// longer so late duplicates would show, and stops the watcher.
async fn finish(mut w: Running, mut seen: BTreeMap<u32, u32>, total: u32) -> BTreeMap<u32, u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..total).any(|n| !seen.contains_key(&n)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&mut w.rx, &mut seen);
    }
    tokio::time::sleep(RETIRE_QUIET + Duration::from_secs(2)).await;
    w.cancel.cancel();
    w.task.await.unwrap().unwrap();
    while let Some(ev) = w.rx.recv().await {
        let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
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
                w.task.await.unwrap().unwrap();
                while let Some(ev) = w.rx.recv().await {
                    let n: u32 = ev.dedup_key.unwrap().parse().unwrap();
                    *seen.entry(n).or_default() += 1;
                }
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
