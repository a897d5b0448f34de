//! Zip safety: open a downloaded GeoLite2 zip and check every entry (safe path, no symlink,
//! bounded and truthful sizes, intact CRC) before any builder reads it.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Limits on what a zip may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    /// Largest unpacked size of one entry, in bytes.
    pub max_entry_size: u64,
    /// Largest unpacked size of all entries together, in bytes.
    pub max_total_size: u64,
    /// Most entries (files and folders) in the zip.
    pub max_entries: usize,
}

impl Default for ZipLimits {
    /// Generous for GeoLite2 (City unpacks to about 450 MB), small enough to stop a zip bomb.
    fn default() -> Self {
        ZipLimits {
            max_entry_size: 2 << 30,
            max_total_size: 4 << 30,
            max_entries: 1000,
        }
    }
}

/// One file in a checked zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntryInfo {
    /// The entry's path inside the zip, e.g. `GeoLite2-Country-CSV_20191224/…-Blocks-IPv4.csv`.
    pub name: String,
    /// Its unpacked size in bytes, as checked by unpacking it.
    pub size: u64,
}

/// What [`validate_zip`] found in a zip that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// The files (folders left out), in zip order.
    pub files: Vec<ZipEntryInfo>,
    /// Their unpacked sizes added up.
    pub total_size: u64,
}

/// Why a zip was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file is not a readable zip.
    #[error("{path}: not a valid zip: {error}")]
    Open {
        /// The zip file.
        path: PathBuf,
        /// What the zip reader said (in the message, not chained, so it is printed once).
        error: zip::result::ZipError,
    },
    /// More entries than [`ZipLimits::max_entries`].
    #[error("{path}: {count} entries, more than the limit of {limit}")]
    TooManyEntries {
        /// The zip file.
        path: PathBuf,
        /// Entries found.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry's path is absolute or climbs out of the zip's folder.
    #[error("{path}: entry {name:?} points outside the zip's folder; refusing the zip")]
    UnsafePath {
        /// The zip file.
        path: PathBuf,
        /// The entry name as stored.
        name: String,
    },
    /// An entry is a symbolic link, or encrypted, which GeoLite2 zips never hold.
    #[error("{path}: entry {name:?} is {what}; refusing the zip")]
    Unexpected {
        /// The zip file.
        path: PathBuf,
        /// The entry name.
        name: String,
        /// "a symbolic link" or "encrypted".
        what: &'static str,
    },
    /// An entry unpacks to more than [`ZipLimits::max_entry_size`].
    #[error("{path}: entry {name:?} unpacks to {size} bytes, more than the limit of {limit}")]
    EntryTooLarge {
        /// The zip file.
        path: PathBuf,
        /// The entry name.
        name: String,
        /// Its unpacked size (declared, or at least this much when unpacked).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// All entries together unpack to more than [`ZipLimits::max_total_size`].
    #[error("{path}: unpacks to {size} bytes in all, more than the limit of {limit}")]
    TotalTooLarge {
        /// The zip file.
        path: PathBuf,
        /// Unpacked size of all entries.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry unpacks to a size other than the one its header declares.
    #[error("{path}: entry {name:?} declares {declared} bytes but unpacks to {actual}")]
    SizeMismatch {
        /// The zip file.
        path: PathBuf,
        /// The entry name.
        name: String,
        /// Size in the zip's directory.
        declared: u64,
        /// Size found by unpacking (at most `declared + 1`).
        actual: u64,
    },
    /// An entry cannot be unpacked (bad data, bad CRC).
    #[error("{path}: entry {name:?} is damaged: {error}")]
    Damaged {
        /// The zip file.
        path: PathBuf,
        /// The entry name.
        name: String,
        /// What the reader said (in the message, not chained, so it is printed once).
        error: io::Error,
    },
}

/// True when a zip entry name stays inside the folder the zip is unpacked in: relative, no `..`
/// component, no backslash (a `..\` on Windows tools), no NUL.
pub fn is_safe_entry_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains(['\\', '\0'])
        && !name.split('/').any(|part| part == "..")
        && !name
            .split('/')
            .next()
            .is_some_and(|first| first.contains(':'))
}

/// Checks the directory of the zip at `path` alone, nothing unpacked: entry count, safe names,
/// no symbolic link or encrypted entry, declared sizes within `limits`. Returns the files
/// (folders left out) with their indexes, and their declared sizes added up.
pub(crate) fn check_directory<R: Read + io::Seek>(
    path: &Path,
    zip: &mut zip::ZipArchive<R>,
    limits: &ZipLimits,
) -> Result<(Vec<(usize, ZipEntryInfo)>, u64), ArchiveError> {
    let open_err = |error| ArchiveError::Open {
        path: path.to_path_buf(),
        error,
    };
    if zip.len() > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            path: path.to_path_buf(),
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut files = Vec::new();
    let mut declared_total = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(open_err)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !is_safe_entry_name(&name) || entry.enclosed_name().is_none() {
            return Err(ArchiveError::UnsafePath {
                path: path.to_path_buf(),
                name,
            });
        }
        let unexpected = if entry.is_symlink() {
            Some("a symbolic link")
        } else if entry.encrypted() {
            Some("encrypted")
        } else {
            None
        };
        if let Some(what) = unexpected {
            return Err(ArchiveError::Unexpected {
                path: path.to_path_buf(),
                name,
                what,
            });
        }
        if entry.is_dir() {
            continue;
        }
        if entry.size() > limits.max_entry_size {
            return Err(ArchiveError::EntryTooLarge {
                path: path.to_path_buf(),
                name,
                size: entry.size(),
                limit: limits.max_entry_size,
            });
        }
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > limits.max_total_size {
            return Err(ArchiveError::TotalTooLarge {
                path: path.to_path_buf(),
                size: declared_total,
                limit: limits.max_total_size,
            });
        }
        files.push((
            i,
            ZipEntryInfo {
                name,
                size: entry.size(),
            },
        ));
    }

    Ok((files, declared_total))
}

/// Opens the zip at `path` and checks every entry against `limits`, unpacking each file once
/// (to a counter, not to disk) so its real size and CRC are known before a builder reads it.
pub fn validate_zip(path: &Path, limits: &ZipLimits) -> Result<ZipSummary, ArchiveError> {
    let open_err = |error| ArchiveError::Open {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(|e| open_err(zip::result::ZipError::Io(e)))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(open_err)?;

    let (files, declared_total) = check_directory(path, &mut zip, limits)?;

    // Then unpack each file to a counter: a lying header or a bad CRC shows up here.
    for (i, info) in &files {
        let damaged = |error| ArchiveError::Damaged {
            path: path.to_path_buf(),
            name: info.name.clone(),
            error,
        };
        let entry = zip.by_index(*i).map_err(|e| damaged(io::Error::other(e)))?;
        let actual = io::copy(&mut entry.take(info.size + 1), &mut io::sink()).map_err(damaged)?;
        if actual != info.size {
            return Err(ArchiveError::SizeMismatch {
                path: path.to_path_buf(),
                name: info.name.clone(),
                declared: info.size,
                actual,
            });
        }
    }
    Ok(ZipSummary {
        files: files.into_iter().map(|(_, f)| f).collect(),
        total_size: declared_total,
    })
}

#[cfg(test)]
mod tests;
