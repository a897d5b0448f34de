//! URLs as they may appear in a log line, an error or `opsd status`: scheme, host and port only.
//!
//! Invariant: nothing this module returns contains a URL's userinfo (`user:password@`), path,
//! query or fragment, the places where webhook tokens, signed-URL signatures and license keys
//! live. Every message that names a URL the user configured goes through [`url()`].

/// The part of `raw` that is safe to log: `scheme://host[:port]/…`, or `<url>` when it does not
/// parse (an unparsable URL may still hold a secret, so none of it is shown).
pub fn url(raw: &str) -> String {
    match ::url::Url::parse(raw) {
        Ok(u) => parsed(&u),
        Err(_) => "<url>".to_string(),
    }
}

/// [`url()`] for an already parsed URL.
pub fn parsed(u: &::url::Url) -> String {
    let host = match u.host_str() {
        Some(h) => h,
        None => return format!("{}:…", u.scheme()),
    };
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        "/"
    } else {
        "/…"
    };
    format!("{}://{host}{port}{rest}", u.scheme())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_path_query_and_fragment_never_survive() {
        let shown =
            url("https://bot:hunter2@hooks.example.com:8443/services/T0/B1/s3cr3t?token=abc#x");
        assert_eq!(shown, "https://hooks.example.com:8443/…");
        for secret in ["bot", "hunter2", "services", "s3cr3t", "token", "abc"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_bare_host_keeps_its_slash_and_an_unparsable_url_shows_nothing() {
        assert_eq!(url("http://127.0.0.1:9000/"), "http://127.0.0.1:9000/");
        assert_eq!(url("http://[::1]/x"), "http://[::1]/…");
        assert_eq!(url("not a url with s3cr3t"), "<url>");
    }
}
