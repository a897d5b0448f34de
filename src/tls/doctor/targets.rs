//! The probe targets of a site: each TLS listener as `127.0.0.1:PORT` (an address it names
//! itself when it names one: `[::1]`, `192.0.2.7`; every address, `*`, `0.0.0.0` and `[::]`
//! are probed on loopback), with the site's first DNS name as SNI.

use super::site::{Listen, Site};
use crate::tls::Target;

/// The loopback address probed for a listener on every address.
fn probe_host(listen: &Listen) -> String {
    match listen.address.as_deref() {
        None | Some("0.0.0.0") => "127.0.0.1".to_string(),
        Some("[::]") => "[::1]".to_string(),
        Some(other) => other.to_string(),
    }
}

/// The target of each listener of `site`, or why one cannot be probed (escaped).
pub fn of(site: &Site) -> Vec<Result<Target, String>> {
    site.listens
        .iter()
        .map(|listen| {
            let mut text = format!("{}:{}", probe_host(listen), listen.port);
            if let Some(name) = site.sni_name() {
                text.push_str(" sni=");
                text.push_str(name);
            }
            Target::parse(&text).map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::doctor::protocols::Protocols;
    use crate::tls::doctor::site::{Place, Server, Setting, Source};

    #[test]
    fn every_address_is_probed_on_loopback_with_the_first_dns_name() {
        let place = Place {
            file: "/x".into(),
            line: 1,
        };
        let setting = Setting {
            value: String::new(),
            source: Source::Default,
        };
        let site = Site {
            server: Server::Nginx,
            at: place.clone(),
            names: vec![
                "_".into(),
                "*.example.com".into(),
                "shop.example.com".into(),
            ],
            listens: vec![
                Listen {
                    address: None,
                    port: 443,
                },
                Listen {
                    address: Some("[::]".into()),
                    port: 8443,
                },
            ],
            protocols: setting.clone(),
            enabled: Ok(Protocols::RECOMMENDED),
            ciphers: setting,
            insert_at: place,
        };
        let shown: Vec<String> = of(&site)
            .into_iter()
            .map(|t| t.expect("parses").to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:443 sni=shop.example.com",
                "[::1]:8443 sni=shop.example.com"
            ]
        );
    }
}
