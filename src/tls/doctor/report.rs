//! Rendering an [`Examination`]: the text report of `opsd tls doctor` (each server, its
//! software and sites, what to change, the probe table), the JSON, and the exit code. Every
//! piece of configuration text and certificate field is someone else's text and is escaped
//! ([`crate::escape::control`]; the JSON with [`crate::escape::json`]).

use super::site::Source;
use super::{Examination, ServerExam, SiteExam};
use crate::escape;
use std::fmt;

/// The doctor's overall verdict, the exit code's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Everything as recommended (exit 0).
    AsRecommended,
    /// Something to change (exit 1).
    Change,
    /// Something could not be examined: a configuration unreadable, a listener that did not
    /// answer, no web server at all (exit 2). It outranks [`Outcome::Change`]: what could not
    /// be seen may be worse.
    CouldNotExamine,
}

impl Outcome {
    /// The exit code: 0, 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            Outcome::AsRecommended => 0,
            Outcome::Change => 1,
            Outcome::CouldNotExamine => 2,
        }
    }
}

impl Examination {
    /// The overall verdict.
    pub fn outcome(&self) -> Outcome {
        let present: Vec<&ServerExam> = self.servers.iter().filter(|s| s.present).collect();
        let mut worst = if present.is_empty() {
            Outcome::CouldNotExamine
        } else {
            Outcome::AsRecommended
        };
        if !self.has_sites() {
            // Nothing examined is not "as recommended": a script must not read it as fine.
            worst = Outcome::CouldNotExamine;
        }
        for server in present {
            if !server.troubles.is_empty() {
                worst = worst.max(Outcome::CouldNotExamine);
            }
            if server.capability.as_ref().is_some_and(|c| !c.tls13) {
                worst = worst.max(Outcome::Change);
            }
            for site in &server.sites {
                if !site.advice.ok() {
                    worst = worst.max(Outcome::Change);
                }
                for probe in &site.probes {
                    if probe.unreachable {
                        worst = worst.max(Outcome::CouldNotExamine);
                    } else if !probe.problems.is_empty() {
                        worst = worst.max(Outcome::Change);
                    }
                }
            }
        }
        worst
    }

    /// Whether any server has a TLS site to examine.
    pub fn has_sites(&self) -> bool {
        self.servers
            .iter()
            .any(|s| s.present && !s.sites.is_empty())
    }

    /// The examination as pretty JSON, escaped.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("exit_code".into(), self.outcome().code().into());
        }
        Ok(escape::json(&serde_json::to_string_pretty(&value)?).into_owned())
    }
}

/// `text` escaped for one line.
fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    escape::control(text)
}

/// Where a setting came from, in words.
fn source(src: &Source, server: &str) -> String {
    match src {
        Source::Site(at) => format!("at {at}"),
        Source::Inherited(at) => format!("inherited from {at}"),
        Source::Default => format!("{server}'s default"),
    }
}

/// One site: where, names, listeners, settings, verdict and fix.
fn write_site(f: &mut fmt::Formatter<'_>, site: &SiteExam, server: &str) -> fmt::Result {
    let s = &site.site;
    let names = if s.names.is_empty() {
        "(no name)".to_string()
    } else {
        esc(&s.names.join(" ")).into_owned()
    };
    let listens: Vec<String> = s
        .listens
        .iter()
        .map(|l| format!("{}:{}", l.address.as_deref().unwrap_or("*"), l.port))
        .collect();
    writeln!(
        f,
        "  site {names} at {}, listening on {}",
        s.at,
        esc(&listens.join(", "))
    )?;
    let (protocols, ciphers) = match s.server {
        super::Server::Nginx => ("ssl_protocols", "ssl_ciphers"),
        super::Server::Apache => ("SSLProtocol", "SSLCipherSuite"),
    };
    writeln!(
        f,
        "    {protocols} {} ({})",
        esc(&s.protocols.value),
        source(&s.protocols.source, server)
    )?;
    writeln!(
        f,
        "    {ciphers} {} ({})",
        esc(&s.ciphers.value),
        source(&s.ciphers.source, server)
    )?;
    let a = &site.advice;
    let yes = |b: bool| if b { "on" } else { "off" };
    writeln!(
        f,
        "    configured: TLS 1.3 {}, TLS 1.2 {}, legacy (SSLv3, TLS 1.0, 1.1) {}",
        yes(a.tls13),
        yes(a.tls12),
        yes(!a.legacy_off)
    )?;
    for finding in &a.findings {
        writeln!(f, "    [!] {}", esc(finding))?;
    }
    if let Some(fix) = &a.fix {
        writeln!(
            f,
            "    fix: {} `{}` at {}",
            fix.action, fix.directive, fix.at
        )?;
        if let (Source::Inherited(at), "add") = (&s.protocols.source, fix.action) {
            writeln!(
                f,
                "         (or change the one at {at}, for every site that inherits it)"
            )?;
        }
    }
    if a.ok() {
        writeln!(f, "    as recommended")?;
    }
    for probe in &site.probes {
        let target = if probe.target.is_empty() {
            "listener"
        } else {
            probe.target.as_str()
        };
        let mark = if probe.unreachable {
            "[?]"
        } else if probe.problems.is_empty() {
            "[ok]"
        } else {
            "[!]"
        };
        writeln!(
            f,
            "    {mark} probe {}: {}",
            esc(target),
            esc(&probe.verdict)
        )?;
        if let Some(hint) = probe.row.as_ref().and_then(|(r, _)| mismatch(a, r)) {
            writeln!(f, "        {hint}")?;
        }
    }
    Ok(())
}

/// Why a version configured on is not offered, when the probe shows that.
fn mismatch(advice: &super::Advice, report: &crate::tls::ProbeReport) -> Option<String> {
    let versions = &report.result.as_ref().ok()?.versions;
    let off = |v| matches!(versions.get(v), crate::tls::Support::Rejected { .. });
    let missing: Vec<&str> = [
        (advice.tls13, crate::tls::Version::Tls13, "TLS 1.3"),
        (advice.tls12, crate::tls::Version::Tls12, "TLS 1.2"),
    ]
    .into_iter()
    .filter(|(configured, version, _)| *configured && off(*version))
    .map(|(_, _, name)| name)
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "({} configured on but not offered: the server not reloaded since, another site \
             being the default for this address and port, or an OpenSSL that refuses it)",
            missing.join(" and ")
        )
    })
}

/// One server: software, TLS 1.3 capability, troubles, sites.
fn write_server(f: &mut fmt::Formatter<'_>, server: &ServerExam) -> fmt::Result {
    let name = server.server.to_string();
    let config = esc(&server.config.display().to_string()).into_owned();
    if !server.present {
        return writeln!(f, "{name}: {config} not found, not examined");
    }
    writeln!(f, "{name}: {config} ({} file(s) read)", server.files.len())?;
    if let Some(sw) = &server.software {
        if let (Some(program), Some(v)) = (&sw.program, &sw.version) {
            writeln!(
                f,
                "  program: {} ({})",
                esc(&program.display().to_string()),
                esc(&v.text)
            )?;
        }
        if let Some(built) = &sw.built_with {
            writeln!(f, "  built with: {}", esc(built))?;
        }
        if let Some(linked) = &sw.linked {
            let lib = sw
                .libssl
                .as_ref()
                .map(|l| format!(" ({})", l.display()))
                .unwrap_or_default();
            writeln!(f, "  runs with: {}{}", esc(&linked.text), esc(&lib))?;
        }
        for unknown in &sw.unknown {
            writeln!(f, "  unknown: {}", esc(unknown))?;
        }
    }
    if let Some(cap) = &server.capability {
        if !cap.tls13 {
            writeln!(f, "  [!] TLS 1.3 cannot be on:")?;
        } else if !cap.known {
            writeln!(
                f,
                "  [?] TLS 1.3 unknown (presumed possible for the advice below):"
            )?;
        } else {
            writeln!(f, "  TLS 1.3 can be on")?;
        }
        for why in cap.why.iter().filter(|_| !cap.tls13 || !cap.known) {
            writeln!(f, "      {}", esc(why))?;
        }
    }
    for t in &server.troubles {
        if t.at.line == 0 {
            writeln!(f, "  [?] {}", esc(&t.what))?;
        } else {
            writeln!(f, "  [?] {}: {}", t.at, esc(&t.what))?;
        }
    }
    if server.sites.is_empty() && server.troubles.is_empty() {
        writeln!(f, "  no TLS site configured")?;
    }
    for site in &server.sites {
        write_site(f, site, &name)?;
    }
    Ok(())
}

impl fmt::Display for Examination {
    /// The full report: the servers, the probe table, the verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.openssl_command {
            Some(v) => writeln!(
                f,
                "openssl command: {} (the servers' own OpenSSL is below)",
                esc(v)
            )?,
            None => writeln!(f, "openssl command: not found")?,
        }
        for server in &self.servers {
            writeln!(f)?;
            write_server(f, server)?;
        }
        let rows: Vec<_> = self
            .servers
            .iter()
            .flat_map(|s| &s.sites)
            .flat_map(|s| &s.probes)
            .filter_map(|p| p.row.clone())
            .collect();
        if !rows.is_empty() {
            writeln!(f)?;
            f.write_str(&crate::tls::render(&rows))?;
            let details = crate::tls::render_details(&rows);
            if !details.is_empty() {
                writeln!(f)?;
                f.write_str(&details)?;
            }
        }
        writeln!(f)?;
        match self.outcome() {
            Outcome::AsRecommended => writeln!(
                f,
                "VERDICT: as recommended (TLS 1.3 and 1.2 on, 1.0/1.1 off, certificates fine)"
            ),
            Outcome::Change => writeln!(f, "VERDICT: something to change (the [!] lines above)"),
            Outcome::CouldNotExamine => {
                if self.servers.iter().all(|s| !s.present) {
                    writeln!(f, "VERDICT: could not examine: no nginx or Apache configuration found (give --nginx-conf or --apache-conf)")
                } else if !self.has_sites() {
                    writeln!(f, "VERDICT: could not examine: no TLS site to examine (no site listens with TLS; for Apache, is mod_ssl loaded?)")
                } else {
                    writeln!(f, "VERDICT: could not examine everything (the [?] lines and unreachable listeners above)")
                }
            }
        }
    }
}
