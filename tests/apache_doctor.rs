//! `opsd apache doctor` against Debian's real apache2 with self-contained configurations in a
//! temporary directory (no system config, no root-owned run dirs, nothing started).
//!
//! The full crash recipe cannot be assembled from Debian packages: Debian's mod_php is not
//! thread-safe and refuses a threaded MPM in pre-configuration. So the tests prove each part for
//! real — the event MPM with http2 + ssl + `Protocols h2` (the recipe minus PHP), Debian's
//! mod_php refusing the event MPM (reported with a hint, exit 2), and mod_php detected in `-M`
//! under prefork — and then check the verdict on the real event-MPM output with the real
//! `php_module (shared)` line from the prefork run added, as a thread-safe (ZTS) mod_php build
//! would print it.

use opsd::apache::doctor::{analyze, collect, DoctorOptions, Presence, Verdict};
use std::path::{Path, PathBuf};
use std::process::Command;

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

fn apache() -> PathBuf {
    assert!(
        Path::new(APACHE).is_file(),
        "{APACHE} is missing: install Debian's apache2 (run .ci/setup)"
    );
    PathBuf::from(APACHE)
}

fn libphp() -> PathBuf {
    glob::glob(&format!("{MODULES}/libphp*.so"))
        .unwrap()
        .flatten()
        .next()
        .unwrap_or_else(|| {
            panic!("no {MODULES}/libphp*.so: install libapache2-mod-php (run .ci/setup)")
        })
}

/// Writes `httpd.conf` (MPM + `modules`) including `site.conf` (`site`) into `dir`.
fn config(dir: &Path, mpm: &str, modules: &[(&str, PathBuf)], site: &str) -> PathBuf {
    let d = dir.display();
    let mut conf = format!(
        "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{}\nPidFile {d}/httpd.pid\n\
         ErrorLog {d}/error.log\nLoadModule mpm_{mpm}_module {MODULES}/mod_mpm_{mpm}.so\n\
         LoadModule authz_core_module {MODULES}/mod_authz_core.so\n",
        crate::util::free_port()
    );
    for (name, path) in modules {
        conf.push_str(&format!("LoadModule {name} {}\n", path.display()));
    }
    conf.push_str(&format!("Include {d}/site.conf\n"));
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn h2_modules() -> Vec<(&'static str, PathBuf)> {
    vec![
        (
            "socache_shmcb_module",
            PathBuf::from(MODULES).join("mod_socache_shmcb.so"),
        ),
        ("ssl_module", PathBuf::from(MODULES).join("mod_ssl.so")),
        ("http2_module", PathBuf::from(MODULES).join("mod_http2.so")),
    ]
}

const H2_SITE: &str = "<IfModule http2_module>\n    Protocols h2 http/1.1\n</IfModule>\n";

fn doctor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::util::OPSD)
        .args(["apache", "doctor"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn conf_arg(conf: &Path) -> String {
    conf.display().to_string()
}

#[test]
fn plain_event_server_has_no_recipe() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), "event", &[], "");
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--", "-f", &c]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("[x] worker or event MPM: event"), "{out}");
    assert!(
        out.contains("[ ] a php*_module loaded (mod_php): no php module"),
        "{out}"
    );
    assert!(out.contains("[ ] http2_module loaded"), "{out}");
    assert!(out.contains("VERDICT: no recipe"), "{out}");
    assert!(out.contains("(2 configuration file(s) scanned)"), "{out}");
}

#[test]
fn event_with_http2_ssl_and_h2_but_no_php_is_no_recipe() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), "event", &h2_modules(), H2_SITE);
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--json", "--", "-f", &c]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["verdict"], "no_recipe");
    assert_eq!(d["mpm"], "event");
    let present: Vec<&str> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["present"].as_str().unwrap())
        .collect();
    // Everything but PHP: version, MPM, (no php), http2, ssl, Protocols h2, no H2MaxWorkers.
    assert_eq!(present, ["yes", "yes", "no", "yes", "yes", "yes", "yes"]);
    assert_eq!(d["protocols_h2"][0]["line"], 2);
}

#[test]
fn debian_mod_php_refuses_the_event_mpm_and_the_doctor_says_why() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let mut modules = h2_modules();
    modules.push(("php_module", libphp()));
    let conf = config(dir.path(), "event", &modules, H2_SITE);
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--", "-f", &c]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("not compiled to be threadsafe"), "{err}");
    assert!(
        err.contains("hint: this PHP module is not thread-safe"),
        "{err}"
    );
}

#[test]
fn mod_php_is_detected_under_prefork_where_http2_is_off() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let mut modules = h2_modules();
    modules.push(("php_module", libphp()));
    let conf = config(dir.path(), "prefork", &modules, H2_SITE);
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--", "-f", &c]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("[x] a php*_module loaded (mod_php): php_module"),
        "{out}"
    );
    assert!(out.contains("[ ] worker or event MPM: prefork"), "{out}");
    assert!(
        out.contains("under prefork mod_http2 does not serve h2"),
        "{out}"
    );
}

#[tokio::test]
async fn full_recipe_on_real_event_output_with_a_thread_safe_php_module_line() {
    let bin = apache();
    let event_dir = tempfile::tempdir().unwrap();
    let event = config(event_dir.path(), "event", &h2_modules(), H2_SITE);
    let prefork_dir = tempfile::tempdir().unwrap();
    let mut modules = h2_modules();
    modules.push(("php_module", libphp()));
    let prefork = config(prefork_dir.path(), "prefork", &modules, H2_SITE);

    let opts = |conf: &Path| {
        DoctorOptions::new(Some(bin.clone()), vec!["-f".into(), conf_arg(conf)]).unwrap()
    };
    let (mut out, files) = collect(&opts(&event)).await.unwrap();
    let (prefork_out, _) = collect(&opts(&prefork)).await.unwrap();
    let php_line = prefork_out
        .modules
        .lines()
        .find(|l| l.trim_start().starts_with("php"))
        .expect("real apache2 -M lists the php module under prefork");
    out.modules.push_str(php_line);
    out.modules.push('\n');

    let d = analyze(&out, &files);
    assert_eq!(d.verdict, Verdict::Recipe, "{d}");
    assert!(d.checks.iter().all(|c| c.present == Presence::Yes), "{d}");
    assert!(d.to_string().contains("H2MaxWorkers 1"), "{d}");
    assert!(d.summary().contains("matches the known child-crash recipe"));

    // The stopgap in any included file turns the verdict into "mitigated".
    let mut files = files;
    let site = files
        .iter_mut()
        .find(|(p, _)| p.ends_with("site.conf"))
        .unwrap();
    site.1 = Some(format!("{H2_SITE}H2MaxWorkers 1\n"));
    assert_eq!(analyze(&out, &files).verdict, Verdict::Mitigated);
}

#[test]
fn a_missing_binary_exits_2() {
    let (code, _, err) = doctor(&["--bin", "/nonexistent/apachectl"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot run /nonexistent/apachectl"), "{err}");
}

#[test]
fn cli_exits_1_when_the_recipe_matches() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), "event", &h2_modules(), H2_SITE);
    // `--bin` is a wrapper around the real apache2; only `-M` gets one extra line, the one a
    // thread-safe mod_php prints (see the module comment for why Debian cannot provide it).
    let wrapper = dir.path().join("httpd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit $?\ncase \" $* \" in *\" -M \"*) echo ' php_module (shared)';; esac\n",
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", wrapper.to_str().unwrap(), "--", "-f", &c]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("VERDICT: RECIPE MATCHED"), "{out}");
    assert!(out.contains("site.conf:2: Protocols h2 http/1.1"), "{out}");
    assert!(
        out.contains("Real fix: event MPM + proxy_fcgi + php-fpm"),
        "{out}"
    );
}

#[test]
fn apache_config_names_the_file_to_examine_and_config_is_refused() {
    let bin = apache();
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), "event", &[], "");
    let c = conf_arg(&conf);
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--apache-config", &c]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("[x] worker or event MPM: event"), "{out}");
    assert!(out.contains("(2 configuration file(s) scanned)"), "{out}");
    // `--config` is opsd's job file elsewhere: refused, never silently the system's Apache.
    let (code, out, err) = doctor(&["--bin", bin.to_str().unwrap(), "--config", &c]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("--apache-config") && out.is_empty(),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}
