//! A real `openssl s_server` on a free 127.0.0.1 port, and the certificates it serves, made by
//! the openssl CLI: [`ca`] and [`Cert`] for any test's own (fleet's etcd, the tls tests' odd
//! certificates, the tls_probe bench), [`Pki`] for the tls tests' usual set. A missing openssl
//! fails the test with the install line. It uses nothing else of `tests/util`, so a bench can
//! include it with `#[path = "../tests/util/openssl.rs"] mod openssl;`.

use opsd::tls::{Target, Trust};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// An EC P-256 key, no passphrase: the key of every certificate but [`RSA`]'s.
pub const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];
/// An RSA 2048 key, no passphrase.
pub const RSA: [&str; 3] = ["-newkey", "rsa:2048", "-nodes"];

/// Makes a self-signed CA with an [`EC`] key in `dir`: `NAME.pem`, `NAME.key`.
pub fn ca(dir: &Path, name: &str, subject: &str, days: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-days", days, "-subj", subject];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &pem]);
    openssl(dir, &args);
}

/// A certificate to make in a directory, signed by a CA there (see [`Cert::make`]).
pub struct Cert<'a> {
    /// Its files: `NAME.key`, `NAME.csr`, `NAME.pem`.
    pub name: &'a str,
    /// Its subject, e.g. `/CN=leaf`.
    pub subject: &'a str,
    /// Its key: [`EC`] or [`RSA`].
    pub key: &'a [&'a str],
    /// The CA that signs it: `ISSUER.pem`, `ISSUER.key`.
    pub issuer: &'a str,
    /// Days valid (`-1`: expired yesterday).
    pub days: &'a str,
    /// Its serial number.
    pub serial: &'a str,
    /// The extensions file and the section of it to apply.
    pub extensions: (&'a str, &'a str),
}

impl Cert<'_> {
    /// Makes the key, the request and the certificate in `dir`.
    pub fn make(&self, dir: &Path) {
        let name = self.name;
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut req = vec!["req", "-new", "-subj", self.subject];
        req.extend(self.key);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        let (ca_pem, ca_key) = (
            format!("{}.pem", self.issuer),
            format!("{}.key", self.issuer),
        );
        let (extfile, section) = self.extensions;
        openssl(
            dir,
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
                self.days,
                "-set_serial",
                self.serial,
                "-extfile",
                extfile,
                "-extensions",
                section,
                "-out",
                &pem,
            ],
        );
    }
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
        ca(d, "ca", "/CN=opsd test CA", "3650");
        let sign = |name: &str, key: &[&str], issuer: &str, days: &str, ext: &str, serial: &str| {
            Cert {
                name,
                subject: &format!("/CN=opsd test {name}"),
                key,
                issuer,
                days,
                serial,
                extensions: ("ext.cnf", ext),
            }
            .make(d);
        };
        sign("good", &RSA, "ca", "90", "leaf", "0x1234");
        sign("inter", &EC, "ca", "10", "inter", "0x2001");
        sign("chained", &EC, "inter", "365", "leaf", "0x2002");
        sign("expired", &EC, "ca", "-1", "leaf", "0x2003");
        sign("wrong", &EC, "ca", "90", "wrong", "0x2004");
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
    /// Starts `openssl s_server` serving the leaf `leaf` of `pki` (with `chain` if given) and
    /// `flags`; see [`Server::serve`].
    pub fn start(pki: &Pki, leaf: &str, chain: Option<&str>, flags: &[&str]) -> Server {
        let chain = chain.map(|c| pki.path(&format!("{c}.pem")));
        Server::serve(
            &pki.path(&format!("{leaf}.pem")),
            &pki.path(&format!("{leaf}.key")),
            chain.as_deref(),
            flags,
            &pki.path(""),
        )
    }

    /// Starts `openssl s_server -www` with `cert` and `key` (and `chain`) and `flags`, its
    /// stderr in `log_dir`, and waits until it accepts connections (another port is tried when
    /// the one picked was taken meanwhile).
    pub fn serve(
        cert: &Path,
        key: &Path,
        chain: Option<&Path>,
        flags: &[&str],
        log_dir: &Path,
    ) -> Server {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let log = log_dir.join(format!("s_server-{port}.log"));
            let mut cmd = Command::new("openssl");
            cmd.arg("s_server")
                .arg("-accept")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(cert)
                .arg("-key")
                .arg(key)
                .args(["-www", "-quiet"])
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("s_server log"));
            if let Some(chain) = chain {
                cmd.arg("-cert_chain").arg(chain);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"));
            let mut server = Server { child, port };
            // Until it listens or exits, within LISTEN.
            let deadline = Instant::now() + LISTEN;
            let listening = loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if matches!(server.child.try_wait(), Ok(Some(_))) || Instant::now() >= deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
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
