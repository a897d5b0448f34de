//! Download-and-install flows of the `geoip` job against stub MaxMind and storage servers on
//! 127.0.0.1, with a stand-in builder (the format itself is tested elsewhere).

use crate::util::stub_http::{self, Request, Response, Stub};
use opsd::jobs::geoip::{run_with, BuiltFile, GeoipBuilder, GeoipSpec, LegacyBuilder, RunSettings};
use opsd::jobs::{Outcome, RunContext, RunReport};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EDITION: &str = "GeoLite2-Country-CSV";
const KEY: &str = "test-key";
/// `42:test-key` in base64.
const AUTH: &str = "Basic NDI6dGVzdC1rZXk=";
/// Tries per request in these tests.
const ATTEMPTS: u32 = 3;

/// What the stub servers offer; tests change it between runs.
#[derive(Debug, Clone)]
struct World {
    date: String,
    zip: Vec<u8>,
    /// Status forced on every request to the MaxMind host.
    main_status: Option<u16>,
    /// How many further zip downloads the storage host answers with 503.
    fail_5xx: usize,
    cut_after: Option<usize>,
    bad_sha: bool,
}

/// A zip with a GeoLite2-shaped folder holding `entries`.
fn make_zip(date: &str, entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        let name = if name.starts_with('/') || name.starts_with("..") {
            name.to_string()
        } else {
            format!("{EDITION}_{date}/{name}")
        };
        zip.start_file(name, opts).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn country_zip(date: &str, rows: &str) -> Vec<u8> {
    make_zip(
        date,
        &[(
            "GeoLite2-Country-Blocks-IPv4.csv",
            format!("network,geoname_id\n{rows}").as_bytes(),
        )],
    )
}

/// The stub MaxMind and storage hosts and a job set up to use them.
struct Harness {
    world: Arc<Mutex<World>>,
    main: Stub,
    storage: Stub,
    root: tempfile::TempDir,
    spec: GeoipSpec,
    settings: RunSettings,
    builder: Arc<FakeBuilder>,
}

impl Harness {
    async fn new(extra_toml: &str) -> Harness {
        let world = Arc::new(Mutex::new(World {
            date: "20191224".into(),
            zip: country_zip("20191224", "1.0.0.0/24,2077456\n"),
            main_status: None,
            fail_5xx: 0,
            cut_after: None,
            bad_sha: false,
        }));
        let w = Arc::clone(&world);
        let storage = stub_http::start(move |req: &Request| {
            let mut w = w.lock().unwrap();
            if req.method == "GET" && w.fail_5xx > 0 {
                w.fail_5xx -= 1;
                return Response::new(503, "busy");
            }
            let mut resp = Response::new(200, w.zip.clone())
                .header(
                    "Content-Disposition",
                    format!("attachment; filename={EDITION}_{}.zip", w.date),
                )
                .header("Last-Modified", "Tue, 24 Dec 2019 12:00:00 GMT");
            resp.cut_after = w.cut_after;
            resp
        })
        .await;
        let (w, storage_url) = (Arc::clone(&world), storage.url());
        let main = stub_http::start(move |req: &Request| {
            let w = w.lock().unwrap();
            if req.header("authorization") != Some(AUTH) {
                return Response::new(401, "no");
            }
            if let Some(status) = w.main_status {
                return Response::new(status, "forced");
            }
            let edition = req.target.split('/').nth(3).unwrap_or("");
            if req.target.ends_with("suffix=zip.sha256") {
                let sha = if w.bad_sha {
                    "0".repeat(64)
                } else {
                    hex::encode(Sha256::digest(&w.zip))
                };
                Response::new(200, format!("{sha}  {edition}_{}.zip\n", w.date))
            } else if req.target.ends_with("suffix=zip") {
                Response::new(302, "").header(
                    "Location",
                    format!("{storage_url}/{edition}_{}.zip", w.date),
                )
            } else {
                Response::new(404, "")
            }
        })
        .await;

        let root = tempfile::tempdir().unwrap();
        for d in ["out", "state"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let key = root.path().join("maxmind.key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        let text = format!(
            "account_id = 42\nlicense_key_file = {key:?}\neditions = [\"{EDITION}\"]\n\
             output_dir = {out:?}\nbase_url = \"{base}\"\n\
             after = [\"/bin/sh\", \"-c\", \"echo ran >> {marker}\"]\n{extra_toml}",
            out = root.path().join("out"),
            base = main.url(),
            marker = root.path().join("after.log").display(),
        );
        let spec: GeoipSpec = toml::from_str(&text).unwrap();
        assert!(spec.validate("jobs.geo").is_empty());
        let mut settings = spec.settings();
        settings.download.attempts = ATTEMPTS;
        settings.download.backoff = Duration::from_millis(1);
        Harness {
            world,
            main,
            storage,
            root,
            spec,
            settings,
            builder: Arc::new(FakeBuilder::default()),
        }
    }

    fn ctx(&self, dry_run: bool) -> RunContext {
        RunContext {
            job: "geo".into(),
            run_id: "r1".into(),
            cancel: CancellationToken::new(),
            state_dir: self.root.path().join("state"),
            dry_run,
            foreground: false,
            kill_grace: Duration::from_secs(1),
            alerts: opsd::alert::Dispatcher::new(&Default::default(), Default::default()).unwrap(),
            alert_to: Vec::new().into(),
            live: Default::default(),
            fencing_token: None,
        }
    }

    async fn run(&self) -> RunReport {
        run_with(
            &self.spec,
            &self.ctx(false),
            Arc::clone(&self.builder),
            self.settings.clone(),
        )
        .await
    }

    fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }

    fn installed(&self) -> Option<String> {
        std::fs::read_to_string(self.out().join("GeoIP.dat")).ok()
    }

    /// How often `after` ran.
    fn after_runs(&self) -> usize {
        std::fs::read_to_string(self.root.path().join("after.log")).map_or(0, |s| s.lines().count())
    }

    fn gets(stub: &Stub) -> usize {
        stub.seen().iter().filter(|r| r.method == "GET").count()
    }

    /// Nothing of a download is left in the state directory.
    fn assert_no_scratch(&self) {
        let work = self.root.path().join("state/geoip/geo/work");
        assert!(!work.exists(), "scratch dir left at {}", work.display());
    }
}

/// A stand-in builder: `GeoIP.dat` holds the zip's CSV rows; `verify` can be made to fail.
#[derive(Default)]
struct FakeBuilder {
    fail_verify: Mutex<bool>,
}

impl GeoipBuilder for FakeBuilder {
    fn build(
        &self,
        zip: &Path,
        out_dir: &Path,
        _stop: &Arc<AtomicBool>,
    ) -> Result<Vec<BuiltFile>, String> {
        let mut archive =
            zip::ZipArchive::new(std::fs::File::open(zip).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let mut rows = String::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
            entry.read_to_string(&mut rows).map_err(|e| e.to_string())?;
        }
        let path = out_dir.join("GeoIP.dat");
        std::fs::write(&path, &rows).map_err(|e| e.to_string())?;
        Ok(vec![BuiltFile {
            name: "GeoIP.dat".into(),
            path,
            networks: rows.lines().count() as u64 - 1,
        }])
    }

    fn verify(&self, _zip: &Path, file: &BuiltFile, candidate: &Path) -> Result<(), String> {
        if *self.fail_verify.lock().unwrap() {
            return Err("1.0.0.1 gave --, the CSV says AU".into());
        }
        let (a, b) = (std::fs::read(&file.path), std::fs::read(candidate));
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            _ => Err("candidate differs from the built file".into()),
        }
    }
}

#[tokio::test]
async fn installs_then_skips_on_head_then_installs_only_real_changes() {
    let h = Harness::new("").await;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(
        report
            .detail
            .as_deref()
            .unwrap()
            .contains("GeoIP.dat (GeoLite2-Country-CSV 20191224)"),
        "{report:?}"
    );
    assert!(h.installed().unwrap().contains("1.0.0.0/24"));
    assert_eq!(h.after_runs(), 1);
    h.assert_no_scratch();

    // Redirect: the MaxMind host got the credentials, the storage host never did.
    let main = h.main.seen();
    assert!(main.iter().all(|r| r.header("authorization") == Some(AUTH)));
    assert_eq!(
        main.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["HEAD", "GET", "GET"]
    );
    let storage = h.storage.seen();
    assert_eq!(storage.len(), 2, "HEAD and GET followed the redirect");
    assert!(storage.iter().all(|r| r.header("authorization").is_none()));
    assert_eq!(storage[1].target, "/GeoLite2-Country-CSV_20191224.zip");
    let state = std::fs::read_to_string(
        h.root
            .path()
            .join("state/geoip/geo/GeoLite2-Country-CSV.json"),
    )
    .unwrap();
    assert!(state.contains("\"date\": \"20191224\""), "{state}");
    assert!(!state.contains(KEY));

    // Same release: only a HEAD, nothing downloaded, `after` not run.
    let report = h.run().await;
    assert_eq!(report.detail.as_deref(), Some("no file changed"));
    assert_eq!(Harness::gets(&h.main), 2);
    assert_eq!(Harness::gets(&h.storage), 1);
    assert_eq!(h.after_runs(), 1);

    // A new date with identical data: downloaded, but no file changed, so no `after`.
    h.world.lock().unwrap().date = "20191231".into();
    let report = h.run().await;
    assert_eq!(
        report.detail.as_deref(),
        Some("no file changed"),
        "{report:?}"
    );
    assert_eq!(Harness::gets(&h.storage), 2);
    assert_eq!(h.after_runs(), 1);

    // New data: installed and `after` runs.
    {
        let mut w = h.world.lock().unwrap();
        w.date = "20200107".into();
        w.zip = country_zip("20200107", "1.0.0.0/24,2077456\n1.0.1.0/24,1814991\n");
    }
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(h.installed().unwrap().contains("1.0.1.0/24"));
    assert_eq!(h.after_runs(), 2);

    // A deleted output file is rebuilt even though the release did not change.
    std::fs::remove_file(h.out().join("GeoIP.dat")).unwrap();
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(h.installed().is_some());
}

#[tokio::test]
async fn dry_run_only_asks_with_head() {
    let h = Harness::new("").await;
    let report = run_with(
        &h.spec,
        &h.ctx(true),
        Arc::clone(&h.builder),
        h.settings.clone(),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(
        report.detail.as_deref(),
        Some("dry run: would download GeoLite2-Country-CSV (20191224)")
    );
    assert_eq!(Harness::gets(&h.main), 0);
    assert!(h.installed().is_none());
}

#[tokio::test]
async fn checksum_mismatch_installs_nothing() {
    let h = Harness::new("").await;
    std::fs::write(h.out().join("GeoIP.dat"), "old").unwrap();
    h.world.lock().unwrap().bad_sha = true;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        report
            .detail
            .as_deref()
            .unwrap()
            .contains("checksum mismatch"),
        "{report:?}"
    );
    assert_eq!(h.installed().as_deref(), Some("old"));
    assert_eq!(h.after_runs(), 0);
    h.assert_no_scratch();
}

#[tokio::test]
async fn refused_credentials_are_named_and_not_retried() {
    let h = Harness::new("").await;
    let mut spec = h.spec.clone();
    let two = toml::from_str::<GeoipSpec>(&format!(
        "account_id = 42\neditions = [\"{EDITION}\", \"GeoLite2-ASN-CSV\"]\noutput_dir = \"/\""
    ))
    .unwrap();
    spec.editions = two.editions;
    h.world.lock().unwrap().main_status = Some(401);
    let report = run_with(
        &spec,
        &h.ctx(false),
        Arc::clone(&h.builder),
        h.settings.clone(),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    let detail = report.detail.unwrap();
    assert!(
        detail.contains("account id or license key is wrong"),
        "{detail}"
    );
    assert!(!detail.contains(KEY));
    assert_eq!(detail.matches(EDITION).count(), 1, "{detail}");
    assert_eq!(
        h.main.seen().len(),
        1,
        "one HEAD, no retry, second edition not tried"
    );

    h.world.lock().unwrap().main_status = Some(403);
    let report = h.run().await;
    assert!(report.detail.unwrap().contains("HTTP 403"));
}

#[tokio::test]
async fn daily_limit_is_named_and_not_retried() {
    let h = Harness::new("").await;
    h.world.lock().unwrap().main_status = Some(429);
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.detail.unwrap().contains("daily download limit"));
    assert_eq!(h.main.seen().len(), 1);
}

#[tokio::test]
async fn truncated_body_is_retried_a_bounded_number_of_times() {
    let h = Harness::new("").await;
    std::fs::write(h.out().join("GeoIP.dat"), "old").unwrap();
    h.world.lock().unwrap().cut_after = Some(20);
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        report.detail.as_deref().unwrap().contains("cut short"),
        "{report:?}"
    );
    assert_eq!(Harness::gets(&h.storage), ATTEMPTS as usize);
    assert_eq!(h.installed().as_deref(), Some("old"));
    h.assert_no_scratch();
}

#[tokio::test]
async fn server_errors_are_retried_then_give_up() {
    let h = Harness::new("").await;
    h.world.lock().unwrap().fail_5xx = ATTEMPTS as usize - 1;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(Harness::gets(&h.storage), ATTEMPTS as usize);

    std::fs::remove_file(h.out().join("GeoIP.dat")).unwrap();
    h.world.lock().unwrap().fail_5xx = 100;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.detail.unwrap().contains("HTTP 503"));
    assert_eq!(Harness::gets(&h.storage), 2 * ATTEMPTS as usize);
}

#[tokio::test]
async fn oversized_download_is_refused_without_retry() {
    let h = Harness::new("max_download_size = 100").await;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report
        .detail
        .unwrap()
        .contains("above max_download_size (100 bytes)"));
    assert_eq!(Harness::gets(&h.storage), 1);
    assert!(h.installed().is_none());
}

#[tokio::test]
async fn zip_bombs_and_escaping_paths_are_refused() {
    let mut h = Harness::new("").await;
    h.settings.zip.max_entry_size = 100_000;
    std::fs::write(h.out().join("GeoIP.dat"), "old").unwrap();
    let zeros = vec![b'0'; 1 << 20];
    h.world.lock().unwrap().zip =
        make_zip("20191224", &[("GeoLite2-Country-Blocks-IPv4.csv", &zeros)]);
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report
        .detail
        .unwrap()
        .contains("more than the limit of 100000"));

    h.world.lock().unwrap().zip = make_zip(
        "20191224",
        &[
            ("GeoLite2-Country-Blocks-IPv4.csv", b"network\n"),
            ("../../etc/evil", b"x"),
        ],
    );
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.detail.unwrap().contains("outside the zip's folder"));
    assert_eq!(h.installed().as_deref(), Some("old"));
    assert_eq!(h.after_runs(), 0);
    h.assert_no_scratch();
}

#[tokio::test]
async fn a_failed_check_keeps_the_old_files() {
    let h = Harness::new("").await;
    std::fs::write(h.out().join("GeoIP.dat"), "old").unwrap();
    *h.builder.fail_verify.lock().unwrap() = true;
    let report = h.run().await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.detail.unwrap().contains("the CSV says AU"));
    assert_eq!(h.installed().as_deref(), Some("old"));
    let names: Vec<_> = std::fs::read_dir(h.out())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "GeoIP.dat and the lock file only: {names:?}"
    );
    assert_eq!(h.after_runs(), 0);
}

#[tokio::test]
async fn a_cancelled_run_stops_while_the_server_is_silent() {
    let mut h = Harness::new("").await;
    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    h.settings.download.base_url = format!("http://{}", silent.local_addr().unwrap());
    let (connected, waiting) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut connected = Some(connected);
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
            if let Some(tx) = connected.take() {
                let _ = tx.send(());
            }
        }
    });
    let ctx = h.ctx(false);
    let cancel = ctx.cancel.clone();
    // Cancelled once the run is waiting on the server, not after a guess at how long that takes.
    tokio::spawn(async move {
        if waiting.await.is_ok() {
            cancel.cancel();
        }
    });
    let run = run_with(&h.spec, &ctx, Arc::clone(&h.builder), h.settings.clone());
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended within 60 s of connecting to the silent server");
    assert_eq!(report.outcome, Outcome::Killed, "{report:?}");
    assert!(h.installed().is_none());
    h.assert_no_scratch();
}

/// The real builder, noting how its build ended (`None` while it runs).
#[derive(Default)]
struct NotedBuilder {
    inner: LegacyBuilder,
    ended: Mutex<Option<Result<usize, String>>>,
}

impl GeoipBuilder for NotedBuilder {
    fn build(
        &self,
        zip: &Path,
        out_dir: &Path,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<BuiltFile>, String> {
        let r = self.inner.build(zip, out_dir, stop);
        *self.ended.lock().unwrap() = Some(r.as_ref().map(Vec::len).map_err(Clone::clone));
        r
    }

    fn verify(&self, zip: &Path, file: &BuiltFile, candidate: &Path) -> Result<(), String> {
        self.inner.verify(zip, file, candidate)
    }
}

/// A cancelled run (what a timeout, a reload removing the job or a shutdown does) stops its
/// in-process build: the real builder on the real Country zip ends at its next read, before
/// the run reports, and the run's scratch directory is gone. Before, the run stopped waiting
/// and removed the directory while the build went on writing into it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_stops_its_build_and_leaves_no_scratch() {
    let h = Harness::new("").await;
    h.world.lock().unwrap().zip = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/geoip/GeoLite2-Country-CSV_20191224.zip"),
    )
    .unwrap();
    let ctx = h.ctx(false);
    let builder = Arc::new(NotedBuilder::default());
    let building = h
        .root
        .path()
        .join(format!("state/geoip/geo/work/{EDITION}.out"));
    let cancel = ctx.cancel.clone();
    let canceller = tokio::spawn(async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !building.exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Cancelled either way, so that the run ends; the test then fails at this task's
        // await when the build never got as far as its work file.
        cancel.cancel();
        assert!(
            building.exists(),
            "the build's work file {} never appeared within 60 s",
            building.display()
        );
    });
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        run_with(&h.spec, &ctx, Arc::clone(&builder), h.settings.clone()),
    )
    .await
    .expect("the cancelled run did not end");
    canceller.await.unwrap();
    assert_eq!(report.outcome, Outcome::Killed, "{report:?}");
    let ended = builder.ended.lock().unwrap().clone();
    match ended {
        Some(Err(e)) => assert!(e.contains("stopped"), "{e}"),
        other => panic!("the build had not been stopped when the run ended: {other:?}"),
    }
    assert!(h.installed().is_none());
    h.assert_no_scratch();
}

/// The same through the real binary and the scheduler's `timeout`: `opsd run-job` on a geoip
/// job downloading the real Country zip (a build of a second or more) ends as timed out when the
/// timeout fires during the build, installs nothing and leaves no scratch directory. (Before
/// the stop was wired this passed too, only later: `run-job`'s runtime waited for the whole
/// build before exiting. The test above is the one that tells the two apart.)
///
/// The timeout has to fall after the download and its check and before the build ends, and how
/// long those take depends on the machine and its load: it starts at 2 s, doubles while it
/// fired before the build began and halves while the whole run ended within it (a fast machine
/// builds the Country files in about a second; that run's files are removed before the next).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_geoip_job_stops_its_build_and_leaves_no_scratch() {
    let h = Harness::new("").await;
    h.world.lock().unwrap().zip = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/geoip/GeoLite2-Country-CSV_20191224.zip"),
    )
    .unwrap();
    let mut millis: u64 = 2000;
    for _ in 0..10 {
        let (success, log) = run_job_with_timeout(&h, millis).await;
        if success {
            assert!(
                millis > 100,
                "the run ended within even a {millis} ms timeout:\n{log}"
            );
            // Installed: removed, with the job's state, so the next run downloads and builds.
            for dir in [h.out(), h.root.path().join("state")] {
                let _ = std::fs::remove_dir_all(&dir);
            }
            std::fs::create_dir_all(h.out()).unwrap();
            millis /= 2;
            continue;
        }
        assert!(log.contains("timed out after"), "{log}");
        assert!(h.installed().is_none(), "{log}");
        h.assert_no_scratch();
        if log.contains("building legacy GeoIP files") {
            return;
        }
        // The download or its check took the whole timeout on a loaded machine: try longer.
        millis *= 2;
    }
    panic!("no timeout between 100 ms and 60 s fell during the build");
}

/// Runs `opsd run-job` on a geoip job of `h` with `timeout = "MILLIS ms"`: whether it
/// succeeded, and its log.
async fn run_job_with_timeout(h: &Harness, millis: u64) -> (bool, String) {
    let config = h.root.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.geo]\ntype = \"geoip\"\nschedule = \"0 0 4 1 1 * 2099\"\ntimeout = \"{millis}ms\"\n\
             account_id = 42\nlicense_key_file = {:?}\neditions = [\"{EDITION}\"]\n\
             output_dir = {:?}\nbase_url = \"{}\"\n",
            h.root.path().join("maxmind.key").display().to_string(),
            h.out().display().to_string(),
            h.main.url()
        ),
    )
    .unwrap();
    let state = h.root.path().join("state");
    let log_path = h.root.path().join("log");
    let mut child = std::process::Command::new(crate::util::OPSD)
        .args(["run-job", "geo", "--log-format", "text", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = tokio::time::timeout(
        Duration::from_millis(millis) + Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .unwrap_or_else(|_| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        panic!("opsd run-job did not end");
    })
    .unwrap();
    (
        status.success(),
        std::fs::read_to_string(&log_path).unwrap(),
    )
}

/// Runs `opsd check` on a job file holding one geoip job with these two keys.
fn check_geoip(dir: &Path, key_file: &Path, output_dir: &Path) -> (bool, String) {
    let config = dir.join("jobs.toml");
    std::fs::write(
        &config,
        format!(
            "[jobs.geo]\ntype = \"geoip\"\nschedule = \"0 0 4 * * Sun\"\naccount_id = 42\n\
             license_key_file = {:?}\neditions = [\"{EDITION}\"]\noutput_dir = {:?}\n",
            key_file.display().to_string(),
            output_dir.display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::util::OPSD)
        .arg("check")
        .arg("--config")
        .arg(&config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run opsd check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_names_a_missing_key_file_and_output_dir_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("maxmind.key");
    let out = dir.path().join("GeoIP");
    let (ok, text) = check_geoip(dir.path(), &key, &out);
    assert!(!ok, "{text}");
    let config = dir.path().join("jobs.toml").display().to_string();
    assert!(
        text.contains(&format!(
            "{config}:5:20: `jobs.geo.license_key_file`: error: {} does not exist",
            key.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{config}:7:14: `jobs.geo.output_dir`: error: output directory {} does not exist",
            out.display()
        )),
        "{text}"
    );

    std::fs::create_dir(&out).unwrap();
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let (ok, text) = check_geoip(dir.path(), &key, &out);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("geo: license_key_file: OK ({})", key.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("geo: output_dir: OK ({})", out.display())),
        "{text}"
    );
    assert!(!text.contains(KEY), "the key leaked: {text}");
}
