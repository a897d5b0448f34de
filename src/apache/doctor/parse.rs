//! Reading Apache's answers: the text of `-V`, `-M` and `-t -D DUMP_INCLUDES` and the
//! configuration files it lists become a [`Setup`], a typed description of what the server
//! runs. Nothing here judges it (that is [`super::analyse`]) and nothing here runs Apache.

use crate::apache::conf;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The directive as written.
    pub text: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

/// What the server runs, as Apache's answers and its configuration files describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setup {
    /// `Server version:` from `-V`, e.g. `Apache/2.4.71 (Debian)`.
    pub server_version: Option<String>,
    /// The numeric version.
    pub version: Option<(u32, u32, u32)>,
    /// The MPM (`event`, `worker`, `prefork`), from `-V` or the module list.
    pub mpm: Option<String>,
    /// Every loaded module from `-M`.
    pub modules: Vec<String>,
    /// The configuration files Apache read (`DUMP_INCLUDES`).
    pub files: Vec<PathBuf>,
    /// Files listed but not readable by the doctor (their directives are unknown).
    pub unreadable: Vec<PathBuf>,
    /// Each `Protocols` directive that enables `h2`.
    pub protocols_h2: Vec<Location>,
    /// Each `H2MaxWorkers` directive.
    pub h2_max_workers: Vec<Location>,
}

impl Setup {
    /// True when `-M` listed the module `name`.
    pub fn has_module(&self, name: &str) -> bool {
        self.modules.iter().any(|m| m == name)
    }

    /// The loaded `php*_module`s (mod_php), in `-M` order.
    pub fn php_modules(&self) -> Vec<&str> {
        self.modules
            .iter()
            .map(String::as_str)
            .filter(|m| is_php_module(m))
            .collect()
    }
}

/// Describes the server from the output of `-V` (`version`) and `-M` (`modules`) and the
/// configuration files (`None` text: unreadable).
pub fn describe(version: &str, modules: &str, files: &[(PathBuf, Option<String>)]) -> Setup {
    let (server_version, numbers) = parse_version(version);
    let modules = parse_modules(modules);
    let mpm = parse_mpm(version, &modules);
    let mut directives = Directives::default();
    let mut unreadable = Vec::new();
    for (path, text) in files {
        match text {
            Some(t) => directives.scan(path, t),
            None => unreadable.push(path.clone()),
        }
    }
    Setup {
        server_version,
        version: numbers,
        mpm,
        modules,
        files: files.iter().map(|(p, _)| p.clone()).collect(),
        unreadable,
        protocols_h2: directives.protocols_h2,
        h2_max_workers: directives.h2_max_workers,
    }
}

/// Parses the file list printed by `-t -D DUMP_INCLUDES`.
pub fn parse_includes(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('(')?;
            let (tag, path) = rest.split_once(')')?;
            (tag == "*" || tag.chars().all(|c| c.is_ascii_digit()))
                .then(|| PathBuf::from(path.trim()))
        })
        .filter(|p| p.is_absolute())
        .collect()
}

/// Parses `Server version: Apache/2.4.71 (Debian)` into the text and the numbers.
fn parse_version(v: &str) -> (Option<String>, Option<(u32, u32, u32)>) {
    let Some(line) = v
        .lines()
        .find_map(|l| l.trim().strip_prefix("Server version:"))
    else {
        return (None, None);
    };
    let text = line.trim().to_string();
    let numbers = text
        .split_whitespace()
        .next()
        .and_then(|t| t.split_once('/'))
        .and_then(|(_, n)| {
            let mut parts = n.split('.').map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse::<u32>()
                    .ok()
            });
            Some((
                parts.next()??,
                parts.next()??,
                parts.next().flatten().unwrap_or(0),
            ))
        });
    (Some(text), numbers)
}

/// Reads the MPM from `Server MPM:` in `-V`, else from an `mpm_*_module` in the module list.
fn parse_mpm(v: &str, modules: &[String]) -> Option<String> {
    v.lines()
        .find_map(|l| l.trim().strip_prefix("Server MPM:"))
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .or_else(|| {
            modules.iter().find_map(|m| {
                m.strip_prefix("mpm_")
                    .and_then(|r| r.strip_suffix("_module"))
                    .map(str::to_string)
            })
        })
}

/// Parses `-M`: ` name_module (shared)` lines.
pub fn parse_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let kind = words.next()?;
            (name.ends_with("_module") && kind.starts_with('(')).then(|| name.to_string())
        })
        .collect()
}

/// True for `php_module`, `php7_module`, `php8_module`, ...: mod_php under any version.
fn is_php_module(name: &str) -> bool {
    name.strip_prefix("php")
        .and_then(|r| r.strip_suffix("_module"))
        .is_some_and(|mid| mid.chars().all(|c| c.is_ascii_digit()))
}

/// The directives that matter, in the order read.
#[derive(Default)]
struct Directives {
    /// Each `Protocols` directive that enables `h2`.
    protocols_h2: Vec<Location>,
    /// Each `H2MaxWorkers` directive.
    h2_max_workers: Vec<Location>,
}

impl Directives {
    /// Adds the directives of one file ([`conf::directives`]: continuations joined, comments
    /// dropped).
    fn scan(&mut self, file: &Path, text: &str) {
        for d in conf::directives(text) {
            let at = || Location {
                file: file.to_path_buf(),
                line: d.line,
                text: d.text.clone(),
            };
            match d.name.as_str() {
                "protocols" if d.args.iter().any(|w| w.eq_ignore_ascii_case("h2")) => {
                    self.protocols_h2.push(at());
                }
                "h2maxworkers" => self.h2_max_workers.push(at()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apache::doctor::tests::{INCLUDES, M_RECIPE, V_EVENT};

    #[test]
    fn parses_the_include_list() {
        assert_eq!(
            parse_includes(INCLUDES),
            vec![
                PathBuf::from("/etc/httpd/conf/httpd.conf"),
                PathBuf::from("/etc/httpd/conf.d/ssl.conf")
            ]
        );
    }

    #[test]
    fn parses_versions_and_modules() {
        assert_eq!(
            parse_version(V_EVENT),
            (Some("Apache/2.4.71 (Debian)".into()), Some((2, 4, 71)))
        );
        assert_eq!(
            parse_version("Server version: Apache/2.4.6 (CentOS)").1,
            Some((2, 4, 6))
        );
        let m = parse_modules(M_RECIPE);
        assert_eq!(m.len(), 6);
        assert!(is_php_module("php7_module") && is_php_module("php_module"));
        assert!(!is_php_module("phpx_module"));
        assert_eq!(parse_mpm("", &m).as_deref(), Some("event"));
    }
}
