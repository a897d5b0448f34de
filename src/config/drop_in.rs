//! The `jobs.d` directory beside the job file, read after it as cron reads `cron.d`: the
//! `*.toml` files in it, in name order. Dotfiles and whatever else lies there (a package
//! manager's `*.dpkg-old`/`*.dpkg-dist`, an editor's `~` backup, a subdirectory) are skipped
//! with a debug line, so a file the admin did not mean to enable never runs jobs.

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
        if !wanted(&path) {
            tracing::debug!(file = %path.display(), "skipping {}: only *.toml files in {} are read", path.display(), dir.display());
            continue;
        }
        // Follows a symlink, as the file itself is read.
        if path.is_dir() {
            tracing::debug!(file = %path.display(), "skipping {}: a directory", path.display());
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

/// Whether a directory entry is a drop-in: a `NAME.toml`, not a dotfile (editors' swap and
/// lock files), so `x.toml.dpkg-old`, `x.toml~` and `.x.toml.swp` are left alone.
fn wanted(path: &Path) -> bool {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) => {
            !name.starts_with('.') && name.len() > ".toml".len() && name.ends_with(".toml")
        }
        None => false,
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
