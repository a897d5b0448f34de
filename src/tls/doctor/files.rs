//! Reading a web server's configuration files without trusting them: each file bounded in
//! size ([`crate::bounded_read`]), the whole set bounded in files and bytes, and includes
//! bounded in depth with loops refused, so a hostile or huge configuration (an include of
//! itself, a glob of a million files, a file of gigabytes, `/dev/zero`) is reported as such
//! instead of hanging the doctor or filling its memory. Every file that could not be read is
//! kept with its reason: the doctor then says it could not examine the whole configuration.

use super::site::Place;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The largest configuration file read.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;
/// The most bytes read in all.
pub const MAX_TOTAL: u64 = 32 * 1024 * 1024;
/// The most files read in all (a file included twice counts twice).
pub const MAX_FILES: usize = 2000;
/// The deepest include chain followed.
pub const MAX_DEPTH: usize = 16;

/// The most directives, blocks and sections kept in all: a configuration of millions of
/// them is refused rather than held in memory.
pub const MAX_ITEMS: usize = 100_000;

/// The most troubles listed; the rest are counted in one last line.
pub const MAX_TROUBLES: usize = 50;

/// Something in the configuration the doctor could not read or understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trouble {
    /// Where (the file, and the line when known; line 0 = the file as a whole).
    pub at: Place,
    /// What, in words.
    pub what: String,
}

/// The files read so far and what went wrong reading them.
#[derive(Debug, Default)]
pub struct Files {
    /// Every file read, in order.
    pub read: Vec<PathBuf>,
    /// What could not be read or parsed.
    pub troubles: Vec<Trouble>,
    /// The include chain being read (for loops and depth).
    stack: Vec<PathBuf>,
    /// Bytes read so far.
    bytes: u64,
    /// Directives, blocks and sections kept so far.
    items: usize,
}

impl Files {
    /// Records a trouble at `at` (past [`MAX_TROUBLES`], only that there were more).
    pub fn trouble(&mut self, at: Place, what: impl Into<String>) {
        match self.troubles.len() {
            n if n < MAX_TROUBLES => self.troubles.push(Trouble {
                at,
                what: what.into(),
            }),
            n if n == MAX_TROUBLES => self.troubles.push(Trouble {
                at,
                what: "more troubles follow, not listed".to_string(),
            }),
            _ => {}
        }
    }

    /// Reads `path` (included from `from`, `None` for the main file) as text, or records why
    /// not: unreadable, too large, too many files, an include loop or chain too deep. On
    /// `Some`, the caller must call [`Files::leave`] when done with the file.
    pub fn enter(&mut self, path: &Path, from: Option<&Place>) -> Option<String> {
        let here = || {
            from.cloned().unwrap_or(Place {
                file: path.to_path_buf(),
                line: 0,
            })
        };
        let shown = crate::escape::control(&path.display().to_string()).into_owned();
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&real) {
            self.trouble(here(), format!("include loop: {shown} includes itself"));
            return None;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.trouble(
                here(),
                format!("includes nested deeper than {MAX_DEPTH}: {shown} not read"),
            );
            return None;
        }
        if self.read.len() >= MAX_FILES {
            self.trouble(
                here(),
                format!("more than {MAX_FILES} files: {shown} not read"),
            );
            return None;
        }
        let cap = MAX_FILE.min(MAX_TOTAL.saturating_sub(self.bytes));
        match crate::bounded_read::read(path, cap) {
            Ok(bytes) => {
                self.bytes += bytes.len() as u64;
                self.read.push(path.to_path_buf());
                self.stack.push(real);
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(e) => {
                self.trouble(here(), format!("cannot read {shown}: {e}"));
                None
            }
        }
    }

    /// Counts one kept item at `at`; false (and a trouble, once) past [`MAX_ITEMS`].
    pub fn count(&mut self, at: &Place) -> bool {
        self.items += 1;
        if self.items == MAX_ITEMS + 1 {
            self.trouble(
                at.clone(),
                format!("more than {MAX_ITEMS} directives: the rest is not read"),
            );
        }
        self.items <= MAX_ITEMS
    }

    /// Ends the file [`Files::enter`] returned last.
    pub fn leave(&mut self) {
        self.stack.pop();
    }

    /// The files an include pattern names, sorted: the file itself, a glob's matches, or (for
    /// Apache, `dir_contents`) every file in a directory and the directories below it, as
    /// httpd reads them (a glob's directory matches too). `Err`: the pattern is not a valid
    /// glob or a directory cannot be listed, in words.
    pub fn expand(pattern: &Path, dir_contents: bool) -> Result<Vec<PathBuf>, String> {
        let text = pattern.to_string_lossy();
        if !text.contains(['*', '?', '[']) {
            if dir_contents && pattern.is_dir() {
                let mut found = Vec::new();
                below(pattern, 0, &mut found)?;
                return Ok(found);
            }
            return Ok(vec![pattern.to_path_buf()]);
        }
        // glob(3), which nginx and Apache use, reads `**` as `*`; the glob crate would walk
        // every directory below (a whole file system for `/**/*.conf`).
        let mut text = text.into_owned();
        while text.contains("**") {
            text = text.replace("**", "*");
        }
        let mut matches: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| e.to_string())?
            .flatten()
            .take(MAX_FILES + 1)
            .collect();
        matches.sort();
        let mut found = Vec::new();
        for p in matches {
            if !p.is_dir() {
                found.push(p);
            } else if dir_contents {
                below(&p, 0, &mut found)?;
            }
            if found.len() > MAX_FILES {
                break;
            }
        }
        Ok(found)
    }
}

/// Adds the files in `dir` and, depth first in name order, in the directories below it (at
/// most [`MAX_DEPTH`] deep, [`MAX_FILES`]` + 1` in all: more is refused by [`Files::enter`]).
fn below(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .take(MAX_FILES + 1)
        .collect();
    entries.sort();
    for p in entries {
        if found.len() > MAX_FILES {
            break;
        }
        if p.is_dir() {
            if depth + 1 < MAX_DEPTH {
                below(&p, depth + 1, found)?;
            }
        } else if p.is_file() {
            found.push(p);
        }
    }
    Ok(())
}
