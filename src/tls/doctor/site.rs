//! What the doctor reads out of a configuration: each TLS site (a nginx `server` with a
//! `listen ... ssl`, an Apache `<VirtualHost>` with `SSLEngine on`), where it is, its names,
//! listeners, protocols and ciphers, and where each of those came from. Pure data.

use super::protocols::Protocols;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Which web server a site belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// nginx.
    Nginx,
    /// Apache httpd with mod_ssl.
    Apache,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Server::Nginx => "nginx",
            Server::Apache => "Apache",
        })
    }
}

/// A line of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Place {
    /// `FILE:LINE`, escaped (a file name is anyone's text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display().to_string();
        write!(f, "{}:{}", crate::escape::control(&file), self.line)
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "at", rename_all = "lowercase")]
pub enum Source {
    /// Written in the site itself.
    Site(Place),
    /// Inherited from the enclosing `http {}` (nginx) or the global server config (Apache).
    Inherited(Place),
    /// Not written anywhere: the server's default.
    Default,
}

/// One setting (protocols or ciphers) as the site gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The value as written (or the default's text).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// One address a site listens on with TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Listen {
    /// The address as written (`None`: every address, as `443` or `*:443`).
    pub address: Option<String>,
    /// The port.
    pub port: u16,
}

/// One TLS site of a configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Whose site it is.
    pub server: Server,
    /// Where the site begins (`server {`, `<VirtualHost ...>`).
    pub at: Place,
    /// `server_name` / `ServerName` and `ServerAlias`, in order.
    pub names: Vec<String>,
    /// The TLS listeners.
    pub listens: Vec<Listen>,
    /// `ssl_protocols` / `SSLProtocol`.
    pub protocols: Setting,
    /// The versions that setting turns on (`Err`: it does not parse, in words).
    pub enabled: Result<Protocols, String>,
    /// `ssl_ciphers` / `SSLCipherSuite`.
    pub ciphers: Setting,
    /// Where a directive written for this site alone goes: the line after its TLS `listen`
    /// (nginx) or after `SSLEngine on` (Apache).
    pub insert_at: Place,
}

impl Site {
    /// The first name usable as SNI: a DNS name, not `_`, a wildcard, a regex or empty.
    pub fn sni_name(&self) -> Option<&str> {
        self.names.iter().map(String::as_str).find(|n| {
            !n.is_empty()
                && n.contains(|c: char| c.is_ascii_alphabetic())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && !n.starts_with('.')
        })
    }
}
