//! The `jobs.d` directory beside the job file, read after it as cron reads `cron.d`: the
//! `*.toml` files in it, in name order. Dotfiles and whatever else lies there (a package
//! manager's `*.dpkg-old`/`*.dpkg-dist`, an editor's `~` backup, a subdirectory) are skipped
//! with a debug line, so a file the admin did not mean to enable never runs jobs; `opsd check`
//! lists them with the reason ([`skipped`]).

use super::ConfigError;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The drop-in directory's name, beside the job file.
pub const DROP_IN_DIR: &str = "jobs.d";

/// The drop-in directory of the job file `config`: `<its directory>/jobs.d`, so that it
/// follows `--config` and `$OPSD_CONFIG`.
pub fn drop_in_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .join(DROP_IN_DIR)
}

/// The largest drop-in read; a larger one is an error naming it.
pub const MAX_DROP_IN: u64 = 16 << 20;

/// Reads the `*.toml` files of `dir` in name order; none when `dir` does not exist. A
/// directory or file that exists but cannot be read is an error naming it; so is a drop-in
/// that is not a regular file (a FIFO, a symlink to a device), refused without waiting on it,
/// or one larger than [`MAX_DROP_IN`] ([`crate::bounded_read`]).
pub fn read(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if let Some(why) = name_skip_reason(&path) {
            tracing::debug!(file = %path.display(), "skipping {}: {why}", path.display());
            continue;
        }
        // Follows a symlink, as the file itself is read.
        if path.is_dir() {
            tracing::debug!(file = %path.display(), "skipping {}: {DIRECTORY}", path.display());
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| match crate::bounded_read::read(&path, MAX_DROP_IN) {
            Ok(bytes) => Ok((path, bytes)),
            Err(e) => Err(ConfigError::Read {
                path,
                source: e.into(),
            }),
        })
        .collect()
}

/// The skip reason of a subdirectory (or a symlink to one).
const DIRECTORY: &str = "a directory";

/// The entries of `dir` that are not read as drop-ins, in name order, each with why: what
/// `opsd check` lists, since an admin who drops in `web.toml.bak` expects its jobs to run.
/// None when `dir` cannot be listed (`read` reports that).
pub fn skipped(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut skipped: Vec<(PathBuf, &'static str)> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter_map(|path| {
            let why = name_skip_reason(&path).or_else(|| path.is_dir().then_some(DIRECTORY))?;
            Some((path, why))
        })
        .collect();
    skipped.sort();
    skipped
}

/// Why a directory entry is not a drop-in by its name, or `None` for a `NAME.toml`: a dotfile
/// (editors' swap and lock files), a package manager's or an editor's copy, or another name,
/// so `x.toml.dpkg-old`, `x.toml~` and `.x.toml.swp` are left alone.
fn name_skip_reason(path: &Path) -> Option<&'static str> {
    const PACKAGE_COPIES: &[&str] = &[
        ".dpkg-old",
        ".dpkg-dist",
        ".dpkg-new",
        ".dpkg-tmp",
        ".dpkg-bak",
        ".ucf-old",
        ".ucf-dist",
        ".ucf-new",
        ".rpmnew",
        ".rpmsave",
        ".rpmorig",
    ];
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Some("the name is not UTF-8; only NAME.toml files are read");
    };
    if name.starts_with('.') {
        Some("a dotfile; dotfiles are skipped")
    } else if PACKAGE_COPIES.iter().any(|s| name.ends_with(s)) {
        Some("a package manager's copy")
    } else if name.ends_with('~') {
        Some("an editor's backup")
    } else if !name.ends_with(".toml") {
        Some("only NAME.toml files are read")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_toml_files_are_read_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.toml",
            "a.toml",
            "10-x.toml",
            ".hidden.toml",
            "c.toml.dpkg-old",
            "c.toml.dpkg-dist",
            "d.toml~",
            "notes.txt",
            ".toml",
        ] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
        let read = read(dir.path()).unwrap();
        let names: Vec<_> = read
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["10-x.toml", "a.toml", "b.toml"]);
        assert_eq!(read[1].1, b"a.toml");
        let skipped: Vec<_> = skipped(dir.path())
            .into_iter()
            .map(|(p, why)| (p.file_name().unwrap().to_str().unwrap().to_string(), why))
            .collect();
        let dotfile = "a dotfile; dotfiles are skipped";
        let package = "a package manager's copy";
        assert_eq!(
            skipped,
            [
                (".hidden.toml".to_string(), dotfile),
                (".toml".to_string(), dotfile),
                ("c.toml.dpkg-dist".to_string(), package),
                ("c.toml.dpkg-old".to_string(), package),
                ("d.toml~".to_string(), "an editor's backup"),
                ("notes.txt".to_string(), "only NAME.toml files are read"),
                ("sub.toml".to_string(), DIRECTORY),
            ]
        );
    }

    #[test]
    fn a_missing_directory_is_no_drop_ins_and_follows_the_job_file() {
        assert!(read(Path::new("/nonexistent/jobs.d")).unwrap().is_empty());
        assert_eq!(
            drop_in_dir(Path::new("/etc/opsd/jobs.toml")),
            Path::new("/etc/opsd/jobs.d")
        );
        assert_eq!(drop_in_dir(Path::new("jobs.toml")), Path::new("./jobs.d"));
    }

    #[test]
    fn a_fifo_a_device_or_a_huge_drop_in_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking read would wait for a writer for good: this test would hang.
        let e = read(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: cannot read configuration: it is a FIFO, not a regular file",
                fifo.display()
            )
        );
        std::fs::remove_file(&fifo).unwrap();
        let zero = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("zero.toml") && e.contains("a character device"),
            "{e}"
        );
        std::fs::remove_file(&zero).unwrap();
        let huge = dir.path().join("huge.toml");
        std::fs::write(&huge, vec![b'#'; MAX_DROP_IN as usize + 1]).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("huge.toml") && e.contains("larger than 16 MiB"),
            "{e}"
        );
    }
}
