//! The errors of building and checking legacy GeoIP files, each naming the file or row at fault.

use std::path::PathBuf;

/// Why a build, a write or a sample check failed.
#[derive(Debug, thiserror::Error)]
pub enum GeoipError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error (in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
    /// The zip archive is unreadable or lacks a member the edition needs.
    #[error("{}: {message}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The archive is not a GeoLite2 CSV edition this build knows.
    #[error("{}: not a GeoLite2 Country, ASN or City CSV zip ({found})", path.display())]
    UnknownEdition {
        /// The archive.
        path: PathBuf,
        /// The folder or file name that was looked at.
        found: String,
    },
    /// A CSV row or header is malformed.
    #[error("{member}:{line}: {message}")]
    Csv {
        /// The CSV file inside the zip.
        member: String,
        /// The 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The data do not fit the legacy format's 3-byte record pointers.
    #[error("{file}: {message}; the legacy format's 3-byte pointers cannot address it")]
    TooLarge {
        /// The file that would have been written.
        file: &'static str,
        /// Which limit was passed, with the figures.
        message: String,
    },
    /// Two inputs of `opsd geoip build` produce the same file (the same edition twice).
    #[error(
        "{} and {} both build {file}; give each edition once",
        first.display(),
        second.display()
    )]
    DuplicateInput {
        /// The file both would write.
        file: &'static str,
        /// The first input that builds it.
        first: PathBuf,
        /// The second one.
        second: PathBuf,
    },
    /// The zip's directory breaks a limit or holds an entry no GeoLite2 zip has.
    #[error(transparent)]
    Archive(#[from] super::archive::ArchiveError),
    /// Reading stopped early: a cap on unpacked sizes was passed, or a signal came.
    #[error(transparent)]
    Stopped(#[from] super::guard::Stop),
    /// Installing the built files into the output directory failed; nothing was installed.
    #[error(transparent)]
    Install(#[from] super::install::InstallError),
    /// A written file is not a legacy GeoIP file this reader understands.
    #[error("not a legacy GeoIP database: {0}")]
    BadDatabase(String),
    /// A sample lookup in a written file disagrees with the CSV.
    #[error("sample check failed for {addr}: the CSV says {expected:?}, the file says {found:?}")]
    SampleMismatch {
        /// The address looked up.
        addr: std::net::IpAddr,
        /// The answer derived from the CSV.
        expected: Option<String>,
        /// The answer read from the file.
        found: Option<String>,
    },
}

impl GeoipError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        GeoipError::Io {
            path: path.into(),
            error,
        }
    }
}
