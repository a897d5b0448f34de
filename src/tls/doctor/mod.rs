//! `opsd tls doctor`: examines the local web servers the way a TLS checklist does. For nginx
//! and Apache: the version, the OpenSSL each is linked against (not just the `openssl`
//! command's), whether TLS 1.3 can be on; every TLS site their configuration defines, with its
//! file and line, names, `ssl_protocols`/`SSLProtocol` and ciphers (inherited or default when
//! the site sets none), whether TLS 1.3 is configured on, TLS 1.2 still on and the legacy
//! versions off, and the exact directive to write where; then each configured listener
//! probed on loopback like a `tls` job probes (versions, certificate expiry, hostname,
//! intermediates) through [`crate::tls::probe_all`] and judged by [`crate::tls::judge`].
//!
//! # Layout
//! One thing per file, the pure ones tested on their own:
//! - [`files`]: bounded reading of configuration files (size, count, include depth, loops);
//! - [`nginx`] and [`apache`]: each server's configuration into [`Site`]s;
//! - [`protocols`]: the version set a directive turns on, and the directive for a set;
//! - [`advice`]: a site's configured versions judged, with the fix and its line;
//! - [`software`]: the programs' versions and their OpenSSL (runs `nginx -V`, `ldd`, ...);
//! - [`targets`]: a site's listeners as probe targets;
//! - [`report`]: the text report, the JSON and the exit code;
//! - [`command`]: `opsd tls doctor`'s flags and run.
//!
//! This file joins them: [`examine`].

pub mod advice;
pub mod apache;
pub mod command;
pub mod files;
pub mod nginx;
pub mod protocols;
pub mod report;
pub mod site;
pub mod software;
pub mod targets;

pub use advice::{Advice, Fix};
pub use command::{cli, DoctorArgs};
pub use files::Trouble;
pub use protocols::Protocols;
pub use site::{Listen, Place, Server, Setting, Site, Source};
pub use software::{Capability, Software};

use crate::tls::{self, ProbeReport, Target, Trust, Verdict};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// nginx's usual main configuration.
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";
/// Debian's Apache main configuration.
pub const APACHE_CONF: &str = "/etc/apache2/apache2.conf";
/// The most listeners probed at once.
const CONCURRENCY: usize = 16;

/// One configuration to examine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// The main file.
    pub path: PathBuf,
    /// Named by the user: a missing file is then an error, not "not installed".
    pub required: bool,
}

/// What to examine and how.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// nginx's main configuration, if examined.
    pub nginx: Option<ConfigPath>,
    /// Apache's main configuration, if examined.
    pub apache: Option<ConfigPath>,
    /// The trust anchors of the probes.
    pub trust: Trust,
    /// Each listener's probe timeout.
    pub timeout: Duration,
}

/// One probed listener of a site.
#[derive(Debug, Clone, Serialize)]
pub struct Probed {
    /// The target, as `127.0.0.1:8443 sni=shop.example.com`.
    pub target: String,
    /// The verdict's line ("ok" or the problems).
    pub verdict: String,
    /// Each problem.
    pub problems: Vec<String>,
    /// The listener could not be probed at all (refused, timeout).
    pub unreachable: bool,
    /// The fields the table has no column for (serial, SANs, key, signature, OCSP stapling,
    /// per-version ciphers), escaped and cut ([`crate::tls::details`]).
    pub details: std::collections::BTreeMap<String, String>,
    /// The report and verdict, for the table.
    #[serde(skip)]
    pub row: Option<(ProbeReport, Verdict)>,
}

/// One site examined.
#[derive(Debug, Clone, Serialize)]
pub struct SiteExam {
    /// The site as configured.
    pub site: Site,
    /// The verdict on its configuration.
    pub advice: Advice,
    /// Its listeners probed.
    pub probes: Vec<Probed>,
}

/// One web server examined.
#[derive(Debug, Clone, Serialize)]
pub struct ServerExam {
    /// Which.
    pub server: Server,
    /// Its main configuration.
    pub config: PathBuf,
    /// False when the configuration was not there and not asked for: skipped.
    pub present: bool,
    /// Its software.
    pub software: Option<Software>,
    /// Whether TLS 1.3 can be on.
    pub capability: Option<Capability>,
    /// The configuration files read.
    pub files: Vec<PathBuf>,
    /// What could not be read or understood.
    pub troubles: Vec<Trouble>,
    /// Its TLS sites.
    pub sites: Vec<SiteExam>,
}

/// The whole examination.
#[derive(Debug, Clone, Serialize)]
pub struct Examination {
    /// `openssl version`.
    pub openssl_command: Option<String>,
    /// Each server.
    pub servers: Vec<ServerExam>,
}

/// Reads one server's configuration (on a blocking thread): the sites and, for Apache, the
/// mod_ssl it loads; `None` sites when the main file could not be read.
async fn read_config(
    server: Server,
    path: PathBuf,
    nginx_version: Option<(u32, u32, u32)>,
) -> (Option<(Vec<Site>, Option<PathBuf>)>, files::Files) {
    let work = move || {
        let mut f = files::Files::default();
        let found = match server {
            Server::Nginx => {
                nginx::read(&path, &mut f).map(|top| (nginx::sites(&top, nginx_version), None))
            }
            Server::Apache => apache::read(&path, &mut f).map(|c| (c.sites, c.mod_ssl)),
        };
        (found, f)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) => {
            let mut f = files::Files::default();
            f.trouble(
                Place {
                    file: PathBuf::new(),
                    line: 0,
                },
                format!("reading the configuration failed: {e}"),
            );
            (None, f)
        }
    }
}

/// Examines one server: software, configuration, advice (probes are added by [`examine`]).
async fn examine_server(server: Server, config: &ConfigPath) -> ServerExam {
    let mut exam = ServerExam {
        server,
        config: config.path.clone(),
        present: true,
        software: None,
        capability: None,
        files: Vec::new(),
        troubles: Vec::new(),
        sites: Vec::new(),
    };
    if !config.required && !config.path.exists() {
        exam.present = false;
        return exam;
    }
    let nginx_sw = match server {
        Server::Nginx => Some(software::nginx().await),
        Server::Apache => None,
    };
    let nginx_version = nginx_sw
        .as_ref()
        .and_then(|s| s.version.as_ref())
        .map(|v| v.numbers);
    let (found, files) = read_config(server, config.path.clone(), nginx_version).await;
    exam.files = files.read;
    exam.troubles = files.troubles;
    let Some((sites, mod_ssl)) = found else {
        exam.software = nginx_sw;
        return exam;
    };
    let sw = match nginx_sw {
        Some(sw) => sw,
        None => software::apache(mod_ssl.as_deref()).await,
    };
    let capability = sw.capability();
    exam.sites = sites
        .into_iter()
        .map(|site| SiteExam {
            advice: advice::advise(&site, capability.tls13),
            site,
            probes: Vec::new(),
        })
        .collect();
    exam.software = Some(sw);
    exam.capability = Some(capability);
    exam
}

/// Examines the configured servers, then probes every listener of every site at once.
pub async fn examine(opts: &DoctorOptions) -> Examination {
    let mut servers = Vec::new();
    if let Some(c) = &opts.nginx {
        servers.push(examine_server(Server::Nginx, c).await);
    }
    if let Some(c) = &opts.apache {
        servers.push(examine_server(Server::Apache, c).await);
    }
    let mut targets: Vec<Target> = Vec::new();
    let mut wanted: Vec<(usize, usize, Result<usize, String>)> = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for (n, site) in server.sites.iter().enumerate() {
            for target in targets::of(&site.site) {
                let index = target.map(|t| match targets.iter().position(|x| *x == t) {
                    Some(i) => i,
                    None => {
                        targets.push(t);
                        targets.len() - 1
                    }
                });
                wanted.push((s, n, index));
            }
        }
    }
    let reports = tls::probe_all(&targets, opts.timeout, &opts.trust, CONCURRENCY).await;
    let expect = tls::Expect::default();
    for (s, n, index) in wanted {
        let probed = match index {
            Ok(i) => {
                let report = reports[i].clone();
                let verdict = tls::judge(&report, &expect);
                Probed {
                    target: report.target.to_string(),
                    verdict: verdict.line(),
                    problems: verdict.problems.iter().map(|p| p.message.clone()).collect(),
                    unreachable: report.result.is_err(),
                    details: tls::details(&report)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                    row: Some((report, verdict)),
                }
            }
            Err(why) => Probed {
                target: String::new(),
                verdict: format!("cannot probe: {why}"),
                problems: vec![format!("cannot probe: {why}")],
                unreachable: true,
                details: Default::default(),
                row: None,
            },
        };
        servers[s].sites[n].probes.push(probed);
    }
    Examination {
        openssl_command: software::openssl_command().await,
        servers,
    }
}

#[cfg(test)]
mod tests;
