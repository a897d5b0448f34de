//! Apache's configuration as httpd reads it: directives as [`crate::apache::conf`] splits
//! them (`\` continuations, `#` comment lines, `"..."` arguments), `${NAME}` expanded from
//! the `envvars` file beside the main file and from `Define`s, `Include` / `IncludeOptional`
//! (globs, and directories with everything below them, relative to `ServerRoot`) read in place, `<IfModule>`/`<IfDefine>`/`<IfVersion>` taken as true,
//! then every `<VirtualHost>` with `SSLEngine on` as a [`Site`], its `SSLProtocol` and
//! `SSLCipherSuite` its own, else the global ones, else mod_ssl's default. Also the module
//! file `LoadModule ssl_module` names, whose OpenSSL the doctor looks up. Reading is bounded
//! ([`super::files`]); nothing is run.

use super::files::Files;
use super::protocols::Protocols;
use super::site::{Listen, Place, Server, Setting, Site, Source};
use crate::apache::conf::{self, Directive, Vars};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Sections read as if their condition held.
const TRANSPARENT: &[&str] = &["ifmodule", "ifdefine", "ifversion", "ifdirective", "iffile"];
/// mod_ssl's default `SSLCipherSuite` (OpenSSL's own default list).
const DEFAULT_CIPHERS: &str = "DEFAULT (OpenSSL's list)";

/// What [`read`] found in a configuration.
#[derive(Debug, Default)]
pub struct Config {
    /// The TLS sites.
    pub sites: Vec<Site>,
    /// The file `LoadModule ssl_module` loads, resolved against `ServerRoot`.
    pub mod_ssl: Option<PathBuf>,
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
    /// `${NAME}`: Debian's envvars, then each `Define` as read.
    vars: Vars,
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
        for directive in conf::directives(&text) {
            self.line(path, directive);
        }
        self.files.leave();
    }

    /// Takes one directive of `file`.
    fn line(&mut self, file: &Path, mut line: Directive) {
        for arg in &mut line.args {
            if let Cow::Owned(expanded) = self.vars.expand(arg) {
                *arg = expanded;
            }
        }
        let at = Place {
            file: file.to_path_buf(),
            line: line.line,
        };
        let name = line.name.as_str();
        if let Some(section) = name.strip_prefix("</") {
            if self.sections.last().map(String::as_str) != Some(section) {
                self.files
                    .trouble(at, format!("</{section}> without its opening section"));
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
                self.files.trouble(at, "sections nested deeper than 64");
                return;
            }
            if section == "virtualhost" {
                if !self.files.count(&at) {
                    self.sections.push(section.to_string());
                    return;
                }
                if self.vhost.is_some() {
                    self.files.trouble(at, "<VirtualHost> inside <VirtualHost>");
                    return;
                }
                self.vhost = Some(VHost {
                    at: Some(at),
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
        match name {
            "define" => {
                if let Some(var) = line.args.first() {
                    self.vars.define(var, line.args.get(1).map(String::as_str));
                }
            }
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

/// The largest `envvars` file read.
const MAX_ENVVARS: u64 = 64 * 1024;

/// The variables of the `envvars` file beside `main` (Debian's `/etc/apache2/envvars`, which
/// `apache2ctl` sources), none when there is no such file or it cannot be read.
fn envvars(main: &Path) -> Vars {
    main.parent()
        .map(|dir| dir.join("envvars"))
        .filter(|p| p.is_file())
        .and_then(|p| crate::bounded_read::read(&p, MAX_ENVVARS).ok())
        .map(|bytes| Vars::from_envvars(&String::from_utf8_lossy(&bytes)))
        .unwrap_or_default()
}

/// Reads the configuration `main` (the root is the directory of `main` until a `ServerRoot`
/// says otherwise) and every file it includes, `${NAME}` expanded from the `envvars` file
/// beside `main` and the `Define`s read so far.
pub fn read(main: &Path, files: &mut Files) -> Option<Config> {
    let mut reader = Reader {
        vars: envvars(main),
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

    #[test]
    fn a_directory_include_reads_everything_below_it() {
        let (dir, config, files) = read_dir(&[
            (
                "apache2.conf",
                "ServerRoot ROOT\nInclude conf.d\nInclude glob*\n",
            ),
            (
                "conf.d/a/deep/site.conf",
                "<VirtualHost *:443>\nSSLEngine on\nServerName deep\n</VirtualHost>\n",
            ),
            ("conf.d/top.conf", "SSLProtocol TLSv1.2\n"),
            (
                "globbed/more/one.conf",
                "<VirtualHost *:8443>\nSSLEngine on\nServerName globbed\n</VirtualHost>\n",
            ),
        ]);
        assert!(files.troubles.is_empty(), "{:?}", files.troubles);
        let names: Vec<&str> = config.sites.iter().map(|s| s.names[0].as_str()).collect();
        assert_eq!(names, ["deep", "globbed"]);
        assert!(matches!(
            &config.sites[1].protocols.source,
            Source::Inherited(p) if p.file == dir.path().join("conf.d/top.conf")
        ));
        // Depth first in name order: conf.d/a/ before conf.d/top.conf, as httpd reads it.
        assert_eq!(
            files.read,
            [
                dir.path().join("apache2.conf"),
                dir.path().join("conf.d/a/deep/site.conf"),
                dir.path().join("conf.d/top.conf"),
                dir.path().join("globbed/more/one.conf"),
            ]
        );
    }

    #[test]
    fn include_paths_expand_envvars_and_defines() {
        let (dir, config, files) = read_dir(&[
            (
                "apache2.conf",
                "ServerRoot ROOT\nDefine SITES sites\nIncludeOptional ${SITES}/*.conf\n\
                 Include ${APACHE_EXTRA}/tls.conf\nIncludeOptional ${UNDEFINED}/x.conf\n",
            ),
            (
                "envvars",
                "export APACHE_EXTRA=ROOT/extra$SUFFIX\nSUFFIX=\n",
            ),
            (
                "sites/shop.conf",
                "<VirtualHost *:443>\nSSLEngine on\nServerName shop\n</VirtualHost>\n",
            ),
            ("extra/tls.conf", "SSLProtocol -all +TLSv1.2\n"),
        ]);
        assert!(files.troubles.is_empty(), "{:?}", files.troubles);
        let [shop] = &config.sites[..] else {
            panic!("{:#?}", config.sites)
        };
        assert_eq!(shop.names, ["shop"]);
        assert_eq!(
            shop.protocols.source,
            Source::Inherited(Place {
                file: dir.path().join("extra/tls.conf"),
                line: 1
            })
        );
    }
}
