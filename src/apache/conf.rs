//! Apache's configuration syntax, the one reader of it that `opsd apache doctor` and
//! `opsd tls doctor` share: a file's text becomes its directives, one logical line each
//! (`\` continuations joined, `#` comment lines and blank lines dropped), split into a name
//! and arguments as httpd's `ap_getword_conf` does, each with its 1-based line and its text as
//! written; and [`Vars`], the `${NAME}` that httpd expands in a line, defined by `Define` and
//! by Debian's `envvars` file. Which directives matter, and what includes to follow, is each
//! caller's: this reads no file, judges nothing and imports nothing of ours.

use std::borrow::Cow;
use std::collections::HashMap;

/// One directive: a logical line of an Apache configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The name, lower case (`sslprotocol`); a section as `<virtualhost` or `</virtualhost`.
    pub name: String,
    /// The arguments, unquoted (a section's closing `>` dropped).
    pub args: Vec<String>,
    /// The 1-based line it starts on.
    pub line: usize,
    /// The logical line as written, trimmed (continuations joined by a space).
    pub text: String,
}

impl Directive {
    /// The section this line opens (`<VirtualHost *:443>`: `virtualhost`), if it does.
    pub fn opens(&self) -> Option<&str> {
        self.name.strip_prefix('<').filter(|s| !s.starts_with('/'))
    }

    /// The section this line closes (`</VirtualHost>`: `virtualhost`), if it does.
    pub fn closes(&self) -> Option<&str> {
        self.name.strip_prefix("</")
    }
}

/// The directives of one file's text, in order, one at a time (a huge file is never held as
/// a list of lines).
pub fn directives(text: &str) -> impl Iterator<Item = Directive> + '_ {
    let mut raw = text.lines().enumerate();
    std::iter::from_fn(move || {
        let mut pending = String::new();
        let mut start = 0;
        for (i, line) in raw.by_ref() {
            if pending.is_empty() {
                start = i + 1;
            }
            if let Some(cont) = line.strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let logical = std::mem::take(&mut pending);
            if let Some(d) = directive(logical.trim(), start) {
                return Some(d);
            }
        }
        // A file ending in a continuation: its last line is still a directive.
        directive(pending.trim(), start)
    })
}

/// One trimmed logical line as a directive; `None` for a blank or comment line.
fn directive(line: &str, start: usize) -> Option<Directive> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let inner = line
        .strip_suffix('>')
        .filter(|_| line.starts_with('<'))
        .unwrap_or(line);
    let mut args = words(inner);
    if args.is_empty() {
        return None;
    }
    let name = args.remove(0).to_ascii_lowercase();
    Some(Directive {
        name,
        args,
        line: start,
        text: line.to_string(),
    })
}

/// Splits one logical line into words as `ap_getword_conf` does (double or single quotes
/// group, `\"` inside double quotes is a quote).
pub fn words(text: &str) -> Vec<String> {
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

/// The variables `${NAME}` stands for in a configuration: `Define`s as they are read, over
/// the assignments of Debian's `envvars` (which `apache2ctl` sources before starting httpd).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    /// Name to value.
    values: HashMap<String, String>,
}

impl Vars {
    /// The assignments of an `envvars` shell file: `export NAME=value` and `NAME=value`
    /// lines, quotes dropped, `$NAME` and `${NAME}` inside taken from earlier lines (unknown
    /// ones are empty, as in the shell). An assignment using more of the shell than that
    /// (`${A##B}`, `$(...)`, backquotes) is passed over, so Debian's `SUFFIX` is the plain
    /// `SUFFIX=` of its default instance.
    pub fn from_envvars(text: &str) -> Vars {
        let mut vars = Vars::default();
        for line in text.lines() {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let simple_name = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !simple_name || value.contains(['`', '(', '#', ';', '|', '&']) {
                continue;
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            if let Some(value) = vars.shell_expand(value) {
                vars.values.insert(name.to_string(), value);
            }
        }
        vars
    }

    /// `$NAME` and `${NAME}` in a shell value, unknown ones empty; `None` for any other
    /// `${...}` form.
    fn shell_expand(&self, value: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                let (name, tail) = braced.split_once('}')?;
                (name, tail)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            out.push_str(self.values.get(name).map_or("", String::as_str));
            rest = tail;
        }
        out.push_str(rest);
        Some(out)
    }

    /// Takes `Define NAME [VALUE]` (no value: defined, empty).
    pub fn define(&mut self, name: &str, value: Option<&str>) {
        self.values
            .insert(name.to_string(), value.unwrap_or_default().to_string());
    }

    /// `text` with each `${NAME}` that is defined replaced by its value; an undefined one is
    /// left as written, as httpd leaves it (with a warning).
    pub fn expand<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if !text.contains("${") {
            return Cow::Borrowed(text);
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match after
                .split_once('}')
                .and_then(|(name, tail)| Some((self.values.get(name)?, tail)))
            {
                Some((value, tail)) => {
                    out.push_str(value);
                    rest = tail;
                }
                None => {
                    out.push_str("${");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_unquote() {
        assert_eq!(words(r#"a "b c" 'd' "e\"f""#), ["a", "b c", "d", "e\"f"]);
    }

    #[test]
    fn directives_join_continuations_and_drop_comments() {
        let text = "# a comment\n\nSSLProtocol all \\\n   -TLSv1\n  <VirtualHost *:443>\n\
                    Protocols h2 http/1.1\n</VirtualHost>\nLast \\";
        let found: Vec<Directive> = directives(text).collect();
        let names: Vec<(&str, usize)> = found.iter().map(|d| (d.name.as_str(), d.line)).collect();
        assert_eq!(
            names,
            [
                ("sslprotocol", 3),
                ("<virtualhost", 5),
                ("protocols", 6),
                ("</virtualhost", 7),
                ("last", 8)
            ]
        );
        assert_eq!(found[0].args, ["all", "-TLSv1"]);
        assert_eq!(found[0].text, "SSLProtocol all     -TLSv1");
        assert_eq!(found[1].args, ["*:443"]);
        assert_eq!(found[1].text, "<VirtualHost *:443>");
        assert_eq!(found[1].opens(), Some("virtualhost"));
        assert_eq!(found[3].closes(), Some("virtualhost"));
        assert_eq!(found[3].opens(), None);
    }

    #[test]
    fn debian_envvars_give_the_apache_variables() {
        let envvars = "unset HOME\n\
            if [ \"${APACHE_CONFDIR##/etc/apache2-}\" != \"${APACHE_CONFDIR}\" ] ; then\n\
            \tSUFFIX=\"-${APACHE_CONFDIR##/etc/apache2-}\"\nelse\n\tSUFFIX=\nfi\n\
            export APACHE_RUN_USER=www-data\n\
            export APACHE_LOG_DIR=/var/log/apache2$SUFFIX\n\
            export APACHE_SITES='/etc/apache2/sites-enabled'\nexport LANG\n";
        let mut vars = Vars::from_envvars(envvars);
        assert_eq!(
            vars.expand("${APACHE_LOG_DIR}/error.log ${APACHE_RUN_USER}"),
            "/var/log/apache2/error.log www-data"
        );
        assert_eq!(
            vars.expand("${APACHE_SITES}/*.conf"),
            "/etc/apache2/sites-enabled/*.conf"
        );
        assert_eq!(vars.expand("${NOPE}/x ${"), "${NOPE}/x ${");
        vars.define("SITES", Some("/srv/sites"));
        assert_eq!(vars.expand("${SITES}/a"), "/srv/sites/a");
        assert_eq!(vars.expand("plain"), "plain");
    }
}
