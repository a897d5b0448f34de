//! Apache's configuration as httpd reads it: lines (with `\` continuations, `#` comment
//! lines, `"..."` arguments), `Include` / `IncludeOptional` (globs and directories, relative
//! to `ServerRoot`) read in place, `<IfModule>`/`<IfDefine>`/`<IfVersion>` taken as true,
//! then every `<VirtualHost>` with `SSLEngine on` as a [`Site`], its `SSLProtocol` and
//! `SSLCipherSuite` its own, else the global ones, else mod_ssl's default. Also the module
//! file `LoadModule ssl_module` names, whose OpenSSL the doctor looks up. Reading is bounded
//! ([`super::files`]); nothing is run.

use super::files::Files;
use super::protocols::Protocols;
use super::site::{Listen, Place, Server, Setting, Site, Source};
use std::path::{Path, PathBuf};

/// Sections read as if their condition held.
const TRANSPARENT: &[&str] = &["ifmodule", "ifdefine", "ifversion", "ifdirective", "iffile"];
/// mod_ssl's default `SSLCipherSuite` (OpenSSL's own default list).
const DEFAULT_CIPHERS: &str = "DEFAULT (OpenSSL's list)";

/// One directive of an Apache configuration.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    /// The name, lower case (`sslprotocol`); sections as `<virtualhost` and `</virtualhost`.
    name: String,
    /// The arguments, unquoted.
    args: Vec<String>,
    /// Where it is.
    at: Place,
}

/// What [`read`] found in a configuration.
#[derive(Debug, Default)]
pub struct Config {
    /// The TLS sites.
    pub sites: Vec<Site>,
    /// The file `LoadModule ssl_module` loads, resolved against `ServerRoot`.
    pub mod_ssl: Option<PathBuf>,
}

/// Splits one logical line into words as `ap_getword_conf` does (double or single quotes
/// group, `\"` inside double quotes is a quote).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            while let Some(n) = chars.next() {
                if n == '\\' && chars.peek() == Some(&c) {
                    word.push(c);
                    chars.next();
                } else if n == c {
                    break;
                } else {
                    word.push(n);
                }
            }
        } else {
            while let Some(&n) = chars.peek() {
                if n.is_whitespace() {
                    break;
                }
                word.push(n);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

/// Each directive of one file's text to `each`, continuations joined, comments dropped (one
/// at a time: a huge file is never held as a list of lines).
fn lines(file: &Path, text: &str, mut each: impl FnMut(Line)) {
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_suffix('>')
            .filter(|_| line.starts_with('<'))
            .unwrap_or(line);
        let mut w = words(line);
        if w.is_empty() {
            continue;
        }
        let name = w.remove(0).to_ascii_lowercase();
        each(Line {
            name,
            args: w,
            at: Place {
                file: file.to_path_buf(),
                line: start,
            },
        });
    }
}

/// The reader's state across files: the root, the section stack and what was found.
struct Reader<'a> {
    /// The bounded file reader and its troubles.
    files: &'a mut Files,
    /// `ServerRoot`: relative includes and modules are below it.
    root: PathBuf,
    /// Open sections, lower case, without `<`.
    sections: Vec<String>,
    /// The virtual host being read.
    vhost: Option<VHost>,
    /// Every virtual host read.
    vhosts: Vec<VHost>,
    /// Global `SSLEngine on`, `SSLProtocol`, `SSLCipherSuite`, `Listen`s.
    global: VHost,
    /// The file `LoadModule ssl_module` names.
    mod_ssl: Option<PathBuf>,
}

/// A `<VirtualHost>` (or the main server) as read.
#[derive(Debug, Default, Clone)]
struct VHost {
    /// Its `<VirtualHost>` line (`None` for the main server).
    at: Option<Place>,
    /// The `<VirtualHost>` addresses (the main server: its `Listen`s).
    addresses: Vec<String>,
    /// `ServerName` and `ServerAlias`.
    names: Vec<String>,
    /// Where `SSLEngine on` is, if it is.
    ssl_engine: Option<Place>,
    /// `SSLProtocol`'s words and place.
    protocol: Option<(Vec<String>, Place)>,
    /// `SSLCipherSuite`'s list and place.
    ciphers: Option<(String, Place)>,
}

impl Reader<'_> {
    /// Reads one file, its includes in place.
    fn file(&mut self, path: &Path, from: Option<&Place>) {
        let Some(text) = self.files.enter(path, from) else {
            return;
        };
        lines(path, &text, |line| self.line(line));
        self.files.leave();
    }

    /// Takes one directive.
    fn line(&mut self, line: Line) {
        let name = line.name.as_str();
        if let Some(section) = name.strip_prefix("</") {
            if self.sections.last().map(String::as_str) != Some(section) {
                self.files
                    .trouble(line.at, format!("</{section}> without its opening section"));
                return;
            }
            self.sections.pop();
            if section == "virtualhost" {
                if let Some(v) = self.vhost.take() {
                    self.vhosts.push(v);
                }
            }
            return;
        }
        if let Some(section) = name.strip_prefix('<') {
            if self.sections.len() >= 64 {
                self.files
                    .trouble(line.at, "sections nested deeper than 64");
                return;
            }
            if section == "virtualhost" {
                if !self.files.count(&line.at) {
                    self.sections.push(section.to_string());
                    return;
                }
                if self.vhost.is_some() {
                    self.files
                        .trouble(line.at, "<VirtualHost> inside <VirtualHost>");
                    return;
                }
                self.vhost = Some(VHost {
                    at: Some(line.at.clone()),
                    addresses: line.args.clone(),
                    ..VHost::default()
                });
            }
            self.sections.push(section.to_string());
            return;
        }
        // Directives in <Directory>, <Location>, ... do not set a site's protocols.
        let in_other = self
            .sections
            .iter()
            .any(|s| s != "virtualhost" && !TRANSPARENT.contains(&s.as_str()));
        let at = line.at.clone();
        match name {
            "serverroot" if self.vhost.is_none() => {
                if let Some(root) = line.args.first() {
                    self.root = PathBuf::from(root);
                }
            }
            "include" | "includeoptional" => {
                let optional = name == "includeoptional";
                for pattern in &line.args {
                    let path = self.root.join(pattern);
                    match Files::expand(&path, true) {
                        Ok(paths) if paths.is_empty() && !optional => self
                            .files
                            .trouble(at.clone(), format!("Include {pattern}: no file matches")),
                        Ok(paths) => {
                            for p in paths {
                                if optional && !p.exists() {
                                    continue;
                                }
                                self.file(&p, Some(&at));
                            }
                        }
                        Err(e) => self
                            .files
                            .trouble(at.clone(), format!("Include {pattern}: {e}")),
                    }
                }
            }
            "loadmodule" if line.args.first().is_some_and(|m| m == "ssl_module") => {
                self.mod_ssl = line.args.get(1).map(|p| self.root.join(p));
            }
            _ if in_other => {}
            "listen" if self.vhost.is_none() => {
                self.global.addresses.extend(line.args.first().cloned());
            }
            _ => {
                let host = self.vhost.as_mut().unwrap_or(&mut self.global);
                match name {
                    "servername" | "serveralias" => host.names.extend(line.args),
                    "sslengine" => {
                        let on = line
                            .args
                            .first()
                            .is_some_and(|a| a.eq_ignore_ascii_case("on"));
                        host.ssl_engine = on.then_some(at);
                    }
                    "sslprotocol" => host.protocol = Some((line.args, at)),
                    // `SSLCipherSuite TLSv1.3 ...` sets TLS 1.3's suites, not the list.
                    "sslciphersuite" => {
                        let mut args = line.args;
                        if args.len() == 2 && !args[0].eq_ignore_ascii_case("SSL") {
                            return;
                        }
                        if let Some(list) = args.pop() {
                            host.ciphers = Some((list, at));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Parses a `<VirtualHost>` address: `*:443`, `_default_:443`, `127.0.0.1:8443`, `[::1]:443`.
fn vhost_address(text: &str) -> Option<Listen> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        (format!("[{inside}]"), after.strip_prefix(':')?)
    } else {
        let (h, p) = text.rsplit_once(':')?;
        (h.to_string(), p)
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let address = (!matches!(host.as_str(), "*" | "_default_")).then_some(host);
    Some(Listen { address, port })
}

/// Reads the configuration `main` (the root is the directory of `main` until a `ServerRoot`
/// says otherwise) and every file it includes.
pub fn read(main: &Path, files: &mut Files) -> Option<Config> {
    let mut reader = Reader {
        files,
        root: main.parent().map(Path::to_path_buf).unwrap_or_default(),
        sections: Vec::new(),
        vhost: None,
        vhosts: Vec::new(),
        global: VHost::default(),
        mod_ssl: None,
    };
    reader.file(main, None);
    if reader.files.read.is_empty() {
        return None;
    }
    let Reader {
        vhosts,
        global,
        mod_ssl,
        ..
    } = reader;
    let mut sites = Vec::new();
    let mut hosts = vhosts;
    if global.ssl_engine.is_some() {
        // `SSLEngine on` outside any <VirtualHost>: the main server speaks TLS on its Listens.
        hosts.insert(
            0,
            VHost {
                at: global.ssl_engine.clone(),
                ..global.clone()
            },
        );
    }
    for host in hosts {
        let Some(engine) = host.ssl_engine.clone() else {
            continue;
        };
        let listens = host
            .addresses
            .iter()
            .filter_map(|a| {
                vhost_address(a).or_else(|| {
                    a.parse::<u16>().ok().map(|port| Listen {
                        address: None,
                        port,
                    })
                })
            })
            .collect();
        let (protocols, enabled) = match (&host.protocol, &global.protocol) {
            (Some((words, at)), _) => (
                Setting {
                    value: words.join(" "),
                    source: Source::Site(at.clone()),
                },
                Protocols::from_apache(words),
            ),
            (None, Some((words, at))) => (
                Setting {
                    value: words.join(" "),
                    source: Source::Inherited(at.clone()),
                },
                Protocols::from_apache(words),
            ),
            (None, None) => (
                Setting {
                    value: "all -SSLv3".to_string(),
                    source: Source::Default,
                },
                Ok(Protocols::APACHE_DEFAULT),
            ),
        };
        let ciphers = match (&host.ciphers, &global.ciphers) {
            (Some((list, at)), _) => Setting {
                value: list.clone(),
                source: Source::Site(at.clone()),
            },
            (None, Some((list, at))) => Setting {
                value: list.clone(),
                source: Source::Inherited(at.clone()),
            },
            (None, None) => Setting {
                value: DEFAULT_CIPHERS.to_string(),
                source: Source::Default,
            },
        };
        sites.push(Site {
            server: Server::Apache,
            at: host.at.unwrap_or_else(|| engine.clone()),
            names: host.names,
            listens,
            protocols,
            enabled,
            ciphers,
            insert_at: Place {
                file: engine.file,
                line: engine.line + 1,
            },
        });
    }
    Some(Config { sites, mod_ssl })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, Config, Files) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(
                path,
                text.replace("ROOT", &dir.path().display().to_string()),
            )
            .expect("write");
        }
        let mut f = Files::default();
        let config = read(&dir.path().join("apache2.conf"), &mut f).expect("read");
        (dir, config, f)
    }

    #[test]
    fn words_unquote() {
        assert_eq!(words(r#"a "b c" 'd' "e\"f""#), ["a", "b c", "d", "e\"f"]);
    }

    #[test]
    fn vhosts_with_sslengine_inherit_the_global_protocol() {
        let (dir, config, files) = read_dir(&[
            (
                "apache2.conf",
                "ServerRoot ROOT\nLoadModule ssl_module modules/mod_ssl.so\n\
                 # SSLProtocol TLSv1 (a comment)\nSSLProtocol all -SSLv3 \\\n   -TLSv1 -TLSv1.1\n\
                 IncludeOptional sites/*.conf\nIncludeOptional nothing/*.conf\n",
            ),
            (
                "sites/shop.conf",
                "<IfModule ssl_module>\n<VirtualHost 127.0.0.1:8443>\n  ServerName shop.example.com\n  \
                 SSLEngine on\n  <Directory /srv>\n    SSLCipherSuite RC4\n  </Directory>\n\
                 </VirtualHost>\n</IfModule>\n<VirtualHost *:80>\n ServerName plain\n</VirtualHost>\n",
            ),
            (
                "sites/old.conf",
                "<VirtualHost _default_:9443>\n  SSLEngine On\n  SSLProtocol TLSv1.2\n  \
                 SSLCipherSuite TLSv1.3 TLS_AES_128_GCM_SHA256\n  SSLCipherSuite \"HIGH:!aNULL\"\n</VirtualHost>\n",
            ),
        ]);
        assert!(files.troubles.is_empty(), "{:?}", files.troubles);
        assert_eq!(config.mod_ssl, Some(dir.path().join("modules/mod_ssl.so")));
        let [old, shop] = &config.sites[..] else {
            panic!("{:#?}", config.sites)
        };
        assert_eq!(shop.names, ["shop.example.com"]);
        assert_eq!(shop.enabled, Ok(Protocols::RECOMMENDED));
        assert_eq!(
            shop.protocols.source,
            Source::Inherited(Place {
                file: dir.path().join("apache2.conf"),
                line: 4
            })
        );
        assert_eq!(shop.ciphers.source, Source::Default);
        assert_eq!(shop.insert_at.line, 5);
        assert_eq!(
            shop.listens,
            [Listen {
                address: Some("127.0.0.1".into()),
                port: 8443
            }]
        );
        assert_eq!(old.enabled, Ok(Protocols::TLS12_ONLY));
        assert_eq!(old.ciphers.value, "HIGH:!aNULL");
        assert_eq!(old.listens[0].address, None);
    }

    #[test]
    fn a_missing_include_and_a_loop_are_troubles() {
        let (_dir, _config, files) = read_dir(&[(
            "apache2.conf",
            "ServerRoot ROOT\nInclude missing.conf\nInclude apache2.conf\n",
        )]);
        let what: Vec<&str> = files.troubles.iter().map(|t| t.what.as_str()).collect();
        assert!(what.iter().any(|w| w.contains("cannot read")), "{what:?}");
        assert!(what.iter().any(|w| w.contains("include loop")), "{what:?}");
    }
}
