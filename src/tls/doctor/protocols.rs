//! The set of protocol versions a configuration turns on, read from nginx's `ssl_protocols`
//! and Apache's `SSLProtocol`, and the directive each server needs for the recommended set.
//! Pure: the words in, a set out.

use serde::Serialize;
use std::fmt;

/// Which versions a configuration turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Protocols {
    /// SSL 3.0 (long broken).
    pub ssl3: bool,
    /// TLS 1.0.
    pub tls10: bool,
    /// TLS 1.1.
    pub tls11: bool,
    /// TLS 1.2.
    pub tls12: bool,
    /// TLS 1.3.
    pub tls13: bool,
}

impl Protocols {
    /// TLS 1.2 and 1.3: what the doctor recommends when TLS 1.3 can be on.
    pub const RECOMMENDED: Protocols = Protocols {
        ssl3: false,
        tls10: false,
        tls11: false,
        tls12: true,
        tls13: true,
    };

    /// TLS 1.2 alone: the recommendation when this server cannot speak TLS 1.3.
    pub const TLS12_ONLY: Protocols = Protocols {
        tls13: false,
        ..Protocols::RECOMMENDED
    };

    /// True when SSL 3.0, TLS 1.0 or TLS 1.1 is on.
    pub fn legacy(&self) -> bool {
        self.ssl3 || self.tls10 || self.tls11
    }

    /// The flag of one protocol word (`TLSv1.2`, case-insensitive), `None` for another word.
    fn flag(&mut self, word: &str) -> Option<&mut bool> {
        Some(match word.to_ascii_lowercase().as_str() {
            "sslv3" => &mut self.ssl3,
            "tlsv1" => &mut self.tls10,
            "tlsv1.1" => &mut self.tls11,
            "tlsv1.2" => &mut self.tls12,
            "tlsv1.3" => &mut self.tls13,
            _ => return None,
        })
    }

    /// nginx's `ssl_protocols` words; `Err` names a word nginx would refuse. `SSLv2` is
    /// accepted by nginx but no OpenSSL of the last decade speaks it: ignored.
    pub fn from_nginx(words: &[String]) -> Result<Protocols, String> {
        let mut set = Protocols::default();
        for word in words {
            if word.eq_ignore_ascii_case("sslv2") {
                continue;
            }
            *set.flag(word)
                .ok_or_else(|| format!("unknown protocol \"{word}\""))? = true;
        }
        Ok(set)
    }

    /// Apache's `SSLProtocol` words as mod_ssl reads them: a word without `+`/`-` replaces
    /// the set, `+` adds, `-` removes; `all` is SSL 3.0 up to TLS 1.3.
    pub fn from_apache(words: &[String]) -> Result<Protocols, String> {
        let mut set = Protocols::default();
        for word in words {
            let (action, name) = match word.as_bytes().first() {
                Some(b'+') | Some(b'-') => (Some(word.as_bytes()[0]), &word[1..]),
                _ => (None, word.as_str()),
            };
            let mut this = Protocols::default();
            if name.eq_ignore_ascii_case("all") {
                this = Protocols {
                    ssl3: true,
                    tls10: true,
                    tls11: true,
                    tls12: true,
                    tls13: true,
                };
            } else if !name.eq_ignore_ascii_case("sslv2") {
                *this
                    .flag(name)
                    .ok_or_else(|| format!("unknown protocol \"{word}\""))? = true;
            }
            set = match action {
                Some(b'-') => set.minus(this),
                Some(_) => set.plus(this),
                None => this,
            };
        }
        Ok(set)
    }

    /// Apache's default, `all -SSLv3`.
    pub const APACHE_DEFAULT: Protocols = Protocols {
        ssl3: false,
        tls10: true,
        tls11: true,
        tls12: true,
        tls13: true,
    };

    /// nginx's default for `version`: `TLSv1 TLSv1.1 TLSv1.2` before 1.23.4, `TLSv1.2
    /// TLSv1.3` since (an unknown version is taken as the older one, the worse case).
    pub fn nginx_default(version: Option<(u32, u32, u32)>) -> Protocols {
        match version {
            Some(v) if v >= (1, 23, 4) => Protocols::RECOMMENDED,
            _ => Protocols {
                tls10: true,
                tls11: true,
                tls12: true,
                ..Protocols::default()
            },
        }
    }

    /// Each flag of `self` or `other`.
    fn plus(self, other: Protocols) -> Protocols {
        Protocols {
            ssl3: self.ssl3 || other.ssl3,
            tls10: self.tls10 || other.tls10,
            tls11: self.tls11 || other.tls11,
            tls12: self.tls12 || other.tls12,
            tls13: self.tls13 || other.tls13,
        }
    }

    /// Each flag of `self` not in `other`.
    fn minus(self, other: Protocols) -> Protocols {
        Protocols {
            ssl3: self.ssl3 && !other.ssl3,
            tls10: self.tls10 && !other.tls10,
            tls11: self.tls11 && !other.tls11,
            tls12: self.tls12 && !other.tls12,
            tls13: self.tls13 && !other.tls13,
        }
    }

    /// The protocol names that are on, in the servers' spelling: `TLSv1.2 TLSv1.3`.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.ssl3, "SSLv3"),
            (self.tls10, "TLSv1"),
            (self.tls11, "TLSv1.1"),
            (self.tls12, "TLSv1.2"),
            (self.tls13, "TLSv1.3"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name)
        .collect()
    }

    /// The nginx directive that turns on exactly this set: `ssl_protocols TLSv1.2 TLSv1.3;`.
    pub fn nginx_directive(&self) -> String {
        format!("ssl_protocols {};", self.names().join(" "))
    }

    /// The Apache directive that turns on exactly this set: `SSLProtocol -all +TLSv1.2 +TLSv1.3`.
    pub fn apache_directive(&self) -> String {
        let plus: Vec<String> = self.names().iter().map(|n| format!("+{n}")).collect();
        format!("SSLProtocol -all {}", plus.join(" "))
    }
}

impl fmt::Display for Protocols {
    /// `TLSv1.2 TLSv1.3`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn apache_words_add_remove_and_replace_as_mod_ssl_does() {
        let p = |t: &str| Protocols::from_apache(&words(t)).expect("parses");
        assert_eq!(p("all -SSLv3"), Protocols::APACHE_DEFAULT);
        assert_eq!(p("-all +TLSv1.2 +TLSv1.3"), Protocols::RECOMMENDED);
        assert_eq!(p("all -SSLv3 -TLSv1 -TLSv1.1"), Protocols::RECOMMENDED);
        assert_eq!(p("TLSv1.2"), Protocols::TLS12_ONLY);
        assert_eq!(
            p("+tlsv1.3"),
            Protocols::RECOMMENDED.minus(Protocols::TLS12_ONLY)
        );
        assert!(Protocols::from_apache(&words("all -TLSv9")).is_err());
    }

    #[test]
    fn nginx_words_and_defaults() {
        let set = Protocols::from_nginx(&words("TLSv1.2 TLSv1.3")).expect("parses");
        assert_eq!(set, Protocols::RECOMMENDED);
        assert!(Protocols::from_nginx(&words("TLSv1.2 bogus")).is_err());
        assert!(Protocols::nginx_default(Some((1, 22, 1))).legacy());
        assert_eq!(
            Protocols::nginx_default(Some((1, 25, 0))),
            Protocols::RECOMMENDED
        );
        assert_eq!(
            Protocols::RECOMMENDED.nginx_directive(),
            "ssl_protocols TLSv1.2 TLSv1.3;"
        );
        assert_eq!(
            Protocols::RECOMMENDED.apache_directive(),
            "SSLProtocol -all +TLSv1.2 +TLSv1.3"
        );
    }
}
