//! One probe target as a user writes it: `"host:port"`, `"[::1]:443"`,
//! `"127.0.0.1:8443 sni=shop.example.com"` or `"mail.example.com:587 starttls=smtp"`.
//!
//! Invariant: a [`Target`] always has a port from 1 to 65535, a host that is an IP address or an
//! ASCII (punycode) DNS name, and an SNI name that rustls accepts as a DNS name. International
//! names are converted with IDNA, so `bücher.example` and `xn--bcher-kva.example` are the same
//! target.

use super::starttls::Starttls;
use crate::escape;
use rustls::pki_types::{DnsName, ServerName};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

/// Where to connect: a DNS name (ASCII, lower case) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, resolved at probe time.
    Name(DnsName<'static>),
    /// An IP address, used as is.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name.as_ref()),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A parsed target: host, port and the name sent as SNI and checked against the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    host: Host,
    port: u16,
    /// The `sni=` option, if given.
    sni: Option<DnsName<'static>>,
    /// The name the handshake sends and the certificate must match.
    server_name: ServerName<'static>,
    /// The `starttls=` option (or the job's `starttls`): the plaintext start before TLS.
    starttls: Option<Starttls>,
}

/// What is wrong with a target string. Every quoted piece of input is escaped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// Nothing but blanks.
    #[error("empty target: expected \"host:port\"")]
    Empty,
    /// No `:port` after the host.
    #[error("target \"{target}\" has no port: expected \"host:port\", e.g. \"{target}:443\"")]
    NoPort {
        /// The target as written.
        target: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("target \"{target}\": port \"{port}\" is not a number from 1 to 65535")]
    BadPort {
        /// The target as written.
        target: String,
        /// The port as written.
        port: String,
    },
    /// An IPv6 address without brackets, where the port cannot be told apart.
    #[error("target \"{target}\": an IPv6 address needs brackets, e.g. \"[::1]:443\"")]
    BareIpv6 {
        /// The target as written.
        target: String,
    },
    /// A `[` without its `]`, or text between `]` and `:port`.
    #[error("target \"{target}\": brackets must enclose an IPv6 address, as in \"[::1]:443\"")]
    BadBrackets {
        /// The target as written.
        target: String,
    },
    /// The host is not an IP address or a valid (international) DNS name.
    #[error("target \"{target}\": \"{host}\" is not a host name or IP address: {reason}")]
    BadHost {
        /// The target as written.
        target: String,
        /// The host as written.
        host: String,
        /// Why it is not a host.
        reason: String,
    },
    /// An option other than `sni=NAME` and `starttls=PROTOCOL`.
    #[error("target \"{target}\": unknown option \"{option}\" (the options are sni=NAME and starttls=smtp|imap|pop3)")]
    UnknownOption {
        /// The target as written.
        target: String,
        /// The option as written.
        option: String,
    },
    /// `sni=` or `starttls=` given twice.
    #[error("target \"{target}\": {option}= is given more than once")]
    Duplicate {
        /// The target as written.
        target: String,
        /// The option given twice: `sni` or `starttls`.
        option: &'static str,
    },
    /// `starttls=` names no protocol the probe speaks.
    #[error("target \"{target}\": {reason}")]
    BadStarttls {
        /// The target as written.
        target: String,
        /// What is wrong, the value quoted.
        reason: String,
    },
    /// The SNI name is not a DNS name (an IP address or empty included: SNI carries names only).
    #[error("target \"{target}\": sni \"{name}\" is not a DNS name: {reason}")]
    BadSni {
        /// The target as written.
        target: String,
        /// The name as written.
        name: String,
        /// Why it is not a DNS name.
        reason: String,
    },
}

/// Escaped copy of outside text for an error message.
fn esc(text: &str) -> String {
    escape::control(text).into_owned()
}

/// A DNS name in ASCII form (IDNA), or why it is not one; IP addresses are refused here.
fn dns_name(text: &str) -> Result<DnsName<'static>, String> {
    match url::Host::parse(text) {
        Ok(url::Host::Domain(name)) => DnsName::try_from(name).map_err(|e| e.to_string()),
        Ok(_) => Err("an IP address".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl Target {
    /// Parses `host:port` with an optional ` sni=NAME` and ` starttls=PROTOCOL`.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let mut words = text.split_whitespace();
        let address = words.next().ok_or(TargetError::Empty)?;
        let target = || esc(text.trim());
        let mut sni = None;
        let mut starttls = None;
        for word in words {
            if let Some(protocol) = word.strip_prefix("starttls=") {
                if starttls.is_some() {
                    return Err(TargetError::Duplicate {
                        target: target(),
                        option: "starttls",
                    });
                }
                let protocol =
                    protocol
                        .parse::<Starttls>()
                        .map_err(|reason| TargetError::BadStarttls {
                            target: target(),
                            reason,
                        })?;
                starttls = Some(protocol);
                continue;
            }
            let Some(name) = word.strip_prefix("sni=") else {
                return Err(TargetError::UnknownOption {
                    target: target(),
                    option: esc(word),
                });
            };
            if sni.is_some() {
                return Err(TargetError::Duplicate {
                    target: target(),
                    option: "sni",
                });
            }
            let ascii = dns_name(name).map_err(|reason| TargetError::BadSni {
                target: target(),
                name: esc(name),
                reason,
            })?;
            sni = Some(ascii);
        }
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::BadBrackets { target: target() })?;
            let port = match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => return Err(TargetError::NoPort { target: target() }),
                None => return Err(TargetError::BadBrackets { target: target() }),
            };
            let ip = inside
                .parse::<std::net::Ipv6Addr>()
                .map_err(|e| TargetError::BadHost {
                    target: target(),
                    host: esc(inside),
                    reason: e.to_string(),
                })?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| TargetError::NoPort { target: target() })?;
            if host.contains(':') {
                return Err(TargetError::BareIpv6 { target: target() });
            }
            let bad = |reason: String| TargetError::BadHost {
                target: target(),
                host: esc(host),
                reason,
            };
            let host = match url::Host::parse(host).map_err(|e| bad(e.to_string()))? {
                url::Host::Domain(name) => {
                    Host::Name(DnsName::try_from(name).map_err(|e| bad(e.to_string()))?)
                }
                url::Host::Ipv4(ip) => Host::Ip(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Host::Ip(IpAddr::V6(ip)),
            };
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(TargetError::BadPort {
                    target: target(),
                    port: esc(port),
                })
            }
        };
        let server_name = match (&sni, &host) {
            (Some(name), _) | (None, Host::Name(name)) => ServerName::DnsName(name.clone()),
            (None, Host::Ip(ip)) => ServerName::IpAddress((*ip).into()),
        };
        Ok(Target {
            host,
            port,
            sni,
            server_name,
            starttls,
        })
    }

    /// This target with `protocol` as its STARTTLS when it names none itself (a job's
    /// `starttls` key).
    pub fn or_starttls(mut self, protocol: Option<Starttls>) -> Target {
        self.starttls = self.starttls.or(protocol);
        self
    }

    /// The plaintext protocol spoken before TLS, if any.
    pub fn starttls(&self) -> Option<Starttls> {
        self.starttls
    }

    /// Where to connect.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name sent as SNI and matched against the certificate: `sni=` or else the host name;
    /// `None` for a bare IP address (the certificate is then matched against the address).
    pub fn sni_name(&self) -> Option<&str> {
        match &self.server_name {
            ServerName::DnsName(name) => Some(name.as_ref()),
            _ => None,
        }
    }

    /// The rustls server name: the SNI name, or the IP address when there is none.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Target::parse(text)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)?;
        if let Some(sni) = &self.sni {
            write!(f, " sni={}", sni.as_ref())?;
        }
        if let Some(protocol) = self.starttls {
            write!(f, " starttls={protocol}")?;
        }
        Ok(())
    }
}
