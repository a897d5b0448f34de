//! What the web servers run: the nginx and Apache versions (`nginx -V`, `apache2 -v`), the
//! OpenSSL each is linked against (the `libssl`/`libcrypto` that `ldd` of nginx or of
//! mod_ssl names, and the version string inside that libcrypto; nginx's own "built with /
//! running with" line too), and the `openssl` command's version, which may differ. From
//! these: whether TLS 1.3 can be on at all (OpenSSL >= 1.1.1, nginx >= 1.13.0, Apache >=
//! 2.4.37). Every call is bounded in time and output; parsing is pure and tested apart.

use super::site::Server;
use crate::process::call::CallError;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one call (`nginx -V`, `ldd`, ...) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest libcrypto searched for its version string.
const MAX_LIBRARY: u64 = 64 * 1024 * 1024;
/// Directories searched for the programs besides `$PATH`.
const DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/bin",
    "/usr/local/bin",
];
/// The oldest OpenSSL with TLS 1.3.
pub const OPENSSL_TLS13: (u32, u32, u32) = (1, 1, 1);
/// The oldest nginx with TLS 1.3.
pub const NGINX_TLS13: (u32, u32, u32) = (1, 13, 0);
/// The oldest Apache with TLS 1.3.
pub const APACHE_TLS13: (u32, u32, u32) = (2, 4, 37);

/// A version as printed and as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionText {
    /// As printed, e.g. `nginx/1.22.1` or `OpenSSL 3.0.19 27 Jan 2026`.
    pub text: String,
    /// The numbers, e.g. `(3, 0, 19)`.
    pub numbers: (u32, u32, u32),
}

/// One web server's software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Software {
    /// Which server.
    pub server: Server,
    /// The program asked (`None`: not found).
    pub program: Option<PathBuf>,
    /// Its version.
    pub version: Option<VersionText>,
    /// The OpenSSL it was built with (nginx says so).
    pub built_with: Option<String>,
    /// The libssl it is linked against (from `ldd`).
    pub libssl: Option<PathBuf>,
    /// The OpenSSL it runs with: that library's version.
    pub linked: Option<VersionText>,
    /// What could not be found out, in words.
    pub unknown: Vec<String>,
}

/// Whether TLS 1.3 can be on, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// True when every part is new enough (or unknown parts are presumed so: `why` says).
    pub tls13: bool,
    /// False when the OpenSSL it runs with is unknown (and nothing known rules TLS 1.3 out):
    /// the report then says TLS 1.3 "unknown", not "can be on".
    pub known: bool,
    /// Each reason it cannot, or what is unknown.
    pub why: Vec<String>,
}

impl Software {
    /// Whether this server can speak TLS 1.3.
    pub fn capability(&self) -> Capability {
        let (minimum, name) = match self.server {
            Server::Nginx => (NGINX_TLS13, "nginx"),
            Server::Apache => (APACHE_TLS13, "Apache"),
        };
        let mut why = Vec::new();
        let mut tls13 = true;
        let dotted = |v: (u32, u32, u32)| format!("{}.{}.{}", v.0, v.1, v.2);
        match &self.version {
            Some(v) if v.numbers < minimum => {
                tls13 = false;
                why.push(format!(
                    "{name} {} is older than {} (the first with TLS 1.3)",
                    dotted(v.numbers),
                    dotted(minimum)
                ));
            }
            Some(_) => {}
            None => why.push(format!("{name}'s version is unknown")),
        }
        // nginx decides at build time whether it knows TLS 1.3 (OpenSSL's TLS1_3_VERSION):
        // built against an older OpenSSL, it cannot offer 1.3 whatever it runs with.
        let built = self
            .built_with
            .as_deref()
            .and_then(|b| numbers_after(b, "OpenSSL "));
        if let (Some(v), Some(text)) = (built, &self.built_with) {
            if v < OPENSSL_TLS13 {
                tls13 = false;
                why.push(format!(
                    "{name} was built with {text}, older than OpenSSL 1.1.1: rebuild {name} \
                     against OpenSSL 1.1.1 or later (running with a newer one is not enough)"
                ));
            }
        }
        match &self.linked {
            Some(v) if v.numbers < OPENSSL_TLS13 => {
                tls13 = false;
                why.push(format!(
                    "{name} runs with {}, older than OpenSSL 1.1.1 (the first with TLS 1.3): \
                     upgrade OpenSSL, then rebuild or re-link {name} against it",
                    v.text
                ));
            }
            Some(_) => {}
            None => why.push(format!("the OpenSSL {name} is linked against is unknown")),
        }
        let known = !tls13 || self.linked.is_some();
        Capability { tls13, known, why }
    }
}

/// The first `major.minor.patch` in `text` after `prefix` (`nginx/`, `Apache/`, `OpenSSL `).
pub fn numbers_after(text: &str, prefix: &str) -> Option<(u32, u32, u32)> {
    let at = text.find(prefix)? + prefix.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// `nginx -V`'s version line and its "built with OpenSSL X (running with OpenSSL Y)".
pub fn parse_nginx(v: &str) -> (Option<VersionText>, Option<String>, Option<VersionText>) {
    let version = v
        .lines()
        .find_map(|l| l.trim().strip_prefix("nginx version: "))
        .and_then(|t| {
            numbers_after(t, "nginx/").map(|numbers| VersionText {
                text: t.trim().to_string(),
                numbers,
            })
        });
    let built = v.lines().find_map(|l| l.trim().strip_prefix("built with "));
    let (built_with, running) = match built {
        Some(b) => match b.split_once(" (running with ") {
            Some((built, running)) => {
                let running = running.trim_end_matches(')').to_string();
                let numbers = numbers_after(&running, "OpenSSL ");
                (
                    Some(built.to_string()),
                    numbers.map(|numbers| VersionText {
                        text: running,
                        numbers,
                    }),
                )
            }
            None => (Some(b.to_string()), None),
        },
        None => (None, None),
    };
    (version, built_with, running)
}

/// `apache2 -v`'s `Server version: Apache/2.4.71 (Debian)`.
pub fn parse_apache(v: &str) -> Option<VersionText> {
    let text = v
        .lines()
        .find_map(|l| l.trim().strip_prefix("Server version:"))?
        .trim();
    numbers_after(text, "Apache/").map(|numbers| VersionText {
        text: text.to_string(),
        numbers,
    })
}

/// The `libssl` and `libcrypto` paths in `ldd`'s output.
pub fn parse_ldd(out: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let find = |lib: &str| {
        out.lines().find_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            if !name.starts_with(lib) {
                return None;
            }
            rest.split_whitespace().next().map(PathBuf::from)
        })
    };
    (find("libssl.so"), find("libcrypto.so"))
}

/// The OpenSSL version string (`OpenSSL 3.0.19 27 Jan 2026`) inside a libcrypto's bytes.
pub fn library_version(bytes: &[u8]) -> Option<VersionText> {
    let re = regex::bytes::Regex::new(
        r"(?:OpenSSL|LibreSSL) \d+\.\d+\.\d+[a-z]{0,2}(?: +\d+ [A-Z][a-z]{2} \d{4})?",
    )
    .ok()?;
    // The one with a date is OpenSSL_version()'s; another mention is only a fallback.
    let found: Vec<String> = re
        .find_iter(bytes)
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .take(64)
        .collect();
    let text = found
        .iter()
        .find(|t| t.split_whitespace().count() > 2)
        .or(found.first())?
        .clone();
    let numbers = numbers_after(&text, "SSL ")?;
    Some(VersionText { text, numbers })
}

/// The first of `names` in `$PATH` or the usual sbin and bin directories.
pub fn find_program(names: &[&str]) -> Option<PathBuf> {
    crate::process::call::find_program(names, DIRS)
}

/// Runs `program args` ([`crate::process::call`]: clean environment, bounded in time and
/// output) and returns stdout and stderr together (nginx prints `-V` on stderr), or why not.
pub async fn call(program: &Path, args: &[&str]) -> Result<String, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let no_env: [(&str, &str); 0] = [];
    let out = crate::process::call::call(program, args, no_env, CALL_TIMEOUT)
        .await
        .map_err(|e| match e {
            CallError::Timeout(_) => format!("`{shown}` {e}"),
            CallError::Spawn(_) => format!("cannot run `{shown}`: {e}"),
        })?;
    let mut text = out.stdout;
    text.push_str(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            crate::escape::cut(text.trim(), 300, crate::escape::Cut::Middle)
        ));
    }
    Ok(text)
}

/// The libssl and OpenSSL version `object` (a program or module) is linked against.
async fn linked(
    object: &Path,
    unknown: &mut Vec<String>,
) -> (Option<PathBuf>, Option<VersionText>) {
    let ldd = match call(Path::new("ldd"), &[&object.to_string_lossy()]).await {
        Ok(out) => out,
        Err(e) => {
            unknown.push(e);
            return (None, None);
        }
    };
    let (libssl, libcrypto) = parse_ldd(&ldd);
    let Some(libcrypto) = libcrypto else {
        unknown.push(format!(
            "{} is not linked against libcrypto (ldd)",
            object.display()
        ));
        return (libssl, None);
    };
    let path = libcrypto.clone();
    let read =
        tokio::task::spawn_blocking(move || crate::bounded_read::read(&path, MAX_LIBRARY)).await;
    match read {
        Ok(Ok(bytes)) => {
            let version = library_version(&bytes);
            if version.is_none() {
                unknown.push(format!("no version string in {}", libcrypto.display()));
            }
            (libssl, version)
        }
        Ok(Err(e)) => {
            unknown.push(format!("{}: {e}", libcrypto.display()));
            (libssl, None)
        }
        Err(e) => {
            unknown.push(format!("{}: {e}", libcrypto.display()));
            (libssl, None)
        }
    }
}

/// nginx's software: `nginx -V`, then `ldd nginx`.
pub async fn nginx() -> Software {
    let mut sw = Software {
        server: Server::Nginx,
        program: find_program(&["nginx"]),
        version: None,
        built_with: None,
        libssl: None,
        linked: None,
        unknown: Vec::new(),
    };
    let Some(program) = sw.program.clone() else {
        sw.unknown
            .push("no nginx program found in $PATH or /usr/sbin".to_string());
        return sw;
    };
    match call(&program, &["-V"]).await {
        Ok(out) => {
            let (version, built, running) = parse_nginx(&out);
            (sw.version, sw.built_with) = (version, built);
            sw.linked = running;
        }
        Err(e) => sw.unknown.push(e),
    }
    let (libssl, linked) = linked(&program, &mut sw.unknown).await;
    sw.libssl = libssl;
    if linked.is_some() {
        sw.linked = linked;
    }
    sw
}

/// Apache's software: `apache2 -v` (or `httpd -v`), then `ldd` of `mod_ssl` (the module the
/// configuration loads).
pub async fn apache(mod_ssl: Option<&Path>) -> Software {
    let mut sw = Software {
        server: Server::Apache,
        program: find_program(&["apache2", "httpd"]),
        version: None,
        built_with: None,
        libssl: None,
        linked: None,
        unknown: Vec::new(),
    };
    match sw.program.clone() {
        None => sw
            .unknown
            .push("no apache2 or httpd program found in $PATH or /usr/sbin".to_string()),
        Some(program) => match call(&program, &["-v"]).await {
            Ok(out) => sw.version = parse_apache(&out),
            Err(e) => sw.unknown.push(e),
        },
    }
    match mod_ssl {
        Some(module) => {
            let (libssl, linked) = linked(module, &mut sw.unknown).await;
            (sw.libssl, sw.linked) = (libssl, linked);
        }
        None => sw
            .unknown
            .push("the configuration loads no ssl_module (mod_ssl)".to_string()),
    }
    sw
}

/// `openssl version`'s line, `None` when there is no `openssl` program.
pub async fn openssl_command() -> Option<String> {
    let program = find_program(&["openssl"])?;
    call(&program, &["version"])
        .await
        .ok()
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_v_says_built_and_running() {
        let v = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.22 25 Aug 2026 (running with OpenSSL 1.1.0l  10 Sep 2019)\nTLS SNI support enabled\n";
        let (version, built, running) = parse_nginx(v);
        assert_eq!(version.map(|v| v.numbers), Some((1, 22, 1)));
        assert_eq!(built.as_deref(), Some("OpenSSL 3.0.22 25 Aug 2026"));
        let running = running.expect("running with");
        assert_eq!(running.numbers, (1, 1, 0));
        let sw = Software {
            server: Server::Nginx,
            program: None,
            version: parse_nginx(v).0,
            built_with: None,
            libssl: None,
            linked: Some(running),
            unknown: Vec::new(),
        };
        let cap = sw.capability();
        assert!(!cap.tls13);
        assert!(cap.why[0].contains("re-link nginx"), "{cap:?}");
        assert_eq!(
            parse_nginx("nginx version: nginx/1.12.2\nbuilt with OpenSSL 1.1.1k\n").2,
            None
        );
        let v = "nginx version: nginx/1.14.0\nbuilt with OpenSSL 1.1.0g  2 Nov 2017 (running with OpenSSL 1.1.1w  11 Sep 2023)\n";
        let (version, built_with, linked) = parse_nginx(v);
        let rebuilt = Software {
            server: Server::Nginx,
            program: None,
            version,
            built_with,
            libssl: None,
            linked,
            unknown: Vec::new(),
        }
        .capability();
        assert!(!rebuilt.tls13, "{rebuilt:?}");
        assert!(rebuilt.why[0].contains("rebuild nginx"), "{rebuilt:?}");
    }

    #[test]
    fn apache_and_ldd_and_library() {
        let a = parse_apache("Server version: Apache/2.4.29 (Ubuntu)\nServer built: x\n")
            .expect("version");
        assert_eq!(a.numbers, (2, 4, 29));
        let (ssl, crypto) = parse_ldd("\tlinux-vdso.so.1 (0x7ff)\n\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x7f)\n\tlibcrypto.so.3 => /lib/libcrypto.so.3 (0x7e)\n");
        assert_eq!(
            ssl,
            Some(PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"))
        );
        assert_eq!(crypto, Some(PathBuf::from("/lib/libcrypto.so.3")));
        let lib = b"\0\0OpenSSL 1.0.0 ref\0OpenSSL 1.1.1w  11 Sep 2023\0";
        let v = library_version(lib).expect("found");
        assert_eq!(
            (v.text.as_str(), v.numbers),
            ("OpenSSL 1.1.1w  11 Sep 2023", (1, 1, 1))
        );
    }
}
