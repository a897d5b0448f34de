//! nginx's configuration as nginx reads it: tokens (words, `"..."` and `'...'` with `\`
//! escapes, `#` comments, `;`, `{`, `}`), directives in blocks, `include` (globs, relative to
//! the main file's directory) read in place, then every `server` of every `http` with a
//! `listen ... ssl` (or `ssl on;`) as a [`Site`], its `ssl_protocols` and `ssl_ciphers` its
//! own, else the `http` block's, else nginx's default. Reading is bounded ([`super::files`]);
//! nothing is run.

use super::files::Files;
use super::protocols::Protocols;
use super::site::{Listen, Place, Server, Setting, Site, Source};
use std::path::Path;

/// nginx's default `ssl_ciphers`.
const DEFAULT_CIPHERS: &str = "HIGH:!aNULL:!MD5";
/// The simple directives the doctor reads (the others are skipped as they are parsed, so a
/// huge configuration is not held in memory).
const KEPT: &[&str] = &[
    "listen",
    "server_name",
    "ssl",
    "ssl_protocols",
    "ssl_ciphers",
];
/// The most arguments one directive may have.
const MAX_ARGS: usize = 1024;
/// The deepest block nesting read (nginx configurations nest three or four deep).
const MAX_NESTING: usize = 32;

/// One directive: its name, arguments, place and block (`None` for a simple one).
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// The name, e.g. `listen`.
    pub name: String,
    /// The arguments, unquoted.
    pub args: Vec<String>,
    /// Where it is.
    pub at: Place,
    /// The directives of its `{ }` block.
    pub block: Option<Vec<Directive>>,
}

/// A token and its line.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A word or a quoted string.
    Word(String),
    /// `;`.
    Semicolon,
    /// `{`.
    Open,
    /// `}`.
    Close,
}

/// The tokens of a text with their lines, one at a time (a huge file is never held as a
/// list of tokens); an `Err` is an unterminated quote's line.
struct Lexer<'a> {
    /// The text not read yet.
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// The line being read.
    line: usize,
}

impl<'a> Lexer<'a> {
    /// The tokens of `text`.
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// A quoted string after its opening `quote`.
    fn quoted(&mut self, quote: char) -> Result<(Token, usize), (usize, String)> {
        let start = self.line;
        let mut word = String::new();
        loop {
            let c = self
                .chars
                .next()
                .ok_or_else(|| (start, format!("unterminated {quote} quote")))?;
            if c == '\n' {
                self.line += 1;
            }
            if c == quote {
                return Ok((Token::Word(word), start));
            }
            if c == '\\' {
                match self.chars.next() {
                    Some(n) if n == quote || n == '\\' => word.push(n),
                    Some(n) => {
                        if n == '\n' {
                            self.line += 1;
                        }
                        word.push('\\');
                        word.push(n);
                    }
                    None => return Err((start, format!("unterminated {quote} quote"))),
                }
            } else {
                word.push(c);
            }
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<(Token, usize), (usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let c = self.chars.next()?;
            let line = self.line;
            return Some(Ok(match c {
                '\n' => {
                    self.line += 1;
                    continue;
                }
                c if c.is_whitespace() => continue,
                '#' => {
                    for c in self.chars.by_ref() {
                        if c == '\n' {
                            self.line += 1;
                            break;
                        }
                    }
                    continue;
                }
                ';' => (Token::Semicolon, line),
                '{' => (Token::Open, line),
                '}' => (Token::Close, line),
                '"' | '\'' => return Some(self.quoted(c)),
                c => {
                    let mut word = String::from(c);
                    while let Some(&n) = self.chars.peek() {
                        if n.is_whitespace() || matches!(n, ';' | '{' | '}') {
                            break;
                        }
                        self.chars.next();
                        if n == '\\' {
                            if let Some(e) = self.chars.next() {
                                word.push(e);
                            }
                            continue;
                        }
                        word.push(n);
                    }
                    (Token::Word(word), line)
                }
            }));
        }
    }
}

/// Reads the configuration `main` and every file it includes.
pub fn read(main: &Path, files: &mut Files) -> Option<Vec<Directive>> {
    let prefix = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = files.enter(main, None)?;
    let directives = parse_text(main, &text, &prefix, files);
    files.leave();
    Some(directives)
}

/// Parses one file's text, reading its includes.
fn parse_text(file: &Path, text: &str, prefix: &Path, files: &mut Files) -> Vec<Directive> {
    let at = |line| Place {
        file: file.to_path_buf(),
        line,
    };
    let mut parser = Parser {
        toks: Lexer::new(text),
        file,
        prefix,
    };
    let mut stack: Vec<(Directive, Vec<Directive>)> = Vec::new();
    let mut top = Vec::new();
    while let Some(step) = parser.next(files) {
        match step {
            Step::Simple(d) if !KEPT.contains(&d.name.as_str()) => {}
            Step::Simple(d) => {
                if !files.count(&d.at) {
                    return top;
                }
                let into = stack.last_mut().map_or(&mut top, |(_, body)| body);
                into.push(d);
            }
            Step::Included(mut ds) => {
                let into = stack.last_mut().map_or(&mut top, |(_, body)| body);
                into.append(&mut ds);
            }
            Step::Open(d) => {
                if !files.count(&d.at) {
                    return top;
                }
                if stack.len() >= MAX_NESTING {
                    files.trouble(d.at, format!("blocks nested deeper than {MAX_NESTING}"));
                    return top;
                }
                stack.push((d, Vec::new()));
            }
            Step::Close(line) => match stack.pop() {
                Some((mut d, body)) => {
                    d.block = Some(body);
                    let into = stack.last_mut().map_or(&mut top, |(_, body)| body);
                    into.push(d);
                }
                None => {
                    files.trouble(at(line), "unexpected \"}\"");
                    return top;
                }
            },
            Step::Error(line, what) => {
                files.trouble(at(line), what);
                return top;
            }
        }
    }
    if let Some((d, _)) = stack.last() {
        files.trouble(d.at.clone(), format!("block of \"{}\" not closed", d.name));
    }
    top
}

/// One step of the parse.
enum Step {
    /// A directive ended by `;`.
    Simple(Directive),
    /// The directives of an included file.
    Included(Vec<Directive>),
    /// A directive opening a block.
    Open(Directive),
    /// A `}` at this line.
    Close(usize),
    /// A syntax error at this line.
    Error(usize, String),
}

/// The tokens of one file, read directive by directive.
struct Parser<'a> {
    /// The file's tokens.
    toks: Lexer<'a>,
    /// The file.
    file: &'a Path,
    /// The main file's directory, against which includes are resolved.
    prefix: &'a Path,
}

impl Parser<'_> {
    /// The next step, `None` at the end of the file.
    fn next(&mut self, files: &mut Files) -> Option<Step> {
        let (first, line) = match self.toks.next()? {
            Ok(t) => t,
            Err((line, what)) => return Some(Step::Error(line, what)),
        };
        let name = match first {
            Token::Close => return Some(Step::Close(line)),
            Token::Word(w) => w,
            Token::Semicolon | Token::Open => {
                return Some(Step::Error(line, "unexpected \";\" or \"{\"".into()))
            }
        };
        let mut args = Vec::new();
        let at = Place {
            file: self.file.to_path_buf(),
            line,
        };
        loop {
            let tok = match self.toks.next() {
                Some(Ok((tok, _))) => tok,
                Some(Err((line, what))) => return Some(Step::Error(line, what)),
                None => {
                    return Some(Step::Error(
                        line,
                        format!("\"{name}\" not ended by \";\" or \"{{\""),
                    ))
                }
            };
            match tok {
                Token::Word(_) if args.len() >= MAX_ARGS => {
                    return Some(Step::Error(
                        line,
                        format!("\"{name}\" has more than {MAX_ARGS} arguments"),
                    ))
                }
                Token::Word(w) => args.push(w),
                Token::Semicolon if name == "include" => {
                    return Some(Step::Included(self.include(&args, at, files)))
                }
                Token::Semicolon => {
                    return Some(Step::Simple(Directive {
                        name,
                        args,
                        at,
                        block: None,
                    }))
                }
                Token::Open => {
                    return Some(Step::Open(Directive {
                        name,
                        args,
                        at,
                        block: None,
                    }))
                }
                Token::Close => {
                    return Some(Step::Error(line, format!("\"{name}\" not ended by \";\"")))
                }
            }
        }
    }

    /// Reads the files of `include PATTERN;` at `at`.
    fn include(&self, args: &[String], at: Place, files: &mut Files) -> Vec<Directive> {
        let [pattern] = args else {
            files.trouble(at, "include takes one argument");
            return Vec::new();
        };
        let path = self.prefix.join(pattern);
        let paths = match Files::expand(&path, false) {
            Ok(p) => p,
            Err(e) => {
                files.trouble(at, format!("include {pattern}: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for path in paths {
            if let Some(text) = files.enter(&path, Some(&at)) {
                out.append(&mut parse_text(&path, &text, self.prefix, files));
                files.leave();
            }
        }
        out
    }
}

/// The arguments of the first directive `name` in `block`, with its place.
fn find<'a>(block: &'a [Directive], name: &str) -> Option<&'a Directive> {
    block.iter().find(|d| d.name == name && d.block.is_none())
}

/// Parses a `listen` address: `443`, `*:443`, `127.0.0.1:8443`, `[::1]:443`, `localhost`.
/// `None` for a UNIX socket or a port that is not one.
fn listen_address(text: &str) -> Option<Listen> {
    if text.starts_with("unix:") {
        return None;
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Some(Listen {
            address: None,
            port: port(text)?,
        });
    }
    let (host, p) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let p = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None => 80,
        };
        (format!("[{inside}]"), p)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), port(p)?),
            None => (text.to_string(), 80),
        }
    };
    let address = (host != "*").then_some(host);
    Some(Listen { address, port: p })
}

/// Every TLS site of every `http` block. `version` picks nginx's default protocols.
pub fn sites(top: &[Directive], version: Option<(u32, u32, u32)>) -> Vec<Site> {
    let mut out = Vec::new();
    for http in top.iter().filter(|d| d.name == "http") {
        let Some(body) = &http.block else { continue };
        let inherited = |name: &str| {
            find(body, name).map(|d| Setting {
                value: d.args.join(" "),
                source: Source::Inherited(d.at.clone()),
            })
        };
        let http_ssl_on =
            find(body, "ssl").is_some_and(|d| d.args.first().is_some_and(|a| a == "on"));
        for server in body.iter().filter(|d| d.name == "server") {
            let Some(block) = &server.block else { continue };
            let ssl_on = http_ssl_on
                || find(block, "ssl").is_some_and(|d| d.args.first().is_some_and(|a| a == "on"));
            let mut listens = Vec::new();
            let mut insert_at = None;
            for listen in block.iter().filter(|d| d.name == "listen") {
                let tls = ssl_on || listen.args.iter().skip(1).any(|a| a == "ssl");
                if let (true, Some(l)) = (tls, listen.args.first().and_then(|a| listen_address(a)))
                {
                    listens.push(l);
                    insert_at.get_or_insert(Place {
                        file: listen.at.file.clone(),
                        line: listen.at.line + 1,
                    });
                }
            }
            let Some(insert_at) = insert_at else { continue };
            let own = |name: &str| {
                find(block, name).map(|d| Setting {
                    value: d.args.join(" "),
                    source: Source::Site(d.at.clone()),
                })
            };
            let default = Protocols::nginx_default(version);
            let protocols = own("ssl_protocols")
                .or_else(|| inherited("ssl_protocols"))
                .unwrap_or(Setting {
                    value: default.to_string(),
                    source: Source::Default,
                });
            let enabled = match protocols.source {
                Source::Default => Ok(default),
                _ => {
                    let words: Vec<String> = protocols
                        .value
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    Protocols::from_nginx(&words)
                }
            };
            let ciphers = own("ssl_ciphers")
                .or_else(|| inherited("ssl_ciphers"))
                .unwrap_or(Setting {
                    value: DEFAULT_CIPHERS.to_string(),
                    source: Source::Default,
                });
            let names = block
                .iter()
                .filter(|d| d.name == "server_name")
                .flat_map(|d| d.args.iter().cloned())
                .collect();
            out.push(Site {
                server: Server::Nginx,
                at: server.at.clone(),
                names,
                listens,
                protocols,
                enabled,
                ciphers,
                insert_at,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (name, text) into a temporary directory and reads `nginx.conf` there.
    pub(crate) fn read_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Site>, Files) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let mut f = Files::default();
        let top = read(&dir.path().join("nginx.conf"), &mut f).expect("main file read");
        let sites = sites(&top, Some((1, 22, 1)));
        (dir, sites, f)
    }

    #[test]
    fn tokens_know_comments_quotes_and_escapes() {
        let toks: Vec<(Token, usize)> = Lexer::new("a \"b c\" 'd;e' f\\;g # h;\n{ }")
            .collect::<Result<_, _>>()
            .expect("tokens");
        let words: Vec<_> = toks
            .iter()
            .filter_map(|(t, _)| match t {
                Token::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(words, ["a", "b c", "d;e", "f;g"]);
        assert_eq!(toks.last(), Some(&(Token::Close, 2)));
        assert!(Lexer::new("a \"open").any(|t| t.is_err()));
    }

    #[test]
    fn servers_inherit_from_http_and_includes_are_read_in_place() {
        let (dir, sites, files) = read_dir(&[
            (
                "nginx.conf",
                "events {}\nhttp {\n  ssl_protocols TLSv1.2; # for all\n  include sites/*.conf;\n  server { listen 80; }\n}\n",
            ),
            (
                "sites/a.conf",
                "server {\n  listen 127.0.0.1:8443 ssl;\n  server_name \"shop.example.com\" www;\n}\n",
            ),
            (
                "sites/b.conf",
                "server {\n  listen [::1]:9443 ssl http2;\n  ssl_protocols TLSv1.2 TLSv1.3;\n  ssl_ciphers 'HIGH:!aNULL';\n}\n",
            ),
        ]);
        assert!(files.troubles.is_empty(), "{:?}", files.troubles);
        assert_eq!(sites.len(), 2, "{sites:#?}");
        let a = &sites[0];
        assert_eq!(a.names, ["shop.example.com", "www"]);
        assert_eq!(a.sni_name(), Some("shop.example.com"));
        assert_eq!(a.enabled, Ok(Protocols::TLS12_ONLY));
        let http = Place {
            file: dir.path().join("nginx.conf"),
            line: 3,
        };
        assert_eq!(a.protocols.source, Source::Inherited(http));
        assert_eq!(a.ciphers.source, Source::Default);
        assert_eq!(a.insert_at.line, 3);
        assert_eq!(
            a.listens,
            [Listen {
                address: Some("127.0.0.1".into()),
                port: 8443
            }]
        );
        let b = &sites[1];
        assert_eq!(b.enabled, Ok(Protocols::RECOMMENDED));
        assert_eq!(b.ciphers.value, "HIGH:!aNULL");
        assert_eq!(b.listens[0].address.as_deref(), Some("[::1]"));
    }

    #[test]
    fn unset_protocols_are_the_versions_default() {
        let (_dir, sites, _) = read_dir(&[("nginx.conf", "http { server { listen 443 ssl; } }")]);
        assert_eq!(sites[0].protocols.source, Source::Default);
        assert!(sites[0].enabled.as_ref().expect("default").legacy());
        assert_eq!(sites[0].listens[0].address, None);
    }

    #[test]
    fn include_loops_and_syntax_errors_are_troubles_not_hangs() {
        let (_dir, _sites, files) = read_dir(&[
            ("nginx.conf", "http { include loop.conf; }"),
            ("loop.conf", "include loop.conf;\n"),
        ]);
        assert!(
            files
                .troubles
                .iter()
                .any(|t| t.what.contains("include loop")),
            "{:?}",
            files.troubles
        );
        let (_dir, _sites, files) = read_dir(&[("nginx.conf", "http {\n server {\n")]);
        assert!(
            files.troubles[0].what.contains("not closed"),
            "{:?}",
            files.troubles
        );
        let deep = "a {".repeat(10_000);
        let (_dir, _sites, files) = read_dir(&[("nginx.conf", &deep)]);
        assert!(
            files.troubles[0].what.contains("nested deeper"),
            "{:?}",
            files.troubles
        );
    }

    #[test]
    fn listen_addresses() {
        let l = |t| listen_address(t);
        assert_eq!(l("443").map(|l| (l.address, l.port)), Some((None, 443)));
        assert_eq!(l("*:8443").map(|l| l.port), Some(8443));
        assert_eq!(l("localhost").map(|l| l.port), Some(80));
        assert_eq!(l("unix:/run/x.sock"), None);
        assert_eq!(l("1.2.3.4:99999"), None);
    }
}
