//! The MaxMind license key: read from a file or a systemd credential, and never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// The systemd credential name looked up under `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
pub const CREDENTIAL_NAME: &str = "maxmind-license";

/// A MaxMind license key; its `Debug` and `Display` print `<redacted>`, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenseKey(String);

impl LicenseKey {
    /// Wraps a key (surrounding whitespace removed).
    pub fn new(key: impl AsRef<str>) -> Self {
        LicenseKey(key.as_ref().trim().to_string())
    }

    /// The key itself, for the HTTP `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the key from `file`, or else from `$CREDENTIALS_DIRECTORY/maxmind-license`.
    pub fn load(file: Option<&Path>) -> Result<Self, LicenseKeyError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::load_from(file, credentials.as_deref())
    }

    /// Reads the key from `file`, or else from `credentials_dir/maxmind-license`.
    pub fn load_from(
        file: Option<&Path>,
        credentials_dir: Option<&Path>,
    ) -> Result<Self, LicenseKeyError> {
        let path = match (file, credentials_dir) {
            (Some(f), _) => f.to_path_buf(),
            (None, Some(dir)) => dir.join(CREDENTIAL_NAME),
            (None, None) => return Err(LicenseKeyError::NotConfigured),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| LicenseKeyError::Read {
            path: path.clone(),
            source,
        })?;
        let key = LicenseKey::new(text);
        if key.0.is_empty() || key.0.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LicenseKeyError::Malformed { path });
        }
        Ok(key)
    }
}

impl fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LicenseKey(<redacted>)")
    }
}

impl fmt::Display for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why the license key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LicenseKeyError {
    /// Neither `license_key_file` nor a systemd credential is there.
    #[error(
        "no MaxMind license key: set license_key_file, or run under systemd with \
         LoadCredential={CREDENTIAL_NAME}:/path/to/key"
    )]
    NotConfigured,
    /// The key file could not be read.
    #[error("cannot read the MaxMind license key from {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is empty or holds more than one word.
    #[error("{path}: expected exactly one MaxMind license key (one word) in the file")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_key() {
        let key = LicenseKey::new("s3cretKEY_0123");
        assert_eq!(format!("{key:?}"), "LicenseKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        assert_eq!(key.expose(), "s3cretKEY_0123");
    }

    #[test]
    fn file_wins_over_credentials_dir_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "  fromfile\n").unwrap();
        std::fs::write(dir.path().join(CREDENTIAL_NAME), "fromcred\n").unwrap();
        let key = LicenseKey::load_from(Some(&file), Some(dir.path())).unwrap();
        assert_eq!(key.expose(), "fromfile");
        let key = LicenseKey::load_from(None, Some(dir.path())).unwrap();
        assert_eq!(key.expose(), "fromcred");
    }

    #[test]
    fn missing_empty_and_multiword_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            LicenseKey::load_from(None, None),
            Err(LicenseKeyError::NotConfigured)
        ));
        assert!(matches!(
            LicenseKey::load_from(None, Some(dir.path())),
            Err(LicenseKeyError::Read { .. })
        ));
        let file = dir.path().join("key");
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            LicenseKey::load_from(Some(&file), None),
            Err(LicenseKeyError::Malformed { .. })
        ));
        std::fs::write(&file, "two words").unwrap();
        let err = LicenseKey::load_from(Some(&file), None).unwrap_err();
        assert!(matches!(err, LicenseKeyError::Malformed { .. }));
        assert!(
            !err.to_string().contains("two words"),
            "the key leaked: {err}"
        );
    }
}
