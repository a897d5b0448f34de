//! The Debian package: builds it with `cargo deb` from the binary this test run built, installs
//! it with `dpkg -i` in an nspawn container whose `/usr`, `/etc` and `/var` are overlays of the
//! host's with the test's scratch directories as upper layers (so dpkg can write, the host never
//! changes), and starts opsd from it with the shipped, unmodified unit. Needs root, systemd-nspawn and
//! cargo-deb (`.ci/setup`); fails loudly without them.

use crate::util::e2e::{describe, output_text, step, Bind, Container, Overlay};
use std::path::Path;
use std::process::Command;

const UNIT: &str = "opsd.service";

/// Jobs that probe the sandbox of the installed unit: the paths the built-in job types need
/// are usable, and the rest of the file system is read-only.
const PROBE_JOBS: &str = r#"
[jobs.geoip-dir]
type = "command"
schedule = "@every 1s"
command = "echo probe > /usr/share/GeoIP/opsd-probe && ls /var/log/apache2 > /dev/null"

[jobs.elsewhere]
type = "command"
schedule = "@every 1s"
command = ["/usr/bin/touch", "/usr/share/opsd-probe"]
"#;

/// Builds the .deb into `out` with `cargo deb --no-build`, packaging the opsd binary of this
/// test build. cargo-deb takes binaries from `<target dir>/release/`; a private target dir
/// holding a copy of the debug binary there avoids a release build (minutes) while everything
/// else in the package (unit, maintainer scripts, conffile, docs) is exactly what ships.
fn build_deb(out: &Path, scratch: &Path) -> std::path::PathBuf {
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed: the package test needs it \
         (cargo install cargo-deb --locked; see .ci/setup)"
    );
    let target = scratch.join("target");
    std::fs::create_dir_all(target.join("release")).expect("create scratch target dir");
    std::fs::copy(crate::util::OPSD, target.join("release/opsd")).expect("copy the opsd binary");
    // The man pages and completions, as docs/install.md generates them before `cargo deb`.
    let assets = Command::new(target.join("release/opsd"))
        .arg("dist-assets")
        .arg(target.join("release/dist"))
        .output()
        .expect("run opsd dist-assets");
    assert!(
        assets.status.success(),
        "opsd dist-assets failed:\n{}",
        output_text(&assets)
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["deb", "--no-build", "--no-strip", "--offline", "--fast"])
        .arg("--output")
        .arg(out)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo deb");
    assert!(
        build.status.success(),
        "cargo deb failed:\n{}",
        output_text(&build)
    );
    let deb = std::fs::read_dir(out)
        .expect("read the cargo deb output dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("cargo deb wrote no .deb:\n{}", output_text(&build)));
    eprintln!("built {}", deb.display());
    deb
}

#[test]
fn deb_installs_and_starts_under_systemd() {
    let root = tempfile::Builder::new()
        .prefix("opsd-deb-e2e.")
        .tempdir()
        .expect("temp dir");
    let share = root.path().join("share");
    let units = root.path().join("etc-systemd-system");
    for d in [&share, &units] {
        std::fs::create_dir_all(d).expect("create dir");
    }

    step("deb 1", "cargo deb builds the package");
    let deb = build_deb(&share, root.path());
    std::fs::write(share.join("probe-jobs.toml"), PROBE_JOBS).expect("write probe jobs");

    // dpkg needs a writable /usr, its database in /var/lib/dpkg and the host's users and groups
    // in /etc: overlays give it all three. An empty, writable /etc/systemd/system (bound over the
    // /etc overlay) hides the host's enabled services; the package's postinst enables opsd in it.
    let overlays: Vec<Overlay> = ["/usr", "/etc", "/var"]
        .iter()
        .map(|dir| Overlay {
            dir: (*dir).into(),
            upper: root.path().join(format!("upper{}", dir.replace('/', "-"))),
        })
        .collect();
    let c = Container::boot(
        "opsd-deb",
        &overlays,
        &[
            Bind {
                host: share.clone(),
                container: "/mnt/opsd-deb".into(),
                read_only: true,
            },
            Bind {
                host: units.clone(),
                container: "/etc/systemd/system".into(),
                read_only: false,
            },
        ],
        root.path(),
    );
    let deb_name = deb.file_name().and_then(|n| n.to_str()).expect("deb name");

    step("deb 2", "dpkg -i installs binary, unit, conffile and docs");
    c.ok(
        "dpkg -i the package",
        &["dpkg", "-i", &format!("/mnt/opsd-deb/{deb_name}")],
    );
    for path in [
        "/usr/bin/opsd",
        "/lib/systemd/system/opsd.service",
        "/etc/opsd/jobs.toml",
        "/usr/share/doc/opsd/install.md",
        "/usr/share/doc/opsd/systemd.md",
        "/usr/share/doc/opsd/examples/jobs.toml",
        "/usr/share/man/man8/opsd.8",
        "/usr/share/man/man8/opsd-check.8",
        "/usr/share/man/man8/opsd-reload.8",
        "/usr/share/man/man5/jobs.toml.5.gz",
        "/usr/share/bash-completion/completions/opsd",
        "/usr/share/zsh/vendor-completions/_opsd",
        "/usr/share/fish/vendor_completions.d/opsd.fish",
    ] {
        c.ok(
            &format!("the package installed {path}"),
            &["test", "-e", path],
        );
    }
    let conffiles = c.ok(
        "list the package's conffiles",
        &["dpkg-query", "-W", "-f=${Conffiles}", "opsd"],
    );
    assert!(
        conffiles.contains("/etc/opsd/jobs.toml"),
        "/etc/opsd/jobs.toml is not a conffile of the package: {conffiles:?}"
    );
    let enabled = c.run(&["systemctl", "is-enabled", UNIT]);
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "enabled",
        "the package did not enable opsd.service:\n{}",
        output_text(&enabled)
    );
    c.ok(
        "systemd-analyze verify of the installed unit (ExecStart=/usr/bin/opsd)",
        &["systemd-analyze", "verify", UNIT],
    );
    let man = c.ok(
        "the opsd(8) page",
        &["head", "-c", "4096", "/usr/share/man/man8/opsd.8"],
    );
    assert!(
        man.contains(".TH opsd 8"),
        "opsd.8 is not a section-8 man page:\n{man}"
    );
    for (path, mode) in [("/etc/opsd", "750"), ("/etc/opsd/jobs.toml", "640")] {
        let got = c.ok(&format!("the mode of {path}"), &["stat", "-c", "%a", path]);
        assert_eq!(
            got.trim(),
            mode,
            "{path} has mode {} after dpkg -i",
            got.trim()
        );
    }
    let check = c.ok(
        "opsd check of the shipped /etc/opsd/jobs.toml",
        &["opsd", "check"],
    );
    assert!(
        check.contains("OK, no jobs"),
        "the shipped job file is not an empty, valid one:\n{check}"
    );
    // The drop-in directory is there to be found, and its README is not read as jobs.
    c.ok(
        "the drop-in directory's README",
        &["test", "-f", "/etc/opsd/jobs.d/README"],
    );

    step(
        "deb 2b",
        "opsd starts on the shipped job file, runs nothing, and systemd logs no mode mismatch",
    );
    let out = c.run(&["systemctl", "start", UNIT]);
    assert!(
        out.status.success(),
        "systemctl start opsd on the shipped job file failed:\n{}\n--- journal ---\n{}",
        output_text(&out),
        c.journal_tail(UNIT, 40)
    );
    let entries = c.poll("the daemon's no-jobs line", 20, || {
        let entries = c.journal(UNIT, None);
        entries
            .iter()
            .any(|e| e.message().contains("nothing to do"))
            .then_some(entries)
    });
    assert!(
        !entries.iter().any(|e| e.get("JOB").is_some()),
        "the shipped job file ran a job:\n{}",
        describe(&entries)
    );
    c.ok("stop opsd", &["systemctl", "stop", UNIT]);

    step(
        "deb 3",
        "systemctl start opsd works from the package, sandbox as documented",
    );
    c.ok(
        "create the GeoIP directory (as the geoip-database package does)",
        &["mkdir", "-p", "/usr/share/GeoIP"],
    );
    c.ok(
        "install the probe job file",
        &["cp", "/mnt/opsd-deb/probe-jobs.toml", "/etc/opsd/jobs.toml"],
    );
    let out = c.run(&["systemctl", "start", UNIT]);
    assert!(
        out.status.success(),
        "systemctl start opsd (from the package) failed:\n{}\n--- journal ---\n{}",
        output_text(&out),
        c.journal_tail(UNIT, 40)
    );
    let entries = c.poll("runs of both probe jobs", 20, || {
        let entries = c.journal(UNIT, None);
        let ended = |job: &str| {
            entries
                .iter()
                .any(|e| e.is("JOB", job) && e.get("OUTCOME").is_some())
        };
        (ended("geoip-dir") && ended("elsewhere")).then_some(entries)
    });
    let all = describe(&entries);
    assert!(
        entries
            .iter()
            .filter(|e| e.is("JOB", "geoip-dir") && e.get("OUTCOME").is_some())
            .all(|e| e.is("OUTCOME", "success")),
        "a job could not write /usr/share/GeoIP or read /var/log/apache2 under the unit:\n{all}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.is("JOB", "elsewhere") && e.message().contains("Read-only file system")),
        "a job could write under /usr outside ReadWritePaths= (ProtectSystem=strict lost?):\n{all}"
    );
    c.ok("stop opsd", &["systemctl", "stop", UNIT]);
    let mismatch: Vec<String> = c
        .journal(UNIT, None)
        .iter()
        .filter(|e| e.message().contains("mode is different"))
        .map(|e| e.message().to_string())
        .collect();
    assert!(
        mismatch.is_empty(),
        "systemd complains about the directory modes: {mismatch:?}"
    );

    step(
        "deb 4",
        "dpkg -r removes the program and keeps the edited conffile",
    );
    c.ok("dpkg -r opsd", &["dpkg", "-r", "opsd"]);
    let gone = c.run(&["test", "-e", "/usr/bin/opsd"]);
    assert!(
        !gone.status.success(),
        "/usr/bin/opsd still exists after dpkg -r"
    );
    c.ok(
        "the edited /etc/opsd/jobs.toml survives dpkg -r",
        &["test", "-e", "/etc/opsd/jobs.toml"],
    );
}
