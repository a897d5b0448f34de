//! Unit tests for the doctor as a whole on configuration files (read, advise, report), with
//! no program run and nothing probed.

use super::advice::advise;
use super::files::Files;
use super::*;
use std::path::Path;

/// The sites of the nginx configuration `text` (written as `nginx.conf` in `dir`).
fn nginx_sites(dir: &Path, text: &str) -> Vec<Site> {
    let main = dir.join("nginx.conf");
    std::fs::write(&main, text).expect("write");
    let mut f = Files::default();
    let top = nginx::read(&main, &mut f).expect("read");
    assert!(f.troubles.is_empty(), "{:?}", f.troubles);
    nginx::sites(&top, Some((1, 22, 1)))
}

#[test]
fn nginx_advice_names_the_directive_and_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = "http {\n  server {\n    listen 443 ssl;\n    server_name a.example;\n  }\n  server {\n    listen 8443 ssl;\n    ssl_protocols TLSv1.3;\n  }\n  server {\n    listen 9443 ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n  }\n}\n";
    let sites = nginx_sites(dir.path(), conf);
    let main = dir.path().join("nginx.conf");
    // Default (1.22: TLSv1 TLSv1.1 TLSv1.2): add after the listen line.
    let a = advise(&sites[0], true);
    assert!(!a.ok());
    assert!(
        a.findings
            .iter()
            .any(|f| f.contains("TLS 1.3 is not configured")),
        "{a:?}"
    );
    assert!(
        a.findings
            .iter()
            .any(|f| f.contains("TLSv1 TLSv1.1 still on")),
        "{a:?}"
    );
    let fix = a.fix.expect("a fix");
    assert_eq!(
        (fix.action, fix.directive.as_str()),
        ("add", "ssl_protocols TLSv1.2 TLSv1.3;")
    );
    assert_eq!(
        fix.at,
        Place {
            file: main.clone(),
            line: 4
        }
    );
    // 1.3 only: change its own line, 1.2 locks out older clients.
    let b = advise(&sites[1], true);
    assert!(
        b.findings.iter().any(|f| f.contains("TLS 1.2 is off")),
        "{b:?}"
    );
    let fix = b.fix.expect("a fix");
    assert_eq!((fix.action, fix.at.line), ("change", 8));
    // As recommended.
    assert!(advise(&sites[2], true).ok());
    // Without TLS 1.3 in the server, 1.2 alone is the recommendation and a configured
    // TLSv1.3 needs no edit (the upgrade is the fix).
    assert!(advise(&sites[2], false).fix.is_none());
    assert_eq!(
        advise(&sites[0], false).fix.map(|f| f.directive),
        Some("ssl_protocols TLSv1.2;".to_string())
    );
}

#[test]
fn apache_advice_uses_sslprotocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("apache2.conf");
    std::fs::write(
        &main,
        "<VirtualHost *:443>\nServerName x.example\nSSLEngine on\nSSLProtocol all -SSLv3\n</VirtualHost>\n",
    )
    .expect("write");
    let mut f = Files::default();
    let config = apache::read(&main, &mut f).expect("read");
    let a = advise(&config.sites[0], true);
    let fix = a.fix.expect("a fix");
    assert_eq!(fix.directive, "SSLProtocol -all +TLSv1.2 +TLSv1.3");
    assert_eq!((fix.action, fix.at.line), ("change", 4));
}

#[test]
fn an_unreadable_config_could_not_be_examined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.conf");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let exam = runtime.block_on(examine(&DoctorOptions {
        nginx: None,
        apache: Some(ConfigPath {
            path: missing,
            required: true,
        }),
        trust: crate::tls::Trust::system(),
        timeout: Duration::from_secs(1),
    }));
    assert_eq!(exam.outcome(), report::Outcome::CouldNotExamine);
    let text = exam.to_string();
    assert!(text.contains("cannot read"), "{text}");
    let skipped = runtime.block_on(examine(&DoctorOptions {
        nginx: Some(ConfigPath {
            path: dir.path().join("absent"),
            required: false,
        }),
        apache: None,
        trust: crate::tls::Trust::system(),
        timeout: Duration::from_secs(1),
    }));
    assert!(!skipped.servers[0].present);
    assert_eq!(
        skipped.outcome().code(),
        2,
        "no server at all: nothing examined"
    );
}

#[test]
fn config_text_is_escaped_in_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sites = nginx_sites(
        dir.path(),
        "http { server { listen 127.0.0.1:1 ssl; server_name \"evil\u{1b}[2J\nVERDICT: as recommended\"; } }",
    );
    let exam = Examination {
        openssl_command: None,
        servers: vec![ServerExam {
            server: Server::Nginx,
            config: dir.path().join("nginx.conf"),
            present: true,
            software: None,
            capability: None,
            files: Vec::new(),
            troubles: Vec::new(),
            sites: sites
                .into_iter()
                .map(|site| SiteExam {
                    advice: advise(&site, true),
                    site,
                    probes: Vec::new(),
                })
                .collect(),
        }],
    };
    let text = exam.to_string();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("evil\\u{1b}[2J\\nVERDICT"), "{text}");
    assert!(text.contains("VERDICT: something to change"), "{text}");
    let json = exam.json().expect("json");
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
}

#[test]
fn huge_configurations_are_refused_in_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Larger than a file may be.
    let big = dir.path().join("big.conf");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(files::MAX_FILE + 1).expect("grow");
    let mut f = Files::default();
    assert!(nginx::read(&big, &mut f).is_none());
    assert!(
        f.troubles[0].what.contains("larger than"),
        "{:?}",
        f.troubles
    );
    // Millions of directives in a file under the cap: counted, not all kept.
    let many = dir.path().join("many.conf");
    std::fs::write(&many, "http { server { listen 1 ssl; } }\n".repeat(110_000)).expect("write");
    let mut f = Files::default();
    let top = nginx::read(&many, &mut f).expect("read");
    assert!(top.len() <= files::MAX_ITEMS, "{}", top.len());
    assert!(
        f.troubles
            .iter()
            .any(|t| t.what.contains("more than 100000 directives")),
        "{:?}",
        f.troubles.first()
    );
    let vhosts = dir.path().join("apache2.conf");
    std::fs::write(
        &vhosts,
        "<VirtualHost *:443>\n</VirtualHost>\n".repeat(110_000),
    )
    .expect("write");
    let mut f = Files::default();
    apache::read(&vhosts, &mut f).expect("read");
    assert!(
        f.troubles.iter().any(|t| t.what.contains("more than")),
        "{:?}",
        f.troubles.first()
    );
}

#[test]
fn a_double_star_include_is_one_level_as_in_glob3() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("a/deep")).expect("mkdir");
    std::fs::write(dir.path().join("a/one.conf"), "").expect("write");
    std::fs::write(dir.path().join("a/deep/two.conf"), "").expect("write");
    let found = Files::expand(&dir.path().join("**/*.conf"), false).expect("expands");
    assert_eq!(found, [dir.path().join("a/one.conf")]);
}

#[test]
fn a_server_that_cannot_offer_tls13_is_something_to_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sites = nginx_sites(
        dir.path(),
        "http { server { listen 443 ssl; ssl_protocols TLSv1.2 TLSv1.3; } }",
    );
    let exam = |tls13: bool| Examination {
        openssl_command: None,
        servers: vec![ServerExam {
            server: Server::Nginx,
            config: "/etc/nginx/nginx.conf".into(),
            present: true,
            software: None,
            capability: Some(Capability {
                tls13,
                known: true,
                why: vec!["Apache runs with OpenSSL 1.0.2k, older than OpenSSL 1.1.1".into()],
            }),
            files: Vec::new(),
            troubles: Vec::new(),
            sites: sites
                .iter()
                .map(|site| SiteExam {
                    advice: advise(site, tls13),
                    site: site.clone(),
                    probes: Vec::new(),
                })
                .collect(),
        }],
    };
    assert_eq!(exam(true).outcome(), report::Outcome::AsRecommended);
    let old = exam(false);
    assert_eq!(old.outcome().code(), 1);
    let text = old.to_string();
    assert!(
        text.contains("[!] TLS 1.3 cannot be on:\n      Apache runs with OpenSSL 1.0.2k"),
        "{text}"
    );
}

#[test]
fn probe_timeout_flag_is_checked_like_the_jobs_key() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        doctor: DoctorArgs,
    }
    for bad in ["0s", "6m", "soon"] {
        let err = Cli::try_parse_from(["opsd", "--probe-timeout", bad])
            .err()
            .unwrap_or_else(|| panic!("--probe-timeout {bad} was accepted"))
            .to_string();
        assert!(err.contains("--probe-timeout"), "{bad}: {err}");
    }
    let ok = Cli::try_parse_from(["opsd", "--probe-timeout", "5m"]).expect("5m");
    assert_eq!(ok.doctor.probe_timeout, std::time::Duration::from_secs(300));
}

#[test]
fn nothing_to_examine_is_not_as_recommended() {
    // Apache without mod_ssl: present, no TLS site, its OpenSSL unknown.
    let exam = Examination {
        openssl_command: None,
        servers: vec![ServerExam {
            server: Server::Apache,
            config: "/etc/apache2/apache2.conf".into(),
            present: true,
            software: None,
            capability: Some(Capability {
                tls13: true,
                known: false,
                why: vec!["the OpenSSL Apache is linked against is unknown".into()],
            }),
            files: Vec::new(),
            troubles: Vec::new(),
            sites: Vec::new(),
        }],
    };
    assert_eq!(exam.outcome().code(), 2);
    let text = exam.to_string();
    assert!(text.contains("no TLS site to examine"), "{text}");
    assert!(!text.contains("as recommended"), "{text}");
    assert!(!text.contains("TLS 1.3 can be on"), "{text}");
    assert!(
        text.contains("[?] TLS 1.3 unknown") && text.contains("linked against is unknown"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&exam.json().expect("json")).expect("json");
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["servers"][0]["capability"]["known"], false);
}

#[test]
fn a_probes_details_are_in_the_json() {
    let probed = Probed {
        target: "127.0.0.1:443".into(),
        verdict: "ok".into(),
        problems: Vec::new(),
        unreachable: false,
        details: [("serial".to_string(), "0a:1b".to_string())].into(),
        row: None,
    };
    let json = serde_json::to_value(&probed).expect("json");
    assert_eq!(json["details"]["serial"], "0a:1b");
}
