//! A real `openssl s_server` on a free 127.0.0.1 port, and the test PKI it serves: a CA, an
//! intermediate and leaves made in a temporary directory by the openssl CLI. A missing openssl
//! fails the test with the install line.

use super::{free_port, poll_until};
use opsd::tls::{Target, Trust};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The install line a test prints when openssl is missing.
const INSTALL: &str = "install it with `apt-get install openssl` (.ci/setup)";

/// How long `s_server` may take to listen.
const LISTEN: Duration = Duration::from_secs(20);

/// Runs `openssl` with `args` in `dir`; fails the test with the install line when it is missing.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extensions of the certificates the tests make.
const EXTENSIONS: &str = "\
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,DNS:shop.example.com,IP:127.0.0.1
[wrong]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example.net
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
";

/// A test PKI in a temporary directory: a CA, an intermediate expiring in 10 days, and leaves.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the CA (`ca.pem`, "opsd test CA"), intermediate (`inter.pem`) and leaves: `good`
    /// (RSA 2048, by the CA, 90 days), `chained` (by the intermediate, 365 days), `expired`
    /// (a day ago), `wrong` (for other.example.net only). Leaves but `wrong` are valid for
    /// localhost, shop.example.com and 127.0.0.1.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path();
        std::fs::write(d.join("ext.cnf"), EXTENSIONS).expect("write ext.cnf");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "3650"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=opsd test CA",
        ]);
        openssl(d, &ca);
        let sign = |name: &str, key: &[&str], issuer: &str, days: &str, ext: &str, serial: &str| {
            let csr = format!("{name}.csr");
            let keyfile = format!("{name}.key");
            let subj = format!("/CN=opsd test {name}");
            let mut req = vec!["req", "-new", "-nodes"];
            req.extend(key);
            req.extend(["-keyout", &keyfile, "-out", &csr, "-subj", &subj]);
            openssl(d, &req);
            let (ca_pem, ca_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
            let out = format!("{name}.pem");
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_pem,
                    "-CAkey",
                    &ca_key,
                    "-days",
                    days,
                    "-set_serial",
                    serial,
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    &out,
                ],
            );
        };
        let rsa = ["-newkey", "rsa:2048"];
        sign("good", &rsa, "ca", "90", "leaf", "0x1234");
        sign("inter", &ec, "ca", "10", "inter", "0x2001");
        sign("chained", &ec, "inter", "365", "leaf", "0x2002");
        sign("expired", &ec, "ca", "-1", "leaf", "0x2003");
        sign("wrong", &ec, "ca", "90", "wrong", "0x2004");
        Pki { dir }
    }

    /// A file of the PKI.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Trust in the test CA alone.
    pub fn trust(&self) -> Trust {
        Trust::only_ca_file(&self.path("ca.pem")).expect("test CA loads")
    }
}

/// An `openssl s_server` on a loopback port, killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `openssl s_server` serving the leaf `leaf` (with `chain` if given) and `flags`,
    /// and waits until it accepts connections (another port is tried when the one picked was
    /// taken meanwhile).
    pub fn start(pki: &Pki, leaf: &str, chain: Option<&str>, flags: &[&str]) -> Server {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = pki.path(&format!("s_server-{port}.log"));
            let mut cmd = Command::new("openssl");
            cmd.arg("s_server")
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(pki.path(&format!("{leaf}.pem")))
                .arg("-key")
                .arg(pki.path(&format!("{leaf}.key")))
                .args(["-www", "-quiet"])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("s_server log"));
            if let Some(chain) = chain {
                cmd.arg("-cert_chain")
                    .arg(pki.path(&format!("{chain}.pem")));
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"));
            let mut server = Server { child, port };
            let listening = poll_until(LISTEN, || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    || matches!(server.child.try_wait(), Ok(Some(_)))
            });
            if let Ok(Some(status)) = server.child.try_wait() {
                last_error = format!(
                    "s_server exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                continue; // the port was taken meanwhile: try another one
            }
            assert!(
                listening,
                "s_server did not listen on {port} within {LISTEN:?}"
            );
            return server;
        }
        panic!("s_server did not start: {last_error}");
    }

    /// The target `127.0.0.1:PORT sni=NAME`.
    pub fn target(&self, sni: &str) -> Target {
        Target::parse(&format!("127.0.0.1:{} sni={sni}", self.port)).expect("target parses")
    }
}
