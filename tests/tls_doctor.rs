//! Tests of `opsd tls doctor` on the real binary against real web servers on 127.0.0.1:
//! Debian's nginx in the foreground (`util::nginx`) and apache2 with mod_ssl
//! (`util::apache`), each with its own configuration, serving certificates of a test PKI made
//! by the openssl CLI (`util::openssl`; its CA passed as `--ca-file`). Each setup gets the
//! doctor's verdict, the directive it says to write and its exit code. The parsers' own tests
//! are the library's (`src/tls/doctor/`).

use crate::util::apache::{mod_ssl, Apache};
use crate::util::nginx::Nginx;
use crate::util::openssl::Pki;
use crate::util::{free_port, wait_for, OPSD};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `opsd tls doctor ARGS --ca-file CA` and returns its output.
fn doctor(pki: &Pki, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(OPSD)
        .args(["tls", "doctor", "--probe-timeout", "20s", "--ca-file"])
        .arg(pki.path("ca.pem"))
        .args(args)
        .output()
        .expect("run opsd tls doctor")
}

/// stdout as text, and the exit code.
fn text(out: &Output) -> (String, i32) {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().expect("exited");
    (text, code)
}

/// `opsd tls doctor --nginx-conf CONF`.
fn doctor_nginx(pki: &Pki, nginx: &Nginx) -> (String, i32) {
    let conf = nginx.conf();
    text(&doctor(pki, &["--nginx-conf".as_ref(), conf.as_os_str()]))
}

/// A nginx TLS site on `{port}` serving `leaf` for shop.example.com, with `extra` inside.
fn nginx_site(pki: &Pki, leaf: &str, extra: &str) -> String {
    format!(
        "# the shop\nserver {{\n    listen 127.0.0.1:{{port}} ssl;\n    server_name shop.example.com;\n    \
         ssl_certificate {cert};\n    ssl_certificate_key {key};\n{extra}}}\n",
        cert = pki.path(&format!("{leaf}.pem")).display(),
        key = pki.path(&format!("{leaf}.key")).display(),
    )
}

#[test]
fn nginx_with_tls12_and_tls13_is_as_recommended() {
    let pki = Pki::new();
    let nginx = Nginx::start(
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        &nginx_site(&pki, "good", ""),
    );
    let (out, code) = doctor_nginx(&pki, &nginx);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TLS 1.3 can be on"), "{out}");
    assert!(out.contains("runs with: OpenSSL"), "{out}");
    assert!(
        out.contains("configured: TLS 1.3 on, TLS 1.2 on, legacy (SSLv3, TLS 1.0, 1.1) off"),
        "{out}"
    );
    assert!(
        out.contains("ssl_protocols TLSv1.2 TLSv1.3 (inherited from"),
        "{out}"
    );
    let probe = format!(
        "[ok] probe 127.0.0.1:{} sni=shop.example.com: ok",
        nginx.port
    );
    assert!(out.contains(&probe), "{out}");
    assert!(out.contains("VERDICT: as recommended"), "{out}");
}

#[test]
fn nginx_with_tls12_only_says_which_directive_to_add_where() {
    let pki = Pki::new();
    // Inherited from http {}: the fix is a line of the site's own, after its listen (line 3).
    let nginx = Nginx::start("  ssl_protocols TLSv1.2;", &nginx_site(&pki, "good", ""));
    let (out, code) = doctor_nginx(&pki, &nginx);
    assert_eq!(code, 1, "{out}");
    let fix = format!(
        "fix: add `ssl_protocols TLSv1.2 TLSv1.3;` at {}:4",
        nginx.site_conf().display()
    );
    assert!(out.contains(&fix), "{out}");
    assert!(
        out.contains(&format!(
            "(or change the one at {}:",
            nginx.conf().display()
        )),
        "{out}"
    );
    assert!(out.contains("[!] TLS 1.3 is not configured"), "{out}");
    assert!(out.contains("TLS 1.3 not offered"), "{out}");
}

#[test]
fn nginx_with_tls13_only_warns_that_older_browsers_are_locked_out() {
    let pki = Pki::new();
    let nginx = Nginx::start(
        "",
        &nginx_site(&pki, "good", "    ssl_protocols TLSv1.3;\n"),
    );
    let (out, code) = doctor_nginx(&pki, &nginx);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[!] TLS 1.2 is off: older browsers"), "{out}");
    let fix = format!(
        "fix: change `ssl_protocols TLSv1.2 TLSv1.3;` at {}:7",
        nginx.site_conf().display()
    );
    assert!(out.contains(&fix), "{out}");
    assert!(
        out.contains("TLS 1.2 off: older browsers cannot connect"),
        "{out}"
    );
}

/// An Apache with one TLS virtual host on a port of its own serving `cert` (a PEM file of
/// the PKI, leaf first) and `key`, with `SSLProtocol -all +TLSv1.2 +TLSv1.3`; its port.
fn apache_tls(pki: &Pki, cert: &str, key: &str) -> (Apache, u16) {
    let port = free_port();
    let apache = Apache::start_with(&format!(
        "{ssl}Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n  ServerName shop.example.com\n  \
         SSLEngine on\n  SSLProtocol -all +TLSv1.2 +TLSv1.3\n  SSLCertificateFile {cert}\n  \
         SSLCertificateKeyFile {key}\n</VirtualHost>\n",
        ssl = mod_ssl(),
        cert = pki.path(cert).display(),
        key = pki.path(key).display(),
    ));
    wait_for("Apache's TLS port", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (apache, port)
}

/// `opsd tls doctor --apache-conf CONF`.
fn doctor_apache(pki: &Pki, apache: &Apache) -> (String, i32) {
    text(&doctor(
        pki,
        &["--apache-conf".as_ref(), apache.conf().as_os_str()],
    ))
}

#[test]
fn apache_mod_ssl_with_tls12_and_tls13_is_as_recommended_in_json_too() {
    let pki = Pki::new();
    let (apache, port) = apache_tls(&pki, "good.pem", "good.key");
    let (out, code) = doctor_apache(&pki, &apache);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Apache/2.4"), "{out}");
    assert!(out.contains("runs with: OpenSSL"), "{out}");
    assert!(
        out.contains("SSLProtocol -all +TLSv1.2 +TLSv1.3 (at "),
        "{out}"
    );
    let probe = format!("[ok] probe 127.0.0.1:{port} sni=shop.example.com: ok");
    assert!(out.contains(&probe), "{out}");
    let conf = apache.conf();
    let json = doctor(
        &pki,
        &[
            "--apache-conf".as_ref(),
            conf.as_os_str(),
            "--json".as_ref(),
        ],
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("the JSON parses");
    assert_eq!(value["exit_code"], 0, "{value:#}");
    assert_eq!(json.status.code(), Some(0));
    let site = &value["servers"][0]["sites"][0];
    assert_eq!(site["site"]["names"][0], "shop.example.com", "{value:#}");
    assert_eq!(site["advice"]["tls13"], true, "{value:#}");
    assert_eq!(site["probes"][0]["verdict"], "ok", "{value:#}");
}

#[test]
fn apache_with_an_expired_certificate_is_to_change() {
    let pki = Pki::new();
    let (apache, _port) = apache_tls(&pki, "expired.pem", "expired.key");
    let (out, code) = doctor_apache(&pki, &apache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("as recommended\n"),
        "the configuration itself is fine: {out}"
    );
    assert!(out.contains("certificate expired"), "{out}");
}

#[test]
fn apache_with_a_hostname_mismatch_is_to_change() {
    let pki = Pki::new();
    let (apache, _port) = apache_tls(&pki, "wrong.pem", "wrong.key");
    let (out, code) = doctor_apache(&pki, &apache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hostname mismatch: the certificate is not valid for shop.example.com"),
        "{out}"
    );
}

#[test]
fn apache_with_an_intermediate_that_expires_first_names_it() {
    let pki = Pki::new();
    let full = [pki.path("chained.pem"), pki.path("inter.pem")]
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read pem"))
        .collect::<String>();
    std::fs::write(pki.path("fullchain.pem"), full).expect("write fullchain");
    let (apache, _port) = apache_tls(&pki, "fullchain.pem", "chained.key");
    let (out, code) = doctor_apache(&pki, &apache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("intermediate certificate \"CN=opsd test inter\" expires in"),
        "{out}"
    );
}

#[test]
fn a_configuration_it_cannot_read_is_exit_2_without_hanging() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A FIFO nobody writes to (reading it would block), and an include of a missing file.
    let fifo = d.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    std::fs::write(
        d.join("nginx.conf"),
        "http {\n  include fifo.conf;\n  include missing.conf;\n}\n",
    )
    .expect("write");
    let conf = d.join("nginx.conf");
    let (out, code) = text(&doctor(&pki, &["--nginx-conf".as_ref(), conf.as_os_str()]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("it is a FIFO, not a regular file"), "{out}");
    assert!(out.contains("missing.conf: cannot open it"), "{out}");
    assert!(out.contains("VERDICT: could not examine"), "{out}");
    let absent = Path::new("/nonexistent/apache2.conf");
    let (out, code) = text(&doctor(
        &pki,
        &["--apache-conf".as_ref(), absent.as_os_str()],
    ));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cannot read /nonexistent/apache2.conf"),
        "{out}"
    );
}

#[test]
fn a_listener_that_does_not_answer_is_exit_2_with_the_reason() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!("http {{\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_protocols TLSv1.2 TLSv1.3;\n  }}\n}}\n"),
    )
    .expect("write");
    let (out, code) = text(&doctor(&pki, &["--nginx-conf".as_ref(), conf.as_os_str()]));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("as recommended\n"),
        "the configuration is fine: {out}"
    );
    let probe = format!("[?] probe 127.0.0.1:{port}: connection refused");
    assert!(out.contains(&probe), "{out}");
}

#[test]
fn nginx_edited_but_not_reloaded_is_told_apart_by_the_probe() {
    let pki = Pki::new();
    let nginx = Nginx::start(
        "",
        &nginx_site(&pki, "good", "    ssl_protocols TLSv1.2;\n"),
    );
    // The operator fixes the file but forgets `nginx -s reload`.
    let fixed = std::fs::read_to_string(nginx.site_conf())
        .expect("read site")
        .replace("ssl_protocols TLSv1.2;", "ssl_protocols TLSv1.2 TLSv1.3;");
    std::fs::write(nginx.site_conf(), fixed).expect("write site");
    let (out, code) = doctor_nginx(&pki, &nginx);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("as recommended\n"), "the file is fixed: {out}");
    assert!(
        out.contains("(TLS 1.3 configured on but not offered: the server not reloaded since"),
        "{out}"
    );
}
