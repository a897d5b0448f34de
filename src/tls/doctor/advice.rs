//! The verdict on one site's configuration: is TLS 1.3 on, is TLS 1.2 still on, are the
//! legacy versions off, and if not, the exact directive to write and the line to write it at.
//! Pure: a [`Site`] and whether its server can speak TLS 1.3 in, an [`Advice`] out.
//!
//! Where the fix goes: a site with its own `ssl_protocols`/`SSLProtocol` gets that line
//! changed; a site that inherits one gets a line of its own (changing the `http {}` or global
//! one would change every site that inherits it, which is the operator's call, so it is named
//! as the alternative); a site on the default gets one added after its TLS `listen` (nginx)
//! or `SSLEngine on` (Apache).

use super::protocols::Protocols;
use super::site::{Place, Server, Site, Source};
use serde::Serialize;

/// What to change in one site's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// `add` (a new line at `at`) or `change` (the line at `at`).
    pub action: &'static str,
    /// The directive to write, e.g. `ssl_protocols TLSv1.2 TLSv1.3;`.
    pub directive: String,
    /// The line.
    pub at: Place,
}

/// The verdict on one site's configured protocols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// TLS 1.3 is configured on.
    pub tls13: bool,
    /// TLS 1.2 is configured on.
    pub tls12: bool,
    /// SSL 3.0, TLS 1.0 and 1.1 are configured off.
    pub legacy_off: bool,
    /// What is wrong, one line each (empty: as recommended).
    pub findings: Vec<String>,
    /// What to write, when something is wrong and the setting could be read.
    pub fix: Option<Fix>,
}

impl Advice {
    /// True when the site is configured as recommended.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Judges `site`; `tls13_possible` says whether its server can speak TLS 1.3 at all.
pub fn advise(site: &Site, tls13_possible: bool) -> Advice {
    let enabled = match &site.enabled {
        Ok(p) => *p,
        Err(why) => {
            let at = match &site.protocols.source {
                Source::Site(at) | Source::Inherited(at) => at.to_string(),
                Source::Default => site.at.to_string(),
            };
            return Advice {
                tls13: false,
                tls12: false,
                legacy_off: false,
                findings: vec![format!("cannot read the protocols at {at}: {why}")],
                fix: None,
            };
        }
    };
    let want = if tls13_possible {
        Protocols::RECOMMENDED
    } else {
        Protocols::TLS12_ONLY
    };
    let mut findings = Vec::new();
    if !enabled.tls13 && tls13_possible {
        findings.push("TLS 1.3 is not configured".to_string());
    }
    if enabled.tls13 && !tls13_possible {
        findings.push(
            "TLS 1.3 is configured but this server cannot offer it (see its OpenSSL above)"
                .to_string(),
        );
    }
    if !enabled.tls12 {
        findings.push("TLS 1.2 is off: older browsers and clients cannot connect".to_string());
    }
    if enabled.legacy() {
        let legacy: Vec<&str> = enabled
            .names()
            .into_iter()
            .filter(|n| !matches!(*n, "TLSv1.2" | "TLSv1.3"))
            .collect();
        findings.push(format!(
            "{} still on: deprecated (RFC 8996), turn off",
            legacy.join(" ")
        ));
    }
    // Without TLS 1.3 in the server, a configured TLSv1.3 is harmless: the fix is the upgrade.
    let comparable = Protocols {
        tls13: enabled.tls13 && tls13_possible,
        ..enabled
    };
    let fix = (comparable != want).then(|| {
        let directive = match site.server {
            Server::Nginx => want.nginx_directive(),
            Server::Apache => want.apache_directive(),
        };
        match &site.protocols.source {
            Source::Site(at) => Fix {
                action: "change",
                directive,
                at: at.clone(),
            },
            Source::Inherited(_) | Source::Default => Fix {
                action: "add",
                directive,
                at: site.insert_at.clone(),
            },
        }
    });
    Advice {
        tls13: enabled.tls13,
        tls12: enabled.tls12,
        legacy_off: !enabled.legacy(),
        findings,
        fix,
    }
}
